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
	dir string // the scripts folder

	mu    sync.Mutex
	conns []*websocket.Conn // every client dialled, closed by close
}

// handlerRef lets the hub be built before the engine it hands sockets to.
type handlerRef struct{ hub.Handler }

// startRig writes scripts (file name to source) into a temporary folder and
// serves it. The hub and engine are shut down by close, or when the test ends.
func startRig(tb testing.TB, scripts map[string]string) *rig {
	tb.Helper()
	return startRigWith(tb, scripts, Config{})
}

// startRigWith is startRig with an engine configured as cfg (Dir, Hub and
// Logger filled in).
func startRigWith(tb testing.TB, scripts map[string]string, cfg Config) *rig {
	tb.Helper()
	r := &rig{log: &syncBuffer{}, dir: tb.TempDir()}
	for name, src := range scripts {
		r.writeScript(tb, name, src)
	}
	logger := slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var h handlerRef
	r.hub = hub.New(hub.Config{Handler: &h, Logger: logger})
	cfg.Dir, cfg.Hub, cfg.Logger = r.dir, r.hub, logger
	eng, err := New(cfg)
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

// writeScript writes src as the scripts folder's file name; Reload (or
// reload) picks it up.
func (r *rig) writeScript(tb testing.TB, name, src string) {
	tb.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, name), []byte(src), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// reload rescans the scripts folder, as the watcher does.
func (r *rig) reload(tb testing.TB) {
	tb.Helper()
	if err := r.eng.Reload(); err != nil {
		tb.Fatalf("reload: %v", err)
	}
}

// waitIdle waits until no channel event is queued or running.
func (r *rig) waitIdle(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rigTimeout)
	defer cancel()
	if err := r.eng.WaitIdle(ctx); err != nil {
		tb.Fatalf("engine not idle: %v", err)
	}
}

// channel returns the channel joined to topic (one socket's only), failing
// the test if there is none.
func (r *rig) channel(tb testing.TB, topic string) *channel {
	tb.Helper()
	r.eng.mu.Lock()
	defer r.eng.mu.Unlock()
	for _, f := range r.eng.files {
		f.mu.Lock()
		for c := range f.chans {
			if c.topic == topic {
				f.mu.Unlock()
				return c
			}
		}
		f.mu.Unlock()
	}
	tb.Fatalf("no channel joined to %s", topic)
	return nil
}

// queued is how many events wait in the mailbox.
func (m *mailbox) queued() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.queue)
}

// waitFor polls cond until it holds, failing the test after rigTimeout.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(rigTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
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
	data := c.readFrame("waiting for " + want)
	var g, w any
	if json.Unmarshal(data, &g) != nil || json.Unmarshal([]byte(want), &w) != nil || !reflect.DeepEqual(g, w) {
		c.tb.Fatalf("unexpected frame:\n got %s\nwant %s", data, want)
	}
}

// readFrame reads the next frame, failing the test with what after rigTimeout.
func (c *rigClient) readFrame(what string) []byte {
	c.tb.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(rigTimeout))
	_, data, err := c.conn.ReadMessage()
	if err != nil {
		c.tb.Fatalf("%s: %v", what, err)
	}
	return data
}

// expectPush reads the next frame, requires it to be event on topic, and
// returns its payload decoded, for a test to look into.
func (c *rigClient) expectPush(topic, event string) map[string]any {
	c.tb.Helper()
	data := c.readFrame("waiting for " + event)
	var f []any
	if err := json.Unmarshal(data, &f); err != nil || len(f) != 5 || f[2] != topic || f[3] != event {
		c.tb.Fatalf("unexpected frame:\n got %s\nwant %s on %s", data, event, topic)
	}
	p, _ := f[4].(map[string]any)
	return p
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
