package hub

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// nullConn is a net.Conn writing to /dev/null through a real file descriptor, so that a
// benchmark runs the production write path (a writev that does not block, as on a
// socket) for ten thousand subscribers without ten thousand sockets.
type nullConn struct {
	net.Conn // nil: only the methods below are called
	f        *os.File
}

func (n *nullConn) Write(p []byte) (int, error)           { return n.f.Write(p) }
func (n *nullConn) Read([]byte) (int, error)              { return 0, io.EOF }
func (n *nullConn) Close() error                          { return n.f.Close() }
func (n *nullConn) SetDeadline(time.Time) error           { return nil }
func (n *nullConn) SetReadDeadline(time.Time) error       { return nil }
func (n *nullConn) SetWriteDeadline(time.Time) error      { return nil }
func (n *nullConn) SyscallConn() (syscall.RawConn, error) { return n.f.SyscallConn() }

// drained reports whether every connection has written everything queued to it.
func drained(conns []*Conn) bool {
	for _, c := range conns {
		c.w.mu.Lock()
		busy := c.w.state != writerIdle || c.w.q.size() > 0
		c.w.mu.Unlock()
		if busy {
			return false
		}
	}
	return true
}

// BenchmarkFlush measures one fast-lane broadcast to subs subscribers through the
// flushers, including their writes (to /dev/null): what a broadcast costs the hub, less
// the kernel's TCP work. Allocations per op must not grow with subs.
func BenchmarkFlush(b *testing.B) {
	payload := []byte(`{"uid":"user:42","body":"hello, everyone in the lobby!"}`)
	for _, subs := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			h := New(Config{
				Handler:       nopHandler{},
				Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
				MaxQueueBytes: 1 << 30,
			})
			conns := make([]*Conn, subs)
			for i := range conns {
				f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
				if err != nil {
					b.Fatal(err)
				}
				conns[i] = newConn(h, &nullConn{f: f}, nil, V2, "", nil, "null")
				h.Subscribe("rooms:lobby", nullSub{conns[i]})
			}
			b.Cleanup(func() {
				for _, c := range conns {
					c.Close(CloseNormal, "")
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				h.Close(ctx)
				for _, c := range conns {
					<-c.w.done
					c.nc.Close()
				}
			})
			broadcast := func() {
				h.Broadcast(&Broadcast{Topic: "rooms:lobby", Event: "new:msg", Payload: payload})
			}
			wait := func() {
				for deadline := time.Now().Add(10 * time.Second); !drained(conns); {
					if time.Now().After(deadline) {
						b.Fatal("writers did not drain")
					}
					time.Sleep(time.Millisecond)
				}
			}
			for range 500 { // warm up: queues and the flush queue reach their working size
				broadcast()
			}
			wait()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				broadcast()
			}
			wait()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
		})
	}
}

// nopHandler accepts nothing; BenchmarkFlush needs no sessions.
type nopHandler struct{}

func (nopHandler) Connect(*ConnectRequest) (bool, string, any) { return false, "", nil }
func (nopHandler) Open(*Conn) Session                          { return nopSession{} }

// nullSub is a fast-laned subscriber.
type nullSub struct{ c *Conn }

func (s nullSub) Conn() *Conn          { return s.c }
func (nullSub) Intercepts(string) bool { return false }
func (nullSub) Deliver(*Broadcast)     {}
