package luabind

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// benchPayload returns a JSON object of about n values of mixed kinds, like a chat message
// with metadata.
func benchPayload(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"uid":"user:1234","body":"hello there, how is everyone doing today?"`)
	for i := 2; i < n; i++ {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, `,"n%d":%d`, i, i*37)
		case 1:
			fmt.Fprintf(&b, `,"f%d":%g`, i, float64(i)/8)
		case 2:
			fmt.Fprintf(&b, `,"s%d":"value number %d"`, i, i)
		case 3:
			fmt.Fprintf(&b, `,"b%d":true`, i)
		case 4:
			fmt.Fprintf(&b, `,"l%d":[1,"two",null]`, i)
			i += 2
		}
	}
	b.WriteString(`}`)
	return []byte(b.String())
}

var benchSizes = []int{5, 20, 200}

func BenchmarkDecodePayload(b *testing.B) {
	for _, n := range benchSizes {
		data := benchPayload(n)
		b.Run(fmt.Sprintf("values=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := decodeJSON(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodePayload(b *testing.B) {
	for _, n := range benchSizes {
		data := benchPayload(n)
		v, err := decodeJSON(data)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("values=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := encodeValue(v, "payload"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOutgoingCopy is the per-subscriber cost of an intercepted broadcast's payload.
func BenchmarkOutgoingCopy(b *testing.B) {
	for _, n := range benchSizes {
		o, err := NewOutgoing(Payload{Data: benchPayload(n)})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("values=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				o.value()
			}
		})
	}
}

// BenchmarkContextCheck measures what gopher-lua's per-instruction context check (the CPU
// budget) costs on a tight Lua loop, against running without one, and what arming a budget
// costs per call: a fresh context.WithTimeout against the reusable per-VM budget.
func BenchmarkContextCheck(b *testing.B) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	if err := L.DoString(`function loop(n) local s = 0 for i = 1, n do s = s + i end return s end`); err != nil {
		b.Fatal(err)
	}
	loop := L.GetGlobal("loop")
	run := func(b *testing.B) {
		for b.Loop() {
			if err := L.CallByParam(lua.P{Fn: loop, NRet: 1, Protect: true}, lua.LNumber(1000)); err != nil {
				b.Fatal(err)
			}
			L.Pop(1)
		}
	}
	b.Run("loop=1000/no-context", run)
	b.Run("loop=1000/context", func(b *testing.B) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		L.SetContext(ctx)
		defer L.RemoveContext()
		run(b)
	})
	b.Run("loop=1000/budget", func(b *testing.B) { // the deadline and the heap watchdog
		bud := newBudget()
		defer bud.close()
		bud.maxHeap = DefaultMaxHeap
		if err := bud.arm(context.Background(), time.Hour); err != nil {
			b.Fatal(err)
		}
		defer bud.disarm()
		L.SetContext(bud)
		defer L.RemoveContext()
		run(b)
	})
	b.Run("arm/context.WithTimeout", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
			L.SetContext(ctx)
			L.RemoveContext()
			cancel()
		}
	})
	b.Run("arm/budget", func(b *testing.B) {
		bud := newBudget()
		defer bud.close()
		parent, cancel := context.WithCancel(context.Background())
		defer cancel()
		b.ReportAllocs()
		for b.Loop() {
			if err := bud.arm(parent, DefaultTimeout); err != nil {
				b.Fatal(err)
			}
			L.SetContext(bud)
			L.RemoveContext()
			bud.disarm()
		}
	})
}

// BenchmarkConcat is what the size cap on `..` costs: the same loop compiled as gopher-lua
// does (OP_CONCAT) and as luabind does (a call of the capped concat).
func BenchmarkConcat(b *testing.B) {
	const src = `local n = 0 for i = 1, 100 do local s = "user:" .. i .. ":" .. "x" n = n + #s end return n`
	v, err := (&chunk{opts: Options{}.withDefaults(), name: "bench.lua", returns: "a number",
		bind: func(*vm) error { return nil }}).newVMForBench()
	if err != nil {
		b.Fatal(err)
	}
	defer v.close()
	guarded, err := compile("bench.lua", []byte(src))
	if err != nil {
		b.Fatal(err)
	}
	chunk, err := parse.Parse(strings.NewReader(src), "bench.lua")
	if err != nil {
		b.Fatal(err)
	}
	native, err := lua.Compile(chunk, "bench.lua")
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		proto *lua.FunctionProto
	}{{"native", native}, {"guarded", guarded}} {
		b.Run(tc.name, func(b *testing.B) {
			fn := v.L.NewFunctionFromProto(tc.proto)
			fn.Env = v.env
			for b.Loop() {
				if err := v.L.CallByParam(lua.P{Fn: fn, NRet: 1, Protect: true}); err != nil {
					b.Fatal(err)
				}
				v.L.SetTop(0)
			}
		})
	}
}

// newVMForBench builds a bare sandboxed VM, without running a chunk.
func (c *chunk) newVMForBench() (*vm, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	v := &vm{L: L, chunk: c, modules: make(map[string]lua.LValue), budget: newBudget()}
	v.openSandbox()
	return v, nil
}
