package luabind_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/luachan/luachan/luabind"
)

// sent is one push or broadcast a script made.
type sent struct {
	Topic       string
	Event       string
	Payload     luabind.Payload
	ExcludeSelf bool
	Broadcast   bool
}

// fakeSocket is a Socket that records what scripts send.
type fakeSocket struct {
	topic, joinRef, id string

	mu   sync.Mutex
	sent []sent
}

func newFakeSocket(topic string) *fakeSocket {
	return &fakeSocket{topic: topic, joinRef: "1", id: ""}
}

func (f *fakeSocket) Topic() string   { return f.topic }
func (f *fakeSocket) JoinRef() string { return f.joinRef }
func (f *fakeSocket) ID() string      { return f.id }

func (f *fakeSocket) Push(event string, p luabind.Payload) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, sent{Topic: f.topic, Event: event, Payload: p})
	return nil
}

func (f *fakeSocket) Broadcast(event string, p luabind.Payload, excludeSelf bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, sent{Topic: f.topic, Event: event, Payload: p, ExcludeSelf: excludeSelf, Broadcast: true})
	return nil
}

func (f *fakeSocket) messages() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sent(nil), f.sent...)
}

// fakeHost is a Host that records luachan.broadcast calls.
type fakeHost struct {
	mu   sync.Mutex
	sent []sent
}

func (h *fakeHost) Broadcast(topic, event string, p luabind.Payload) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sent = append(h.sent, sent{Topic: topic, Event: event, Payload: p, Broadcast: true})
	return nil
}

func (h *fakeHost) messages() []sent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sent(nil), h.sent...)
}

// logBuffer collects log lines as JSON, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the log records written so far.
func (b *logBuffer) lines(tb testing.TB) []map[string]any {
	tb.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			tb.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// testOptions returns options logging into a buffer, with a host and a scripts folder.
func testOptions(tb testing.TB) (luabind.Options, *fakeHost, *logBuffer) {
	tb.Helper()
	logs := &logBuffer{}
	host := &fakeHost{}
	return luabind.Options{
		Dir:    tb.TempDir(),
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Host:   host,
	}, host, logs
}

// mustLoad loads src as "test.lua", failing the test on error.
func mustLoad(tb testing.TB, opts luabind.Options, src string) *luabind.Script {
	tb.Helper()
	s, err := luabind.LoadSource(opts, "test.lua", []byte(src))
	if err != nil {
		tb.Fatalf("load: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// writeFile writes a file under dir, creating folders.
func writeFile(tb testing.TB, dir, rel, content string) string {
	tb.Helper()
	path := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// jsonPayload makes a JSON payload.
func jsonPayload(s string) luabind.Payload {
	return luabind.Payload{Data: []byte(s)}
}

// ctx returns a context that ends with the test.
func testContext(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// assertJSON fails unless got and want are equal JSON texts, byte for byte.
func assertJSON(tb testing.TB, got []byte, want string) {
	tb.Helper()
	if string(got) != want {
		tb.Errorf("got %s, want %s", got, want)
	}
}
