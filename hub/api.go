package hub

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"
)

// APIHandler serves the HTTP API for broadcasting from outside, authenticated with
// "Authorization: Bearer key":
//
//	POST /api/broadcast  {"topic","event","payload"}  202; payload must be an object ({} if absent)
//	POST /api/disconnect {"id"}                       202 {"closed":n} (n on this node; every node closes its own)
//
// A missing or wrong key gets 401, a bad body 400. key "" disables the API: every
// request gets 404. Errors have a {"error":"..."} body.
func (h *Hub) APIHandler(key string) http.Handler {
	if key == "" {
		return http.NotFoundHandler()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/broadcast", h.apiBroadcast)
	mux.HandleFunc("POST /api/disconnect", h.apiDisconnect)
	return RequireKey(key, mux)
}

// RequireKey lets through requests bearing "Authorization: Bearer key" and answers the
// others 401 with a {"error":"unauthorized"} body. Other parts of the API (the engine's
// /api/scripts) are mounted behind it too, so there is one check.
func RequireKey(key string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(key))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		// Hashing first makes the comparison constant-time in the key's length too.
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			apiError(w, http.StatusUnauthorized, "unauthorized")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// apiBroadcast handles POST /api/broadcast.
func (h *Hub) apiBroadcast(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Topic   string          `json:"topic"`
		Event   string          `json:"event"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := h.decodeAPIBody(w, r, &body); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if body.Topic == "" || body.Event == "" {
		apiError(w, http.StatusBadRequest, "topic and event are required")
		return
	}
	payload := bytes.TrimSpace(body.Payload)
	if len(payload) == 0 || string(payload) == "null" {
		payload = emptyObject
	}
	if !utf8.Valid(payload) {
		apiError(w, http.StatusBadRequest, "payload is not valid UTF-8")
		return
	}
	if err := checkPayload(payload, h.cfg.MaxDepth); err != nil {
		apiError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "hub: bad frame: "))
		return
	}
	err := h.Broadcast(&Broadcast{Topic: body.Topic, Event: body.Event, Payload: payload})
	if err != nil {
		// Local subscribers have it; other nodes may not. Still accepted, but logged.
		h.log.Warn("api broadcast not published", "topic", body.Topic, "reason", err)
	}
	w.WriteHeader(http.StatusAccepted)
}

// apiDisconnect handles POST /api/disconnect.
func (h *Hub) apiDisconnect(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ID string `json:"id"`
	}
	if err := h.decodeAPIBody(w, r, &body); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if body.ID == "" {
		apiError(w, http.StatusBadRequest, "id is required")
		return
	}
	n := h.Disconnect(body.ID)
	// The other nodes close theirs when the same "disconnect" broadcast reaches them.
	if h.cfg.PubSub != nil {
		b := &Broadcast{Topic: body.ID, Event: disconnectEvent, Payload: emptyObject}
		if err := h.cfg.PubSub.Publish(b); err != nil {
			h.log.Warn("api disconnect not published to other nodes", "id", body.ID, "reason", err)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(struct {
		Closed int `json:"closed"`
	}{n})
}

// decodeAPIBody reads a JSON object body of at most MaxFrameSize bytes into v.
func (h *Hub) decodeAPIBody(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxFrameSize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errors.New("body too large")
		}
		return errors.New("body unreadable")
	}
	if len(bytes.TrimSpace(body)) == 0 || bytes.TrimSpace(body)[0] != '{' || json.Unmarshal(body, v) != nil {
		return errors.New("body is not a JSON object of the right shape")
	}
	return nil
}

// apiError answers with status and {"error": msg}.
func apiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}
