package luabind_test

import (
	"context"
	"sync"
	"testing"

	"github.com/luachan/luachan/luabind"
)

// BenchmarkCallStats is the cheapest callback (an empty handle_in) without and with
// Options.Stats: the difference is what the per-script metrics add to each call.
func BenchmarkCallStats(b *testing.B) {
	const src = `return { topic = 'a', join = function() return true end, handle_in = function() end }`
	a, p := luabind.NewAssigns(), luabind.Payload{Data: []byte(`{}`)}
	for _, tc := range []struct {
		name  string
		stats *luabind.CallStats
	}{{"stats=off", nil}, {"stats=on", &luabind.CallStats{}}} {
		s, err := luabind.LoadSource(luabind.Options{Stats: tc.stats}, "bench.lua", []byte(src))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.HandleIn(context.Background(), discardSocket{}, a, "x", p); err != nil {
					b.Fatal(err)
				}
			}
		})
		s.Close()
	}
}

// TestCallStats: each call is counted once, in the callback's row, a failure as an error,
// its duration in one bucket; the counts carry on across versions sharing the CallStats.
func TestCallStats(t *testing.T) {
	stats := &luabind.CallStats{}
	opts := luabind.Options{Stats: stats}
	const src = `return { topic = 'a', join = function() return true end,
		handle_in = function(e) if e == "boom" then error("boom") end end }`
	ctx, a, p := context.Background(), luabind.NewAssigns(), luabind.Payload{Data: []byte(`{}`)}
	for version := range 2 {
		s, err := luabind.LoadSource(opts, "m.lua", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.HandleIn(ctx, discardSocket{}, a, "x", p); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.HandleIn(ctx, discardSocket{}, a, "boom", p); err == nil {
			t.Fatal("boom: no error")
		}
		s.Close()
		snap := stats.Snapshot()
		var in luabind.CallSnapshot
		for _, c := range snap {
			if c.Callback == "handle_in" {
				in = c
			} else if c.Calls != 0 {
				t.Errorf("version %d: %s counted %d calls, want 0", version, c.Callback, c.Calls)
			}
		}
		want := uint64(2 * (version + 1))
		var inBuckets uint64
		for _, n := range in.Buckets {
			inBuckets += n
		}
		if in.Calls != want || in.Errors != want/2 || inBuckets != want || in.Sum <= 0 {
			t.Errorf("version %d: handle_in %+v, want %d calls, %d errors, %d in the buckets, a positive sum", version, in, want, want/2, want)
		}
	}
}

// TestCallStatsConcurrent: calls of two callbacks at once, on a pool of two VMs, are
// each counted in their own row. (A VM given back before its call was counted could be
// taken by the other callback first, and its call counted in the wrong row.)
func TestCallStatsConcurrent(t *testing.T) {
	stats := &luabind.CallStats{}
	s, err := luabind.LoadSource(luabind.Options{Stats: stats, MaxVMs: 2}, "c.lua",
		[]byte(`return { topic = 'a', join = function() return true end, handle_in = function() end }`))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const each = 2000
	ctx, p := context.Background(), luabind.Payload{Data: []byte(`{}`)}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() {
		for range each {
			if _, _, err := s.HandleIn(ctx, discardSocket{}, luabind.NewAssigns(), "x", p); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		for range each {
			if _, _, err := s.Join(ctx, discardSocket{}, luabind.NewAssigns(), "a", p); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, c := range stats.Snapshot() {
		want := uint64(0)
		if c.Callback == "handle_in" || c.Callback == "join" {
			want = each
		}
		if c.Calls != want {
			t.Errorf("%s: %d calls, want %d", c.Callback, c.Calls, want)
		}
	}
}

// TestCallStatsTopicState: init, handle_call and handle_tick are counted in rows of their
// own, after the channel callbacks; a failing handle_call as an error.
func TestCallStatsTopicState(t *testing.T) {
	stats := &luabind.CallStats{}
	s, err := luabind.LoadSource(luabind.Options{Stats: stats}, "ts.lua", []byte(`return { topic = 'a',
		join = function() return true end,
		init = function() return { n = 0 } end,
		handle_call = function(msg, state) if msg == "boom" then error("boom") end return "ok", state end,
		handle_tick = function(state) return state end, tick = 1000 }`))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	state, err := s.InitState(ctx, "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.HandleCall(ctx, discardSocket{}, []byte(`"x"`), state); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.HandleCall(ctx, discardSocket{}, []byte(`"boom"`), state); err == nil {
		t.Fatal("boom: no error")
	}
	if _, err := s.HandleTick(ctx, "a", state, nil); err != nil {
		t.Fatal(err)
	}
	want := map[string][2]uint64{"init": {1, 0}, "handle_call": {2, 1}, "handle_tick": {1, 0}}
	snap := stats.Snapshot()
	if len(snap) != len(luabind.CallbackNames) {
		t.Fatalf("%d rows, want one per name in CallbackNames (%d)", len(snap), len(luabind.CallbackNames))
	}
	for i, c := range snap {
		if c.Callback != luabind.CallbackNames[i] {
			t.Errorf("row %d is %s, want %s", i, c.Callback, luabind.CallbackNames[i])
		}
		w := want[c.Callback]
		if c.Calls != w[0] || c.Errors != w[1] {
			t.Errorf("%s: %d calls, %d errors, want %d and %d", c.Callback, c.Calls, c.Errors, w[0], w[1])
		}
	}
}
