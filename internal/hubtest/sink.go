package hubtest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/luachan/luachan/hub"
)

// Sink is a net.Conn whose writes vanish, counted, and whose reads wait until it is
// closed: a subscriber without a socket, so that a benchmark can run the real writers
// of thousands of subscribers.
type Sink struct {
	written atomic.Int64
	done    chan struct{}
	once    sync.Once

	mu       sync.Mutex    // guards the fields below
	deadline time.Time     // of reads
	moved    chan struct{} // closed (and replaced) when deadline changes
}

// Written returns how many bytes the hub has written to s since it was attached.
func (s *Sink) Written() int64 { return s.written.Load() }

func (s *Sink) Write(p []byte) (int, error) { s.written.Add(int64(len(p))); return len(p), nil }
func (s *Sink) Close() error                { s.once.Do(func() { close(s.done) }); return nil }
func (s *Sink) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (s *Sink) RemoteAddr() net.Addr        { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func (s *Sink) SetDeadline(t time.Time) error    { return s.SetReadDeadline(t) }
func (s *Sink) SetWriteDeadline(time.Time) error { return nil }

// SetReadDeadline makes a waiting Read, and later ones, fail at t, as a socket's would.
func (s *Sink) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.deadline = t
	close(s.moved)
	s.moved = make(chan struct{})
	s.mu.Unlock()
	return nil
}

// Read waits until s is closed (io.EOF) or its read deadline passes.
func (s *Sink) Read([]byte) (int, error) {
	for {
		s.mu.Lock()
		deadline, moved := s.deadline, s.moved
		s.mu.Unlock()
		var expired <-chan time.Time
		if !deadline.IsZero() {
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-s.done:
			return 0, io.EOF
		case <-expired:
			return 0, os.ErrDeadlineExceeded
		case <-moved:
		}
	}
}

// hijacker answers a WebSocket upgrade over a Sink.
type hijacker struct {
	*httptest.ResponseRecorder
	conn *Sink
}

func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(bufio.NewReader(h.conn), bufio.NewWriter(h.conn)), nil
}

// AttachSink opens a V2 WebSocket connection on h, whose Handler must be NewHandler's,
// over a Sink, and returns its server side.
func AttachSink(tb testing.TB, h *hub.Hub, hd hub.Handler) (*hub.Conn, *Sink) {
	tb.Helper()
	th, ok := hd.(*handler)
	if !ok {
		tb.Fatal("AttachSink: the hub's Handler is not NewHandler's")
	}
	r := httptest.NewRequest(http.MethodGet, "/socket/websocket?vsn=2.0.0", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	s := &Sink{done: make(chan struct{}), moved: make(chan struct{})}
	h.ServeHTTP(hijacker{httptest.NewRecorder(), s}, r)
	c := Recv(tb, th.opened, "session to open").conn
	s.written.Store(0) // the upgrade's response
	return c, s
}
