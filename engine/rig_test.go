package engine

// An in-process rig for the engine's tests: the real hub and engine behind an
// httptest server, and a small Phoenix V2 client over gorilla/websocket.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/luachan/luachan/hub"
)

// rigTimeout bounds every wait of a rig test for one frame or one shutdown.
const rigTimeout = 5 * time.Second

// rig is one hub and engine serving a scripts folder on 127.0.0.1.
type rig struct {
	hub *hub.Hub
	eng *Engine
	srv *httptest.Server
	log *syncBuffer

	mu    sync.Mutex
	conns []*websocket.Conn // every client dialled, closed by close
}

// handlerRef lets the hub be built before the engine it hands sockets to.
type handlerRef struct{ hub.Handler }

// startRig writes scripts (file name to source) into a temporary folder and
// serves it. The hub and engine are shut down by close, or when the test ends.
func startRig(tb testing.TB, scripts map[string]string) *rig {
	tb.Helper()
	dir := tb.TempDir()
	for name, src := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	r := &rig{log: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var h handlerRef
	r.hub = hub.New(hub.Config{Handler: &h, Logger: logger})
	eng, err := New(Config{Dir: dir, Hub: r.hub, Logger: logger})
	if err != nil {
		tb.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		_ = eng.Close(context.Background())
		tb.Fatal(err)
	}
	r.eng = eng
	h.Handler = eng
	r.srv = httptest.NewServer(r.hub)
	tb.Cleanup(func() {
		r.srv.Close()
		if tb.Failed() {
			tb.Logf("log:\n%s", r.log)
		}
	})
	tb.Cleanup(func() { _ = r.close() })
	return r
}

// close closes the clients, then the hub and then the engine, as
// cmd/luachan does, each within rigTimeout, returning the first error.
func (r *rig) close() error {
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), rigTimeout)
	defer cancel()
	if err := r.hub.Close(ctx); err != nil {
		return err
	}
	return r.eng.Close(ctx)
}

// rigClient is one V2 WebSocket client of a rig.
type rigClient struct {
	tb   testing.TB
	conn *websocket.Conn
}

func (r *rig) dial(tb testing.TB) *rigClient {
	tb.Helper()
	u := "ws" + strings.TrimPrefix(r.srv.URL, "http") + "/socket/websocket?vsn=2.0.0"
	d := websocket.Dialer{HandshakeTimeout: rigTimeout}
	conn, _, err := d.Dial(u, nil)
	if err != nil {
		tb.Fatalf("dial %s: %v", u, err)
	}
	r.mu.Lock()
	r.conns = append(r.conns, conn)
	r.mu.Unlock()
	return &rigClient{tb: tb, conn: conn}
}

func (c *rigClient) send(text string) {
	c.tb.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(rigTimeout))
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
		c.tb.Fatalf("write: %v", err)
	}
}

// expect reads the next frame and requires it to equal want (JSON, compared
// by value).
func (c *rigClient) expect(want string) {
	c.tb.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(rigTimeout))
	_, data, err := c.conn.ReadMessage()
	if err != nil {
		c.tb.Fatalf("waiting for %s: %v", want, err)
	}
	var g, w any
	if json.Unmarshal(data, &g) != nil || json.Unmarshal([]byte(want), &w) != nil || !reflect.DeepEqual(g, w) {
		c.tb.Fatalf("unexpected frame:\n got %s\nwant %s", data, want)
	}
}

// join joins topic with join ref and ref joinRef, expecting an ok reply {}.
func (c *rigClient) join(topic, joinRef string) {
	c.tb.Helper()
	c.send(`["` + joinRef + `","` + joinRef + `","` + topic + `","phx_join",{}]`)
	c.expect(`["` + joinRef + `","` + joinRef + `","` + topic + `","phx_reply",{"status":"ok","response":{}}]`)
}

func (c *rigClient) heartbeat(ref string) {
	c.tb.Helper()
	c.send(`[null,"` + ref + `","phoenix","heartbeat",{}]`)
	c.expect(`[null,"` + ref + `","phoenix","phx_reply",{"status":"ok","response":{}}]`)
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

var _ io.Writer = (*syncBuffer)(nil)

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
