package luabind_test

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/luachan/luachan/luabind"
)

// runaways are the kinds of endless work a script can do (issue 11). Each must end within its
// budget plus the watchdog's tick, as a timeout or, for unbounded recursion, as an error at the
// call-depth limit, and none may grow the heap without bound on the way.
var runaways = []struct{ name, body string }{
	{"busy loop", `while true do end`},
	{"numeric for", `for i = 1, math.huge do end`},
	{"tail-call loop", `local function spin() return spin() end spin()`},
	{"tail calls through a table", `local t = {} function t.a() return t.b() end function t.b() return t.a() end t.a()`},
	{"tail calls with arguments", `local function f(n, ...) return f(n + 1, n, ...) end f(1)`},
	{"plain recursion", `local function f() return 1 + f() end f()`},
	{"recursion through pcall", `local function f() pcall(f) pcall(f) end f()`},
	{"pcall around a tail-call loop", `local function spin() return spin() end while true do pcall(spin) end`},
	{"__index function chain", `local mt = {} mt.__index = function(t, k) return t[k] end local t = setmetatable({}, mt) while true do pcall(function() return t.x end) end`},
	{"__index table chain", `local a, b = {}, {} setmetatable(a, { __index = b }) setmetatable(b, { __index = a }) while true do pcall(function() return a.x end) end`},
	{"__add", `local mt = {} mt.__add = function(a, b) return a + b end local t = setmetatable({}, mt) while true do pcall(function() return t + t end) end`},
	{"gsub callback", `string.gsub(("x"):rep(100), "x", function() while true do end end)`},
	{"gsub callback tail-calling", `string.gsub(("x"):rep(100), "x", function() local function spin() return spin() end return spin() end)`},
	{"gsub with endless callbacks", `while true do string.gsub(("x"):rep(1e4), "x", function(c) return c end) end`},
	{"sort comparator", `local t = {} for i = 1, 100 do t[i] = i end table.sort(t, function(a, b) while true do end end)`},
	{"sort comparator tail-calling", `local t = {} for i = 1, 100 do t[i] = i end local function spin() return spin() end table.sort(t, function(a, b) return spin() end)`},
	{"string.rep building", `local keep = {} while true do keep[#keep + 1] = string.rep("x", 1e5) .. #keep end`},
	{"concat building", `local s = "" while true do s = s .. "x" end`},
	{"table.concat building", `local t = {} for i = 1, 1e4 do t[i] = "xy" end while true do local s = table.concat(t, ",") end`},
}

// runawayBudget is the CPU budget the runaway tests run under: the default, or a second under
// the race detector, which slows Lua about tenfold. A tail-call loop's traceback grew with the
// calls made, so the slow build needs the longer budget to make as many as the fast one.
func runawayBudget() time.Duration {
	if raceEnabled {
		return time.Second
	}
	return luabind.DefaultTimeout
}

// TestRunawaysStopWithinBudget runs every kind of endless work: each ends with an error within
// its budget and a second of slack, and the heap stays bounded. What a runaway that keeps what
// it allocates adds to the heap within its budget depends on the machine's speed; the heap
// watchdog bounds it (in the server at 1 GiB, or 3/4 of GOMEMLIMIT), here at heapBound over
// the heap in use, and may be what stops it.
func TestRunawaysStopWithinBudget(t *testing.T) {
	const (
		budget    = 1000 * time.Millisecond
		slack     = time.Second // the watchdog's tick, plus a shared machine's stalls
		maxHeap   = 256 << 20   // what any single runaway may add to the heap
		heapBound = 96 << 20    // the live heap it may add (objects include garbage: up to as much again)
	)
	for _, tc := range runaways {
		t.Run(tc.name, func(t *testing.T) {
			opts, _, _ := testOptions(t)
			opts.Timeout = budget
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			opts.MaxHeap = ms.HeapAlloc + heapBound
			s := mustLoad(t, opts, "return { topic = 'a', join = function() return true end,\n handle_in = function(event)\n "+tc.body+"\n return 'ok' end }")
			stop := heapPeak(t)
			start := time.Now()
			_, _, err := s.HandleIn(testContext(t), newFakeSocket("a"), nil, "x", jsonPayload(`{}`))
			elapsed := time.Since(start)
			if peak := stop(); peak > maxHeap {
				t.Errorf("the heap grew by %d MiB", peak>>20)
			}
			if elapsed > budget+slack {
				t.Errorf("took %v, budget %v", elapsed, budget)
			}
			se := asScriptError(t, err)
			if !se.Timeout && !strings.Contains(se.Msg, "stack overflow") && !errors.Is(err, luabind.ErrHeapLimit) {
				t.Errorf("got %#v, want a timeout, a stack overflow or the heap bound", se)
			}
			if se.Line == 0 || strings.Contains(se.Msg, "tailcall") || len(se.Msg) > 500 {
				t.Errorf("got %#v, want a short message with a line", se)
			}
		})
	}
}

// TestRunawaysDoNotStallOthers runs every kind of runaway on several goroutines at once while a
// ticker goroutine measures how late it wakes: one script burning its budget must not hold up
// the rest of the process (a socket's heartbeat is answered by such a goroutine).
func TestRunawaysDoNotStallOthers(t *testing.T) {
	const maxLate = 300 * time.Millisecond // the goal is under 100 ms; slack for a shared, loaded machine
	opts, _, _ := testOptions(t)
	opts.Timeout = runawayBudget()
	opts.MaxVMs = 4
	var src strings.Builder
	src.WriteString("return { topic = 'a', join = function() return true end,\n handle_in = function(event)\n")
	for i, tc := range runaways {
		src.WriteString("if event == '" + string(rune('a'+i)) + "' then " + tc.body + " end\n")
	}
	src.WriteString("return 'ok' end }")
	s := mustLoad(t, opts, src.String())

	var worst atomic.Int64
	done := make(chan struct{})
	var ticker sync.WaitGroup
	ticker.Add(1)
	go func() {
		defer ticker.Done()
		for {
			start := time.Now()
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			if late := time.Since(start) - time.Millisecond; late > time.Duration(worst.Load()) {
				worst.Store(int64(late))
			}
		}
	}()
	ctx := testContext(t)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(runaways); i += 2 {
				_, _, err := s.HandleIn(ctx, newFakeSocket("a"), nil, string(rune('a'+i)), jsonPayload(`{}`))
				if err == nil {
					t.Errorf("%s: finished", runaways[i].name)
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	ticker.Wait()
	runtime.GC()
	if late := time.Duration(worst.Load()); late > maxLate {
		t.Errorf("a goroutine beside the runaways woke up to %v late, want under %v", late, maxLate)
	} else {
		t.Logf("worst wake-up delay beside the runaways: %v", late)
	}
}
