package luabind_test

import (
	"errors"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/luachan/luachan/luabind"
)

// heapPeak samples the heap every millisecond until stop is called, which returns the most it
// saw above what it saw first.
func heapPeak(tb testing.TB) (stop func() uint64) {
	tb.Helper()
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base, peak := read(), uint64(0)
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if h := read(); h > base && h-base > peak {
				peak = h - base
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		return peak
	}
}

// TestBombs runs the scripts that took seconds and gigabytes in gopher-lua's own builtins
// (issue 4): each now ends well within a few seconds with a script error naming its line, and
// the heap stays within a bound.
func TestBombs(t *testing.T) {
	const (
		budget  = 200 * time.Millisecond
		maxTime = 3 * time.Second // generous: shared CI machines stall
		maxHeap = 256 << 20       // what any single bomb may add to the heap
	)
	tests := []struct {
		name, body string
		wantErr    string // "" means it completes
		timeout    bool
	}{
		{"string.rep 2^31", `local s = string.rep("x", 2^31)`, "string.rep: the result would be longer than", false},
		{"rep as a method", `local s = ("xy"):rep(1e9)`, "string.rep: the result would be longer than", false},
		{"rep of a long string", `local s = string.rep(string.rep("x", 1e6), 1e3)`, "longer than", false},
		{"array index 2^26-1", `local t = {} t[67108863] = true assert(t[67108863])`, "", false},
		{"array index 2^26-1, rawset", `local t = {} rawset(t, 67108863, true) table.insert(t, 67108863, 1)`, "", false},
		{"lazy pattern", `local r = ("a"):rep(3e4):find(".-b")`, "", true},
		{"nested lazy pattern", `local r = string.find(("a"):rep(5000), ("a-"):rep(12) .. "b")`, "", true},
		{"lazy match", `local r = string.match(("a"):rep(5000), ("a-"):rep(12) .. "b")`, "", true},
		{"lazy gsub", `local r = string.gsub(("a"):rep(5000), ("a-"):rep(12) .. "b", "")`, "", true},
		{"lazy gmatch", `for w in string.gmatch(("a"):rep(5000), ("a-"):rep(12) .. "b") do end`, "", true},
		{"pcall around a pattern bomb", `while true do pcall(string.find, ("a"):rep(5000), ("a-"):rep(12) .. "b") end`, "", true},
		{"doubling concatenation", `local s = "x" while true do s = s .. s end`, "concatenation: the result would be longer than", false},
		{"concatenation chain", `local s = ("x"):rep(4e6) local u = s .. s .. s`, "concatenation: the result would be longer than", false},
		{"format width", `local s = string.format("%999999999d", 1)`, "invalid format (width or precision too long)", false},
		{"format of many long strings", `local s = ("x"):rep(1e6) local r = string.format(("%s"):rep(20), s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s, s)`, "string.format: the result would be longer than", false},
		{"table.concat", `local s, t = ("x"):rep(1e6), {} for i = 1, 20 do t[i] = s end local r = table.concat(t)`, "table.concat: the result would be longer than", false},
		{"gsub growth", `local r = string.gsub(("x"):rep(1e4), "", ("y"):rep(1e4))`, "string.gsub: the result would be longer than", false},
		{"json.encode growth", `local s = ("x"):rep(5e6) local r = luachan.json.encode({ s, s })`, "more than", false},
		{"unpack a huge range", `local r = { unpack({}, 1, 1e8) }`, "overflow", false},
		{"string.byte of a long string", `local r = { string.byte(("x"):rep(1e6), 1, -1) }`, "overflow", false},
		{"table.sort with a spinning comparator", `local t = {} for i = 1, 100 do t[i] = i end table.sort(t, function(a, b) while true do end end)`, "", true},
		{"busy loop", `while true do end`, "", true},
		{"table growth", `local t = {} while true do t[#t + 1] = #t end`, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, _, _ := testOptions(t)
			opts.Timeout = budget
			if !tc.timeout {
				opts.Timeout = maxTime // a cap, not the budget, must end these
			}
			s := mustLoad(t, opts, "return { topic = 'a', join = function() return true end,\n handle_in = function(event)\n "+tc.body+"\n return 'ok' end }")
			stop := heapPeak(t)
			start := time.Now()
			status, _, err := s.HandleIn(testContext(t), newFakeSocket("a"), nil, "x", jsonPayload(`{}`))
			elapsed := time.Since(start)
			if peak := stop(); peak > maxHeap {
				t.Errorf("the heap grew by %d MiB", peak>>20)
			}
			if elapsed > maxTime {
				t.Errorf("took %v", elapsed)
			}
			switch {
			case tc.timeout:
				if se := asScriptError(t, err); !se.Timeout {
					t.Errorf("got %#v, want a timeout", se)
				}
			case tc.wantErr != "":
				se := asScriptError(t, err)
				if !strings.Contains(se.Msg, tc.wantErr) || se.File != "test.lua" || se.Line != 3 {
					t.Errorf("got %#v, want test.lua:3 with %q", se, tc.wantErr)
				}
			default:
				if err != nil || status != "ok" {
					t.Errorf("got %q %v", status, err)
				}
			}
			// Whatever happened, the script still works.
			if status, _, err := s.HandleIn(testContext(t), newFakeSocket("a"), nil, "x", jsonPayload(`{}`)); tc.wantErr == "" && !tc.timeout && (status != "ok" || err != nil) {
				t.Errorf("second call: %q %v", status, err)
			}
		})
	}
}

// TestHeapWatchdog grows the heap from a script that keeps what it allocates, under a bound
// just above the heap in use: the watchdog stops it long before its time budget would, and the
// memory comes back.
func TestHeapWatchdog(t *testing.T) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc

	opts, _, _ := testOptions(t)
	opts.Timeout = 20 * time.Second
	opts.MaxHeap = base + 64<<20
	s := mustLoad(t, opts, `return { topic = 'a', join = function() return true end,
		handle_in = function(event, payload, socket)
			if event == "grow" then
				local keep = {}
				for i = 1, 1e6 do keep[i] = string.rep("x", 1e6) .. i end
			elseif event == "wait" then
				socket:call({})
			elseif event == "spin" then
				for i = 1, 1e7 do end
			end
			return "ok"
		end }`)
	start := time.Now()
	_, _, err := s.HandleIn(testContext(t), newFakeSocket("a"), nil, "grow", jsonPayload(`{}`))
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("took %v", elapsed)
	}
	se := asScriptError(t, err)
	if !errors.Is(err, luabind.ErrHeapLimit) || se.Timeout || !strings.Contains(se.Msg, "heap") || se.Line == 0 {
		t.Errorf("got %#v (%v)", se, err)
	}

	runtime.GC()
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > base+32<<20 {
		t.Errorf("heap %d MiB after, %d MiB before", ms.HeapAlloc>>20, base>>20)
	}
	// The server goes on: the next call runs, even one that runs past heapGrace right away
	// while another callback keeps the watchdog sampling. (The stopped call's memory was
	// still held when it was stopped; a sample of it must not stop the calls after.)
	keeper := blockedCallSocket{newFakeSocket("a"), make(chan struct{}), make(chan struct{})}
	kept := make(chan error, 1)
	go func() {
		_, _, err := s.HandleIn(testContext(t), keeper, nil, "wait", jsonPayload(`{}`))
		kept <- err
	}()
	<-keeper.waiting
	if _, _, err := s.HandleIn(testContext(t), newFakeSocket("a"), nil, "grow", jsonPayload(`{}`)); !errors.Is(err, luabind.ErrHeapLimit) {
		t.Fatalf("the second bomb: %v, want stopped for the heap", err)
	}
	start = time.Now()
	if status, _, err := s.HandleIn(testContext(t), newFakeSocket("a"), nil, "spin", jsonPayload(`{}`)); status != "ok" || err != nil {
		t.Errorf("a call after the bomb's (for %v) was refused: %q %v", time.Since(start), status, err)
	} else if ran := time.Since(start); ran < 100*time.Millisecond {
		t.Fatalf("the spin took only %v: too short to be stopped by the watchdog (50 ms), it shows nothing", ran)
	}
	close(keeper.release)
	if err := <-kept; err != nil {
		t.Errorf("the callback waiting meanwhile: %v", err)
	}
	waitFor(t, func() bool {
		status, _, err := s.HandleIn(testContext(t), newFakeSocket("a"), nil, "x", jsonPayload(`{}`))
		return status == "ok" && err == nil
	})
}

// waitFor polls cond until it holds, failing after a generous bound.
func waitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatal("condition never held")
		}
	}
}

func TestSourceLimits(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"nested parentheses", "return " + strings.Repeat("(", 100000) + "1" + strings.Repeat(")", 100000), "must return a channel table"},
		{"nested calls", "return " + strings.Repeat("f(", 100000) + "1" + strings.Repeat(")", 100000), "nests too deeply"},
		{"nested indexing", "return x" + strings.Repeat("[x", 100000) + strings.Repeat("]", 100000), "nests too deeply"},
		{"nested tables", "return " + strings.Repeat("{", 100000) + strings.Repeat("}", 100000), "nests too deeply"},
		{"nested blocks", strings.Repeat("do ", 50000) + strings.Repeat("end ", 50000), "nests too deeply"},
		{"nested functions", strings.Repeat("local f = function() ", 20000) + strings.Repeat("end ", 20000), "nests too deeply"},
		{"long arithmetic chain", "return 1" + strings.Repeat(" + 1", 100000), "nests too deeply"},
		{"long unary chain", "return " + strings.Repeat("- ", 100000) + "1", "nests too deeply"},
		{"too large", "return {}" + strings.Repeat(" ", 2<<20), "more than"},
	}
	// A deep file is refused in time linear in its size: at most a fixed multiple of
	// what a flat file of the same size takes to load on this machine, now (a bound
	// in seconds would measure the machine's load, not the code; a super-linear
	// blow-up of 100,000 levels is orders of magnitude past it).
	opts, _, _ := testOptions(t)
	flat := "local x = {}\nreturn {" + strings.Repeat("x[x],", 60000) + "}"
	start := time.Now()
	if _, err := luabind.LoadSource(opts, "flat.lua", []byte(flat)); err == nil || !strings.Contains(err.Error(), "join must be a function") {
		t.Fatalf("the flat file: %v", err) // loaded, run, and refused for what it returns
	}
	bound := 30 * time.Since(start)
	t.Logf("a flat file of %d bytes loads in %v", len(flat), bound/30)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, _, _ := testOptions(t)
			start := time.Now()
			_, err := luabind.LoadSource(opts, "deep.lua", []byte(tc.src))
			if se := asScriptError(t, err); se.File != "deep.lua" || !strings.Contains(se.Msg, tc.want) {
				t.Errorf("got %#v, want %q", se, tc.want)
			}
			if elapsed := time.Since(start); elapsed > bound {
				t.Errorf("took %v, more than 30 times the %v a flat file of its size takes", elapsed, bound/30)
			}
		})
	}

	// A long concatenation chain is one level (Lua itself takes at most about 200 operands).
	src := "return { topic = 'a', join = function() return true end,\n handle_in = function() return 'ok', { s = 'a'" +
		strings.Repeat(" .. 'b'", 150) + " } end }"
	s := mustLoad(t, opts, src)
	_, reply, err := s.HandleIn(testContext(t), newFakeSocket("a"), nil, "x", jsonPayload(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	assertJSON(t, reply.Data, `{"s":"a`+strings.Repeat("b", 150)+`"}`)
}

// TestBombsInParallel runs a pattern bomb on several VMs at once next to well-behaved calls,
// which keep working.
func TestBombsInParallel(t *testing.T) {
	opts, _, _ := testOptions(t)
	opts.Timeout = 100 * time.Millisecond
	opts.MaxVMs = 4
	s := mustLoad(t, opts, `return { topic = 'a', join = function() return true end,
		handle_in = function(event)
			if event == "bomb" then string.find(("a"):rep(5000), ("a-"):rep(12) .. "b") end
			return "ok"
		end }`)
	ctx := testContext(t)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			event := "x"
			if i%2 == 0 {
				event = "bomb"
			}
			for range 3 {
				status, _, err := s.HandleIn(ctx, newFakeSocket("a"), nil, event, jsonPayload(`{}`))
				if event == "x" && (status != "ok" || err != nil) {
					t.Errorf("%q %v", status, err)
				}
				if event == "bomb" && err == nil {
					t.Error("the bomb finished")
				}
			}
		}()
	}
	wg.Wait()
}

// blockedCallSocket is a socket whose socket:call says it is waiting, then waits for
// release: a callback that stays running without running Lua.
type blockedCallSocket struct {
	*fakeSocket
	waiting, release chan struct{}
}

func (s blockedCallSocket) Call([]byte) ([]byte, error) {
	close(s.waiting)
	<-s.release
	return []byte(`{}`), nil
}
