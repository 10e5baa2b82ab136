package httpapi

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/luachan/luachan/hub"
)

// disconnectEvent, broadcast on a socket id, makes every node close the sockets with
// that id (hub.Hub.DeliverLocal).
const disconnectEvent = "disconnect"

// Hub is what the API needs from the hub. *hub.Hub implements it.
type Hub interface {
	// Broadcast delivers b to the local subscribers and publishes it to the other nodes.
	Broadcast(b *hub.Broadcast) error
	// Disconnect closes this node's sockets with id and returns how many.
	Disconnect(id string) int
}

// Publisher carries a broadcast to the other nodes only. hub.PubSub implements it.
type Publisher interface {
	Publish(b *hub.Broadcast) error
}

// History reads topic histories for GET /api/history. The engine implements it.
type History interface {
	// History returns topic's broadcasts after since ("": the latest), at most limit
	// (0: all the cap allows). ok is false when topic keeps no history; recovered is
	// false when since is not a position the history still holds.
	History(topic, since string, limit int) (entries []HistoryEntry, current string, recovered, ok bool)
}

// HistoryEntry is one broadcast of a topic's history.
type HistoryEntry struct {
	Position string          `json:"position"`
	Event    string          `json:"event"`
	Payload  json.RawMessage `json:"payload"`
}

// Config configures the API. Zero values take the defaults in parentheses.
type Config struct {
	Key      string       // the bearer key; "" disables the API: every request gets 404
	Hub      Hub          // required
	PubSub   Publisher    // (nil: this node only) tells the other nodes to disconnect
	History  History      // (nil: GET /api/history answers 404) topic histories
	MaxBody  int64        // (hub.DefaultMaxFrameSize) request body limit
	MaxDepth int          // (hub.DefaultMaxDepth) payload nesting limit
	Logger   *slog.Logger // (slog.Default())
}

// api serves the routes of New.
type api struct {
	cfg Config
	log *slog.Logger
}

// New returns the HTTP API for broadcasting from outside, authenticated with
// "Authorization: Bearer key":
//
//	POST /api/broadcast  {"topic","event","payload"}  202; payload must be an object ({} if absent)
//	POST /api/disconnect {"id"}                       202 {"closed":n} (n on this node; every node closes its own)
//	GET  /api/history?topic=T&since=P&limit=N         200 [{"position","event","payload"}, ...]
//
// /api/history answers with the topic's current position in the X-History-Position
// header; 404 for a topic with no history, 410 when since is older than the history
// kept (or of another epoch, or malformed): the client must reload its state.
//
// A missing or wrong key gets 401, a bad body 400. Errors have a {"error":"..."} body.
func New(cfg Config) http.Handler {
	if cfg.Key == "" {
		return http.NotFoundHandler()
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = hub.DefaultMaxFrameSize
	}
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = hub.DefaultMaxDepth
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &api{cfg: cfg, log: cfg.Logger}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/broadcast", a.broadcast)
	mux.HandleFunc("POST /api/disconnect", a.disconnect)
	mux.HandleFunc("GET /api/history", a.history)
	return RequireKey(cfg.Key, mux)
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

// broadcast handles POST /api/broadcast.
func (a *api) broadcast(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Topic   string          `json:"topic"`
		Event   string          `json:"event"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := a.decodeBody(w, r, &body); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if body.Topic == "" || body.Event == "" {
		apiError(w, http.StatusBadRequest, "topic and event are required")
		return
	}
	payload := bytes.TrimSpace(body.Payload)
	if len(payload) == 0 || string(payload) == "null" {
		payload = []byte("{}")
	}
	if !utf8.Valid(payload) {
		apiError(w, http.StatusBadRequest, "payload is not valid UTF-8")
		return
	}
	if err := hub.CheckPayload(payload, a.cfg.MaxDepth); err != nil {
		apiError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "hub: bad frame: "))
		return
	}
	err := a.cfg.Hub.Broadcast(&hub.Broadcast{Topic: body.Topic, Event: body.Event, Payload: payload})
	if err != nil {
		// Local subscribers have it; other nodes may not. Still accepted, but logged.
		a.log.Warn("api broadcast not published", "topic", body.Topic, "reason", err)
	}
	w.WriteHeader(http.StatusAccepted)
}

// disconnect handles POST /api/disconnect.
func (a *api) disconnect(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ID string `json:"id"`
	}
	if err := a.decodeBody(w, r, &body); err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if body.ID == "" {
		apiError(w, http.StatusBadRequest, "id is required")
		return
	}
	n := a.cfg.Hub.Disconnect(body.ID)
	// The other nodes close theirs when the same "disconnect" broadcast reaches them.
	if a.cfg.PubSub != nil {
		b := &hub.Broadcast{Topic: body.ID, Event: disconnectEvent, Payload: []byte("{}")}
		if err := a.cfg.PubSub.Publish(b); err != nil {
			a.log.Warn("api disconnect not published to other nodes", "id", body.ID, "reason", err)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(struct {
		Closed int `json:"closed"`
	}{n})
}

// decodeBody reads a JSON object body of at most MaxBody bytes into v.
func (a *api) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBody))
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

// history handles GET /api/history.
func (a *api) history(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	topic := q.Get("topic")
	if topic == "" {
		apiError(w, http.StatusBadRequest, "topic is required")
		return
	}
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			apiError(w, http.StatusBadRequest, "limit must be a whole number from 1")
			return
		}
		limit = n
	}
	if a.cfg.History == nil {
		apiError(w, http.StatusNotFound, "topic has no history")
		return
	}
	entries, current, recovered, ok := a.cfg.History.History(topic, q.Get("since"), limit)
	if !ok {
		apiError(w, http.StatusNotFound, "topic has no history")
		return
	}
	w.Header().Set("X-History-Position", current)
	if !recovered {
		apiError(w, http.StatusGone, "since is not in the history kept")
		return
	}
	if entries == nil {
		entries = []HistoryEntry{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(entries)
}
