package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/luachan/luachan/hub"
)

// waitTimeout bounds every wait on a condition in these tests.
const waitTimeout = 5 * time.Second

// TestMain fails the run if a connection goroutine outlives the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := hubGoroutines(); leaked != "" {
			os.Stderr.WriteString("leaked hub goroutines:\n" + leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// hubGoroutines returns the stacks of goroutines still running hub code, after giving
// them waitTimeout to finish.
func hubGoroutines() string {
	deadline := time.Now().Add(waitTimeout)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "luachan/hub.(*") && !strings.Contains(g, "hubGoroutines") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFor polls cond until it holds or waitTimeout passes (nats-server checkFor).
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// recv returns the next value of ch, failing the test after waitTimeout.
func recv[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		tb.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// testHandler is a Handler recording what the hub tells it. Query parameters steer it:
// reject=1 refuses the connection, id=X sets the socket id.
type testHandler struct {
	opened chan *testSession // every session, as it opens

	mu       sync.Mutex
	requests []*hub.ConnectRequest
}

func newTestHandler() *testHandler {
	return &testHandler{opened: make(chan *testSession, 1024)}
}

func (th *testHandler) Connect(r *hub.ConnectRequest) (bool, string, any) {
	th.mu.Lock()
	th.requests = append(th.requests, r)
	th.mu.Unlock()
	if r.Params.Get("reject") != "" {
		return false, "", nil
	}
	return true, r.Params.Get("id"), "state:" + r.Params.Get("id")
}

func (th *testHandler) Open(c *hub.Conn) hub.Session {
	s := &testSession{conn: c, msgs: make(chan *hub.Message, 1024), closed: make(chan error, 1)}
	th.opened <- s
	return s
}

// lastRequest returns the latest ConnectRequest.
func (th *testHandler) lastRequest(tb testing.TB) *hub.ConnectRequest {
	tb.Helper()
	th.mu.Lock()
	defer th.mu.Unlock()
	if len(th.requests) == 0 {
		tb.Fatal("no Connect call")
	}
	return th.requests[len(th.requests)-1]
}

// testSession records one connection's frames and its close reason.
type testSession struct {
	conn   *hub.Conn
	msgs   chan *hub.Message
	closed chan error
	onMsg  func(*hub.Message) // optional, runs in Handle
}

func (s *testSession) Handle(m *hub.Message) {
	if s.onMsg != nil {
		s.onMsg(m)
	}
	s.msgs <- m
}

func (s *testSession) Closed(reason error) { s.closed <- reason }

// testServer is a Hub behind a real HTTP server.
type testServer struct {
	hub     *hub.Hub
	handler *testHandler
	srv     *httptest.Server
}

// startServer starts a Hub with cfg (Handler filled in) and stops it when the test ends.
func startServer(tb testing.TB, cfg hub.Config) *testServer {
	tb.Helper()
	th := newTestHandler()
	cfg.Handler = th
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h := hub.New(cfg)
	mux := http.NewServeMux()
	mux.Handle("/socket/websocket", h)
	mux.Handle("/socket/longpoll", h.LongPollHandler())
	srv := httptest.NewServer(mux)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			tb.Errorf("Close: %v", err)
		}
		srv.Close()
	})
	return &testServer{hub: h, handler: th, srv: srv}
}

// wsURL returns the WebSocket URL with the given query.
func (ts *testServer) wsURL(query string) string {
	u := "ws" + strings.TrimPrefix(ts.srv.URL, "http") + "/socket/websocket"
	if query != "" {
		u += "?" + query
	}
	return u
}

// client is a test's side of one connection.
type client struct {
	tb      testing.TB
	ws      *websocket.Conn
	session *testSession // the server side
}

// dial connects with query (e.g. "vsn=2.0.0") and waits for the server's session.
func (ts *testServer) dial(tb testing.TB, query string) *client {
	tb.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(ts.wsURL(query), nil)
	if err != nil {
		tb.Fatalf("dial %q: %v (response %v)", query, err, resp)
	}
	tb.Cleanup(func() { ws.Close() })
	s := recv(tb, ts.handler.opened, "session to open")
	return &client{tb: tb, ws: ws, session: s}
}

// sendText sends one text frame.
func (c *client) sendText(s string) {
	c.tb.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.tb.Fatalf("write: %v", err)
	}
}

// read returns the next frame from the server.
func (c *client) read() (typ int, data []byte) {
	c.tb.Helper()
	c.ws.SetReadDeadline(time.Now().Add(waitTimeout))
	typ, data, err := c.ws.ReadMessage()
	if err != nil {
		c.tb.Fatalf("read: %v", err)
	}
	return typ, data
}

// readV2 returns the next frame as a decoded V2 array.
func (c *client) readV2() []any {
	c.tb.Helper()
	_, data := c.read()
	var arr []any
	if err := json.Unmarshal(data, &arr); err != nil || len(arr) != 5 {
		c.tb.Fatalf("not a V2 frame: %s (%v)", data, err)
	}
	return arr
}

// expectClose reads until the server's close frame and checks its code.
func (c *client) expectClose(code int) {
	c.tb.Helper()
	c.ws.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		_, _, err := c.ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.tb.Fatalf("want close %d, got %v", code, err)
		}
		if ce.Code != code {
			c.tb.Fatalf("want close %d, got %d %q", code, ce.Code, ce.Text)
		}
		return
	}
}

// closedReason waits for the server-side Session.Closed and returns its reason.
func (c *client) closedReason() error {
	c.tb.Helper()
	return recv(c.tb, c.session.closed, "Session.Closed")
}

// expectJSON fails unless got and want hold the same JSON value.
func expectJSON(tb testing.TB, got []byte, want string) {
	tb.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		tb.Fatalf("got invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		tb.Fatalf("want invalid JSON %s: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		tb.Fatalf("got %s, want %s", got, want)
	}
}
