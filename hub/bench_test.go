package hub_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/luachan/luachan/hub"
)

// benchPayload is a typical chat message.
var benchPayload = []byte(`{"uid":"user:42","body":"hello, everyone in the lobby!"}`)

// discardConn is a net.Conn whose writes vanish, counted; it lets a benchmark run the
// real writer goroutines of thousands of subscribers without thousands of sockets.
type discardConn struct {
	net.Conn // nil: only the methods below are called
	written  atomic.Int64
}

func (d *discardConn) Write(p []byte) (int, error)      { d.written.Add(int64(len(p))); return len(p), nil }
func (d *discardConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (d *discardConn) Close() error                     { return nil }
func (d *discardConn) SetDeadline(time.Time) error      { return nil }
func (d *discardConn) SetReadDeadline(time.Time) error  { return nil }
func (d *discardConn) SetWriteDeadline(time.Time) error { return nil }

// benchHub returns a Hub for benchmarks, shut down when b ends.
func benchHub(b *testing.B) *hub.Hub {
	h := hub.New(hub.Config{
		Handler:       newTestHandler(),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxQueueBytes: 1 << 30, // measure fan-out, not slow-consumer handling
	})
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		h.Close(ctx)
	})
	return h
}

// BenchmarkBroadcast measures one fast-lane broadcast to subs subscribers, including
// the writers draining it. Allocations per op must not grow with subs.
func BenchmarkBroadcast(b *testing.B) {
	for _, subs := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			h := benchHub(b)
			sinks := make([]*discardConn, subs)
			for i := range sinks {
				sinks[i] = &discardConn{}
				c := hub.NewWriterConn(h, hub.V2, sinks[i])
				b.Cleanup(func() { c.Close(hub.CloseNormal, "") })
				h.Subscribe("rooms:lobby", newSub(c))
			}
			frame, _ := (&hub.Broadcast{Topic: "rooms:lobby", Event: "new:msg", Payload: benchPayload}).Frame(hub.V2)
			perConn := int64(len(frame) + 2) // + the 2-byte WebSocket header
			drained := func(n int) func() bool {
				return func() bool {
					for _, s := range sinks {
						if s.written.Load() < perConn*int64(n) {
							return false
						}
					}
					return true
				}
			}
			// Warm up: let every connection's queue reach its working size, as it does
			// once in a long-running server, so that what is measured is the steady state.
			const warmup = 500
			for range warmup {
				h.Broadcast(&hub.Broadcast{Topic: "rooms:lobby", Event: "new:msg", Payload: benchPayload})
			}
			waitFor(b, "writers to drain the warm-up", drained(warmup))

			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				h.Broadcast(&hub.Broadcast{Topic: "rooms:lobby", Event: "new:msg", Payload: benchPayload})
			}
			waitFor(b, "writers to drain", drained(warmup+b.N))
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
		})
	}
}

// BenchmarkBroadcastSockets is BenchmarkBroadcast over real loopback sockets, with raw
// TCP readers on the client side counting bytes (so client-side decoding costs nothing).
func BenchmarkBroadcastSockets(b *testing.B) {
	for _, subs := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			ts := startServer(b, hub.Config{MaxQueueBytes: 1 << 30})
			var received atomic.Int64
			for range subs {
				ws, _, err := websocket.DefaultDialer.Dial(ts.wsURL("vsn=2.0.0"), nil)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { ws.Close() })
				s := recv(b, ts.handler.opened, "session")
				ts.hub.Subscribe("rooms:lobby", newSub(s.conn))
				go func(nc net.Conn) {
					buf := make([]byte, 64<<10)
					for {
						n, err := nc.Read(buf)
						received.Add(int64(n))
						if err != nil {
							return
						}
					}
				}(ws.NetConn())
			}
			frame, _ := (&hub.Broadcast{Topic: "rooms:lobby", Event: "new:msg", Payload: benchPayload}).Frame(hub.V2)
			perConn := int64(len(frame) + 2)
			drained := func(n int) func() bool {
				return func() bool { return received.Load() >= perConn*int64(n)*int64(subs) }
			}
			const warmup = 500 // as in BenchmarkBroadcast
			for range warmup {
				ts.hub.Broadcast(&hub.Broadcast{Topic: "rooms:lobby", Event: "new:msg", Payload: benchPayload})
			}
			waitFor(b, "clients to receive the warm-up", drained(warmup))

			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				ts.hub.Broadcast(&hub.Broadcast{Topic: "rooms:lobby", Event: "new:msg", Payload: benchPayload})
			}
			waitFor(b, "clients to receive everything", drained(warmup+b.N))
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	frame := []byte(`["3","7","rooms:lobby","new:msg",` + string(benchPayload) + `]`)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := hub.Decode(frame, hub.V2, false, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	m := &hub.Message{JoinRef: "3", Topic: "rooms:lobby", Event: "new:msg", Payload: benchPayload}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := hub.Encode(m, hub.V2); err != nil {
			b.Fatal(err)
		}
	}
}
