package scripttest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
)

// A test's socket is a Phoenix LongPoll session served by the real hub, reached by calling
// its http.Handler directly: no listener and no network, but the hub's own Connect, codec,
// queue and session, as a browser on LongPoll gets them. Frames go in as POSTs (the hub
// hands each to the engine before the POST returns); a poller goroutine per socket collects
// what the server sends into the socket's inbox.

// longPollPath is where the hub's LongPoll handler is mounted in the server.
const longPollPath = "/socket/longpoll"

// longPollTokenParam is the query parameter naming a LongPoll session.
const longPollTokenParam = "token"

// frame is one server frame: [join_ref, ref, topic, event, payload].
type frame struct {
	joinRef, ref, topic, event string
	payload                    json.RawMessage
}

// socket is one connected test socket.
type socket struct {
	env   *env
	token string
	done  chan struct{} // closed when the poller has stopped: the session is over

	mu      sync.Mutex // guards the fields below
	replies map[string]frame
	inbox   []frame       // pushes and broadcasts not yet taken by an assertion
	changed chan struct{} // closed and replaced whenever the fields above change
	closed  bool
}

// connect opens a LongPoll session with params; a refused one is nil with the status.
// LongPoll names its session "token" in the query, so a param of that name cannot pass;
// a token goes as authToken, as the JS client sends it.
func (e *env) connect(params map[string]string, authToken string) (*socket, string, error) {
	q := url.Values{"vsn": {"2.0.0"}}
	for k, v := range params {
		if k == longPollTokenParam {
			return nil, "", errors.New(`connect: a param named "token" cannot reach socket.lua in a test; pass it as t.connect(params, { auth_token = token })`)
		}
		q.Set(k, v)
	}
	h := http.Header{}
	if authToken != "" {
		h.Set("X-Phoenix-AuthToken", authToken)
	}
	status, body := e.request(http.MethodGet, q, nil, h)
	var open struct {
		Status int    `json:"status"`
		Token  string `json:"token"`
	}
	if err := json.Unmarshal(body, &open); err != nil {
		return nil, "", fmt.Errorf("connect: the server answered %d %q", status, body)
	}
	if open.Status == http.StatusForbidden {
		return nil, "refused", nil
	}
	if open.Status != http.StatusGone || open.Token == "" {
		return nil, "", fmt.Errorf("connect: the server answered %s", body)
	}
	s := &socket{
		env:     e,
		token:   open.Token,
		done:    make(chan struct{}),
		replies: make(map[string]frame),
		changed: make(chan struct{}),
	}
	e.mu.Lock()
	e.sockets = append(e.sockets, s)
	e.mu.Unlock()
	e.wg.Add(1)
	go s.poll()
	return s, "", nil
}

// request calls the hub's LongPoll handler in process.
func (e *env) request(method string, q url.Values, body []byte, h http.Header) (int, []byte) {
	r := httptest.NewRequestWithContext(e.ctx, method, longPollPath+"?"+q.Encode(), bytes.NewReader(body))
	if h != nil {
		r.Header = h
	}
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	e.longPoll.ServeHTTP(w, r)
	return w.Code, w.Body.Bytes()
}

// poll collects what the server sends until the session ends.
func (s *socket) poll() {
	defer s.env.wg.Done()
	defer close(s.done)
	defer s.update(func() { s.closed = true })
	q := url.Values{longPollTokenParam: {s.token}}
	for s.env.ctx.Err() == nil {
		_, body := s.env.request(http.MethodGet, q, nil, nil)
		var resp struct {
			Status   int      `json:"status"`
			Messages []string `json:"messages"`
		}
		if json.Unmarshal(body, &resp) != nil || resp.Status == http.StatusGone {
			return
		}
		for _, m := range resp.Messages {
			f, err := decodeFrame([]byte(m))
			if err != nil {
				continue
			}
			s.update(func() {
				if f.event == "phx_reply" {
					s.replies[f.ref] = f
				} else {
					s.inbox = append(s.inbox, f)
				}
			})
		}
	}
}

// update changes the inbox under the lock and wakes whoever waits on it.
func (s *socket) update(f func()) {
	s.mu.Lock()
	f()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// send POSTs one client frame; the hub hands it to the engine before answering.
func (s *socket) send(joinRef, ref, topic, event string, payload []byte) error {
	msg, err := json.Marshal([]any{nullable(joinRef), nullable(ref), topic, event, json.RawMessage(payload)})
	if err != nil {
		return err
	}
	_, body := s.env.request(http.MethodPost, url.Values{longPollTokenParam: {s.token}}, msg, nil)
	var resp struct {
		Status int `json:"status"`
	}
	if json.Unmarshal(body, &resp) != nil || resp.Status != http.StatusOK {
		return fmt.Errorf("the socket is closed (the server answered %s)", strings.TrimSpace(string(body)))
	}
	return nil
}

// errNoReply is waitReply's error when the socket ended without answering.
var errNoReply = errors.New("the socket closed")

// waitReply takes the reply to ref, waiting for it until ctx ends.
func (s *socket) waitReply(ctx context.Context, ref string) (frame, error) {
	for {
		s.mu.Lock()
		f, ok := s.replies[ref]
		delete(s.replies, ref)
		closed, changed := s.closed, s.changed
		s.mu.Unlock()
		switch {
		case ok:
			return f, nil
		case closed:
			return frame{}, errNoReply
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return frame{}, ctx.Err()
		}
	}
}

// reply takes the reply to ref if it came.
func (s *socket) reply(ref string) (frame, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.replies[ref]
	delete(s.replies, ref)
	return f, ok
}

// barrier returns once everything the server queued on the socket before it was called has
// reached the inbox: the hub answers a heartbeat itself, behind what is queued.
func (s *socket) barrier(ctx context.Context) error {
	ref := s.env.nextRef()
	if err := s.send("", ref, "phoenix", "heartbeat", []byte(`{}`)); err != nil {
		return nil // closed: nothing more will come
	}
	if _, err := s.waitReply(ctx, ref); err != nil && !errors.Is(err, errNoReply) {
		return err
	}
	return nil
}

// isClosed reports whether the session is over.
func (s *socket) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// decodeFrame parses a V2 JSON frame.
func decodeFrame(data []byte) (frame, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(data, &parts); err != nil || len(parts) != 5 {
		return frame{}, fmt.Errorf("not a V2 frame: %s", data)
	}
	var f frame
	for i, dst := range []*string{&f.joinRef, &f.ref, &f.topic, &f.event} {
		var v *string
		if err := json.Unmarshal(parts[i], &v); err != nil {
			return frame{}, err
		}
		if v != nil {
			*dst = *v
		}
	}
	f.payload = parts[4]
	return f, nil
}

// nullable is JSON null for "".
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// replyOf splits a phx_reply's payload into status and response.
func replyOf(f frame) (status string, response []byte) {
	var r struct {
		Status   string          `json:"status"`
		Response json.RawMessage `json:"response"`
	}
	_ = json.Unmarshal(f.payload, &r)
	return r.Status, r.Response
}
