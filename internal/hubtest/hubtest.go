// Package hubtest is a test rig for the packages around hub: a real Hub behind an
// httptest server, real WebSocket clients, a Subscriber that records what it is
// delivered, and bounded waits. hub/redis and httpapi test through it.
package hubtest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/luachan/luachan/hub"
)

// WaitTimeout bounds every wait on a condition.
const WaitTimeout = 5 * time.Second

// Leaked returns the stacks of goroutines whose stack contains any of marks (e.g.
// "luachan/hub.(*"), after giving them WaitTimeout to finish. A
// TestMain calls it once the tests have run.
func Leaked(marks ...string) string {
	deadline := time.Now().Add(WaitTimeout)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if slices.ContainsFunc(marks, func(m string) bool { return strings.Contains(g, m) }) && !strings.Contains(g, "hubtest.Leaked") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitFor polls cond until it holds or WaitTimeout passes (nats-server checkFor).
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Recv returns the next value of ch, failing the test after WaitTimeout.
func Recv[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(WaitTimeout):
		tb.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// ExpectJSON fails unless got and want hold the same JSON value.
func ExpectJSON(tb testing.TB, got []byte, want string) {
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

// handler accepts every connection, with the socket id of the query's id parameter,
// and hands each session to opened.
type handler struct{ opened chan *session }

func (h *handler) Connect(r *hub.ConnectRequest) (bool, string, any) {
	return true, r.Params.Get("id"), nil
}

func (h *handler) Open(c *hub.Conn) hub.Session {
	s := &session{conn: c, closed: make(chan error, 1)}
	h.opened <- s
	return s
}

// NewHandler returns a hub.Handler that accepts every connection and ignores its frames.
func NewHandler() hub.Handler { return &handler{opened: make(chan *session, 1024)} }

// session drops frames and records the close reason.
type session struct {
	conn   *hub.Conn
	closed chan error
}

func (s *session) Handle(*hub.Message) {}
func (s *session) Closed(reason error) { s.closed <- reason }

// Server is a Hub behind a real HTTP server.
type Server struct {
	Hub     *hub.Hub
	handler *handler
	srv     *httptest.Server
}

// StartServer starts a Hub with cfg (Handler filled in) and shuts it down when the
// test ends.
func StartServer(tb testing.TB, cfg hub.Config) *Server {
	tb.Helper()
	th := &handler{opened: make(chan *session, 1024)}
	cfg.Handler = th
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h := hub.New(cfg)
	mux := http.NewServeMux()
	mux.Handle("/socket/websocket", h)
	srv := httptest.NewServer(mux)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			tb.Errorf("Close: %v", err)
		}
		srv.Close()
	})
	return &Server{Hub: h, handler: th, srv: srv}
}

// Client is a test's side of one WebSocket connection.
type Client struct {
	TB     testing.TB
	WS     *websocket.Conn
	Conn   *hub.Conn // the server side
	closed chan error
}

// Dial connects with query (e.g. "vsn=2.0.0&id=user:1") and waits for the server's side.
func (ts *Server) Dial(tb testing.TB, query string) *Client {
	tb.Helper()
	u := "ws" + strings.TrimPrefix(ts.srv.URL, "http") + "/socket/websocket"
	if query != "" {
		u += "?" + query
	}
	ws, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		tb.Fatalf("dial %q: %v (response %v)", query, err, resp)
	}
	tb.Cleanup(func() { ws.Close() })
	s := Recv(tb, ts.handler.opened, "session to open")
	return &Client{TB: tb, WS: ws, Conn: s.conn, closed: s.closed}
}

// Join subscribes c to topic with a new Sub intercepting the given events.
func (ts *Server) Join(c *Client, topic string, intercept ...string) *Sub {
	s := NewSub(c.Conn, intercept...)
	ts.Hub.Subscribe(topic, s)
	return s
}

// SendText sends one text frame.
func (c *Client) SendText(s string) {
	c.TB.Helper()
	if err := c.WS.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.TB.Fatalf("write: %v", err)
	}
}

// Read returns the next frame from the server.
func (c *Client) Read() (typ int, data []byte) {
	c.TB.Helper()
	c.WS.SetReadDeadline(time.Now().Add(WaitTimeout))
	typ, data, err := c.WS.ReadMessage()
	if err != nil {
		c.TB.Fatalf("read: %v", err)
	}
	return typ, data
}

// ReadV2 returns the next frame as a decoded V2 array.
func (c *Client) ReadV2() []any {
	c.TB.Helper()
	_, data := c.Read()
	var arr []any
	if err := json.Unmarshal(data, &arr); err != nil || len(arr) != 5 {
		c.TB.Fatalf("not a V2 frame: %s (%v)", data, err)
	}
	return arr
}

// ExpectClose reads until the server's close frame and checks its code.
func (c *Client) ExpectClose(code int) {
	c.TB.Helper()
	c.WS.SetReadDeadline(time.Now().Add(WaitTimeout))
	for {
		_, _, err := c.WS.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.TB.Fatalf("want close %d, got %v", code, err)
		}
		if ce.Code != code {
			c.TB.Fatalf("want close %d, got %d %q", code, ce.Code, ce.Text)
		}
		return
	}
}

// ClosedReason waits for the server-side Session.Closed and returns its reason.
func (c *Client) ClosedReason() error {
	c.TB.Helper()
	return Recv(c.TB, c.closed, "Session.Closed")
}

// Sub is a hub.Subscriber on one connection that records the broadcasts it intercepts.
type Sub struct {
	conn      *hub.Conn
	intercept []string
	Delivered chan *hub.Broadcast // what Deliver was given
}

// NewSub returns a Sub of c intercepting the given events.
func NewSub(c *hub.Conn, intercept ...string) *Sub {
	return &Sub{conn: c, intercept: intercept, Delivered: make(chan *hub.Broadcast, 16)}
}

func (s *Sub) Conn() *hub.Conn              { return s.conn }
func (s *Sub) Intercepts(event string) bool { return slices.Contains(s.intercept, event) }
func (s *Sub) Deliver(b *hub.Broadcast)     { s.Delivered <- b }
