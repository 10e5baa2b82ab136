package engine

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/luachan/luachan/hub"
)

// fastLua intercepts "other" only, so every other event is fast-laned past
// a script that has a handle_out.
const fastLua = `local f = { topic = "f:*", intercept = { "other" } }

function f.join(topic, payload, socket)
  return true
end

function f.handle_out(event, payload, socket)
  socket:push(event, payload)
end

return f
`

// BenchmarkIntercepts is the engine's part of the fast lane for one
// subscriber: the hub asks each subscriber whether a broadcast must go
// through its mailbox.
func BenchmarkIntercepts(b *testing.B) {
	r := startRig(b, map[string]string{"f.lua": fastLua})
	r.dial(b).join("f:1", "1")
	r.eng.mu.Lock()
	f := r.eng.files["f.lua"]
	r.eng.mu.Unlock()
	var ch *channel
	f.mu.Lock()
	for c := range f.chans {
		ch = c
	}
	f.mu.Unlock()
	b.ReportAllocs()
	for b.Loop() {
		if ch.Intercepts("fast") {
			b.Fatal("a fast-laned event is intercepted")
		}
	}
}

// maxAhead is how many broadcasts BenchmarkFastLaneBroadcast sends ahead of
// its clients' reading.
const maxAhead = 1000

// BenchmarkFastLaneBroadcast broadcasts a fast-laned event to subs joined
// sockets of the in-process rig, and waits until every client has read all.
func BenchmarkFastLaneBroadcast(b *testing.B) { benchBroadcast(b, "fast", maxAhead) }

// BenchmarkInterceptedBroadcast is BenchmarkFastLaneBroadcast with an event
// that goes through every subscriber's handle_out (which pushes it as it came).
// It keeps within 100 broadcasts of the readers: at most twice that wait in a
// mailbox, well under DefaultMaxPending.
func BenchmarkInterceptedBroadcast(b *testing.B) { benchBroadcast(b, "other", 100) }

// benchBroadcast broadcasts event to subs joined sockets of the in-process rig,
// at most about 2*ahead broadcasts ahead of the slowest reader, and waits until
// every client has read all.
func benchBroadcast(b *testing.B, event string, ahead int) {
	for _, subs := range []int{1, 100} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			r := startRig(b, map[string]string{"f.lua": fastLua})
			clients := make([]*rigClient, subs)
			for i := range clients {
				clients[i] = r.dial(b)
				clients[i].join("f:1", "1")
			}
			var (
				wg   sync.WaitGroup
				read atomic.Int64 // frames read by all the clients
			)
			errs := make(chan error, subs)
			for _, c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := 0; n < b.N; n++ {
						_ = c.conn.SetReadDeadline(time.Now().Add(rigTimeout))
						if _, _, err := c.conn.ReadMessage(); err != nil {
							errs <- fmt.Errorf("after %d of %d frames: %w", n, b.N, err)
							return
						}
						read.Add(1)
					}
				}()
			}
			payload := []byte(`{"body":"a broadcast of the usual size"}`)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				r.hub.DeliverLocal(&hub.Broadcast{Topic: "f:1", Event: event, Payload: payload})
				// Keep within ahead frames of the slowest readers, far below the
				// bounds that close a slow consumer.
				for i%ahead == 0 && read.Load() < int64((i-ahead)*subs) {
					runtime.Gosched()
				}
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
		})
	}
}
