package hub

import (
	"encoding/base64"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/websocket"
)

// Subprotocols of the Phoenix 1.8 JS client.
const (
	phoenixSubprotocol = "phoenix"               // what the server answers with
	authTokenPrefix    = "base64url.bearer.phx." // followed by the base64 auth token
)

// ServeHTTP serves the Phoenix WebSocket transport; mount it at /socket/websocket. It
// answers 400 to a request that is not a WebSocket upgrade, 403 to an unknown vsn, a
// disallowed Origin or a refused Connect, and 503 while shutting down. An accepted
// request hands the socket to the connection's reader goroutine and returns.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "expected a WebSocket upgrade", http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	format, ok := formatFromQuery(q)
	if !ok {
		http.Error(w, "unsupported vsn", http.StatusForbidden)
		return
	}
	origin := r.Header.Get("Origin")
	if !h.originAllowed(origin) {
		h.log.Debug("origin refused", "remote", r.RemoteAddr, "origin", origin)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	if !h.admit() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	defer h.wg.Done()

	q.Del("vsn")
	req := &ConnectRequest{
		Ctx:       r.Context(),
		Params:    q,
		AuthToken: authToken(r),
		Origin:    origin,
		RemoteIP:  remoteIP(r.RemoteAddr),
	}
	ok, id, state := h.cfg.Handler.Connect(req)
	if !ok {
		http.Error(w, "connection refused", http.StatusForbidden)
		return
	}
	ws, err := h.upgrader.Upgrade(w, r, nil) // answers the client itself on failure
	if err != nil {
		h.log.Debug("upgrade failed", "remote", r.RemoteAddr, "reason", err)
		return
	}
	// From here on the hub reads and writes the socket itself; ws is dropped. So is
	// net/http's state for the request, buffers included: the connection gets a
	// goroutine of its own and this one returns. (gorilla/websocket has checked that
	// net/http's reader holds no bytes yet: a client may not send frames before the
	// handshake ends.)
	h.count.accepted.Add(1)
	c := newConn(h, ws.NetConn(), nil, format, id, state, r.RemoteAddr)
	c.userBroadcasts = speaksUserBroadcasts(format, q)
	h.addConn(c)
	h.wg.Add(1) // within this admitted request, so never after Close's Wait began
	go c.run()
}

// originAllowed reports whether a request from origin may connect. A request without
// an Origin header (a non-browser client) is allowed, as in Phoenix's check_origin.
func (h *Hub) originAllowed(origin string) bool {
	if len(h.cfg.Origins) == 0 || origin == "" {
		return true
	}
	return slices.ContainsFunc(h.cfg.Origins, func(o string) bool { return strings.EqualFold(o, origin) })
}

// authToken returns the token the 1.8 JS client passes as the subprotocol
// "base64url.bearer.phx.<token in unpadded base64>", or "" if there is none or it does
// not decode.
func authToken(r *http.Request) string {
	for _, p := range websocket.Subprotocols(r) {
		enc, ok := strings.CutPrefix(p, authTokenPrefix)
		if !ok {
			continue
		}
		enc = strings.TrimRight(enc, "=")
		enc64 := base64.RawStdEncoding // what the JS client's btoa produces
		if strings.ContainsAny(enc, "-_") {
			enc64 = base64.RawURLEncoding
		}
		tok, err := enc64.DecodeString(enc)
		if err != nil {
			return ""
		}
		return string(tok)
	}
	return ""
}

// remoteIP returns the host part of a request's RemoteAddr.
func remoteIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}
