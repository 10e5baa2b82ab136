package hub

import (
	"bufio"
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
// request runs the connection's reader on this goroutine until the socket closes.
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
	hw := &hijackWriter{ResponseWriter: w}
	ws, err := h.upgrader.Upgrade(hw, r, nil) // answers the client itself on failure
	if err != nil {
		h.log.Debug("upgrade failed", "remote", r.RemoteAddr, "reason", err)
		return
	}
	// From here on the hub reads and writes the socket itself; ws is dropped.
	nc := ws.NetConn()
	br := hw.br
	if br == nil || br.Size() < minReuseReadBuffer {
		br = bufio.NewReaderSize(nc, readBufferSize)
	}
	h.count.accepted.Add(1)
	c := newConn(h, nc, br, format, id, state, r.RemoteAddr)
	h.addConn(c)
	c.run()
}

// minReuseReadBuffer is the smallest net/http read buffer worth reading frames through.
const minReuseReadBuffer = 256

// hijackWriter records the buffered reader net/http hands over when the connection is
// hijacked for the upgrade. net/http keeps that buffer (4 KiB) alive for as long as the
// handler runs, which for a WebSocket is the connection's whole life, so the reader
// reads frames through it rather than allocating another. (gorilla/websocket checks
// that it holds no bytes yet: a client may not send frames before the handshake ends.)
type hijackWriter struct {
	http.ResponseWriter
	br *bufio.Reader
}

// Hijack hijacks the underlying connection and keeps its buffered reader.
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if brw != nil {
		w.br = brw.Reader
	}
	return nc, brw, err
}

// Unwrap gives http.ResponseController access to the wrapped writer.
func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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
