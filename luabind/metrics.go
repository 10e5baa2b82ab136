package luabind

import (
	"sync/atomic"
	"time"
	_ "unsafe" // for go:linkname
)

// CallStats counts one script file's callbacks across its versions: a reload keeps
// counting on the same CallStats (Options.Stats), so what a scrape reads never goes
// back. Each call costs two clock reads and three atomic adds, next to a Lua call.
type CallStats struct {
	cb [numStats]callCounts // by callback; socket.lua's connect has a slot, never used
}

// The topic-state callbacks (topicstate.go) are counted after the channel callbacks and
// socket.lua's connect; these are their CallStats indices, never a VM's fns index.
const (
	statInit callback = numFns + iota
	statHandleCall
	statHandleTick
	statTerminate
	numStats
)

// statNames are the names of what CallStats counts, by index ("" for connect's slot).
var statNames = func() (n [numStats]string) {
	copy(n[:], callbackNames[:numCallbacks])
	n[statInit], n[statHandleCall], n[statHandleTick], n[statTerminate] = "init", "handle_call", "handle_tick", "terminate"
	return n
}()

// stateStat is the CallStats index of the topic-state callback name.
func stateStat(name string) callback {
	switch name {
	case "init":
		return statInit
	case "handle_call":
		return statHandleCall
	case "handle_tick":
		return statHandleTick
	}
	return statTerminate
}

// callCounts are one callback's calls, failures and a histogram of their durations.
type callCounts struct {
	calls, errors atomic.Uint64
	sumNs         atomic.Uint64
	buckets       [len(DurationBuckets) + 1]atomic.Uint64 // by upper bound; the last is +Inf
}

// DurationBuckets are the upper bounds of the callback duration histogram: from 10 µs,
// a fast handle_in, to the 250 ms default budget and past it.
var DurationBuckets = [...]time.Duration{
	10 * time.Microsecond, 25 * time.Microsecond, 50 * time.Microsecond, 100 * time.Microsecond,
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond,
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
}

// CallbackNames are the callbacks CallStats counts, in Snapshot's order: the channel
// callbacks, then the topic-state ones.
var CallbackNames = func() (names []string) {
	for _, n := range statNames {
		if n != "" {
			names = append(names, n)
		}
	}
	return names
}()

// CallSnapshot is one callback's counts at one moment.
type CallSnapshot struct {
	Callback      string
	Calls, Errors uint64
	Sum           time.Duration
	Buckets       [len(DurationBuckets) + 1]uint64 // calls in each bucket, not cumulative; the last is over every bound
}

// Snapshot returns the counts of each callback, in CallbackNames' order.
func (c *CallStats) Snapshot() []CallSnapshot {
	out := make([]CallSnapshot, 0, len(CallbackNames))
	for i := range c.cb {
		if statNames[i] == "" {
			continue
		}
		cc := &c.cb[i]
		snap := CallSnapshot{Callback: statNames[i], Calls: cc.calls.Load(), Errors: cc.errors.Load(), Sum: time.Duration(cc.sumNs.Load())}
		for b := range cc.buckets {
			snap.Buckets[b] = cc.buckets[b].Load()
		}
		out = append(out, snap)
	}
	return out
}

// observe counts the call v ran (v.cb, since v.started), failed if failed. It reads the
// callback and its start from v and runs out of line, so that runOn's frame, on the
// reader goroutine's stack for handle_in, does not grow (see commit 53f9a1c).
//
//go:noinline
func (c *CallStats) observe(v *vm, failed bool) {
	if c == nil {
		return
	}
	d := time.Duration(monoNow() - v.started)
	cc := &c.cb[v.cb]
	cc.calls.Add(1)
	if failed {
		cc.errors.Add(1)
	}
	cc.sumNs.Add(uint64(max(d, 0)))
	b := 0
	for b < len(DurationBuckets) && d > DurationBuckets[b] {
		b++
	}
	cc.buckets[b].Add(1)
}

// refused counts a call of cb that got no VM (its context ended while it waited for
// one): a call and an error, with no duration.
//
//go:noinline
func (c *CallStats) refused(cb callback) {
	if c == nil {
		return
	}
	c.cb[cb].calls.Add(1)
	c.cb[cb].errors.Add(1)
}

// monoNow is the monotonic clock in nanoseconds (its origin is the runtime's, not
// monoEpoch's: use it only for differences). runtime.nanotime reads the one clock
// time.Now reads two of (wall and monotonic), which halves what the metrics cost a call.
// Out of line, it keeps runOn's frame as it was.
//
//go:noinline
func monoNow() int64 { return nanotime() }

//go:linkname nanotime runtime.nanotime
func nanotime() int64
