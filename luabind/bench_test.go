package luabind_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/luachan/luachan/luabind"
)

// benchPayload returns a JSON object of n string and number fields.
func benchPayload(n int) luabind.Payload {
	var b strings.Builder
	b.WriteString(`{"uid":"user:1234","body":"hello there, how is everyone doing today?"`)
	for i := 2; i < n; i++ {
		if i%2 == 0 {
			fmt.Fprintf(&b, `,"n%d":%d`, i, i*37)
		} else {
			fmt.Fprintf(&b, `,"s%d":"value number %d"`, i, i)
		}
	}
	b.WriteString(`}`)
	return luabind.Payload{Data: []byte(b.String())}
}

// discardSocket is a Socket that drops what it is sent, for benchmarks. It releases pushes
// as the engine does once it has queued them.
type discardSocket struct{}

func (discardSocket) Topic() string                                 { return "rooms:lobby" }
func (discardSocket) JoinRef() string                               { return "1" }
func (discardSocket) ID() string                                    { return "" }
func (discardSocket) Push(_ string, p luabind.Payload) error        { p.Release(); return nil }
func (discardSocket) Broadcast(string, luabind.Payload, bool) error { return nil }

const benchScript = `return { topic = 'rooms:*', join = function() return true end,
	handle_in = function(event, p, socket) return "ok", p end,
	handle_out = function(event, p, socket)
		p.is_editable = p.uid == socket.assigns.user
		socket:push(event, p)
	end }`

// BenchmarkHandleIn is one client event through a script and back: decode the payload, run
// handle_in (which replies with the payload), encode the reply.
func BenchmarkHandleIn(b *testing.B) {
	s, err := luabind.LoadSource(luabind.Options{}, "bench.lua", []byte(benchScript))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx, a := context.Background(), luabind.NewAssigns()
	for _, n := range []int{5, 20, 200} {
		p := benchPayload(n)
		b.Run(fmt.Sprintf("values=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.HandleIn(ctx, discardSocket{}, a, "new:msg", p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHandleOut is the per-subscriber cost of an intercepted broadcast: copy the converted
// payload, run handle_out, encode what it pushes.
func BenchmarkHandleOut(b *testing.B) {
	s, err := luabind.LoadSource(luabind.Options{}, "bench.lua", []byte(benchScript))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	a, err := luabind.AssignsFromJSON([]byte(`{"user":"user:1234"}`))
	if err != nil {
		b.Fatal(err)
	}
	benchHandleOut(b, s, a)
}

// BenchmarkHandleOutUnchanged is BenchmarkHandleOut for a handle_out that filters: it reads a
// field and pushes its payload as it got it, which goes out as the broadcast's own bytes.
func BenchmarkHandleOutUnchanged(b *testing.B) {
	s, err := luabind.LoadSource(luabind.Options{}, "bench.lua", []byte(`return { topic = 'rooms:*',
	join = function() return true end,
	handle_out = function(event, p, socket)
		if p.uid ~= socket.join_ref then socket:push(event, p) end
	end }`))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchHandleOut(b, s, luabind.NewAssigns())
}

// benchHandleOut runs s's handle_out for payloads of 5, 20 and 200 values, on a VM from the
// pool per call, and (held) on one VM that a Holder keeps, as the intercept workers do.
func benchHandleOut(b *testing.B, s *luabind.Script, a *luabind.Assigns) {
	ctx := context.Background()
	for _, held := range []bool{false, true} {
		for _, n := range []int{5, 20, 200} {
			o, err := luabind.NewOutgoing(benchPayload(n))
			if err != nil {
				b.Fatal(err)
			}
			name := fmt.Sprintf("values=%d", n)
			if held {
				name = "held/" + name
			}
			b.Run(name, func(b *testing.B) {
				var h *luabind.Holder
				if held {
					h = &luabind.Holder{}
					defer h.Release()
				}
				b.ReportAllocs()
				for b.Loop() {
					if err := s.HandleOutHeld(ctx, h, discardSocket{}, a, "new:msg", o); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkHandleInParallel runs handle_in from many goroutines, to see the pool's cost.
func BenchmarkHandleInParallel(b *testing.B) {
	s, err := luabind.LoadSource(luabind.Options{}, "bench.lua", []byte(benchScript))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	p := benchPayload(20)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		a := luabind.NewAssigns()
		for pb.Next() {
			if _, _, err := s.HandleIn(context.Background(), discardSocket{}, a, "new:msg", p); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCallOverhead is the cost of a callback beyond conversion: taking a VM, arming the
// CPU budget, the socket object, the call itself and the assigns check.
func BenchmarkCallOverhead(b *testing.B) {
	s, err := luabind.LoadSource(luabind.Options{}, "bench.lua", []byte(
		`return { topic = 'a', join = function() return true end, handle_in = function() end, leave = function() end }`))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	serverCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, p := luabind.NewAssigns(), luabind.Payload{Data: []byte(`{}`)}
	for _, tc := range []struct {
		name string
		ctx  context.Context
	}{{"ctx=background", context.Background()}, {"ctx=cancelable", serverCtx}} {
		b.Run("handle_in/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.HandleIn(tc.ctx, discardSocket{}, a, "x", p); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("leave/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Leave(tc.ctx, discardSocket{}, a, "closed"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
