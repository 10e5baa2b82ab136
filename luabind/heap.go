package luabind

import (
	"errors"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// DefaultMaxHeap is Options.MaxHeap when it is zero and no Go memory limit is set: 1 GiB, far
// above what a channel server with ordinary scripts uses (payloads are at most a MiB, a VM a few
// hundred KiB) and below what a 2 GiB host can afford. With a Go memory limit (GOMEMLIMIT or
// debug.SetMemoryLimit) the default is three quarters of it instead, leaving the rest to the
// server itself and the garbage collector's headroom.
const DefaultMaxHeap = 1 << 30

// heapGrace is how long a callback must have run before the heap watchdog may stop it:
// growing the heap past its bound takes a runaway far longer, and healthy callbacks end
// far sooner.
const heapGrace = 50 * time.Millisecond

// heapPollInterval is how often the heap is sampled while callbacks run.
const heapPollInterval = 10 * time.Millisecond

// ErrHeapLimit is the cause (see ScriptError.Unwrap) of a callback stopped because the process
// heap grew past Options.MaxHeap while it ran.
var ErrHeapLimit = errors.New("luabind: the process heap passed its bound")

// defaultMaxHeap is DefaultMaxHeap, or three quarters of the Go memory limit when one is set.
func defaultMaxHeap() uint64 {
	if limit := debug.SetMemoryLimit(-1); limit < math.MaxInt64 {
		return uint64(limit) / 4 * 3
	}
	return DefaultMaxHeap
}

// heapWatch is the heap watchdog. While any callback runs, a sampler goroutine publishes the
// bytes of heap objects every heapPollInterval; every budget compares it with its bound before
// each Lua instruction (in Done). Heap objects include garbage not yet collected (up to as much
// again as the live heap, with GOGC=100), so a budget that sees a sample over its bound asks
// the sampler to confirm it: the sampler forces a collection and publishes what is left as the
// live heap, and only a live heap over the bound stops the call. The watchdog cannot tell which
// callback allocated, so every callback that has run for heapGrace or longer while the live
// heap is over its bound is stopped (short ones, the healthy ones, finish); once a stopped call's VM is dropped the sampler collects and samples again, so the server recovers
// as soon as the runaway's memory is garbage. The sampler exits when no callback runs and is
// started again by the next one: it needs no owner to stop it.
var heapWatch struct {
	bytes      atomic.Uint64 // the last sample of heap objects; 0 while no sampler runs
	live       atomic.Uint64 // the heap left by the last forced collection; 0 while none runs
	confirming atomic.Bool   // a collection was asked for and has not finished
	active     atomic.Int64  // callbacks running
	running    atomic.Bool   // a sampler goroutine is running
	collect    chan struct{} // asks the sampler for a collection and fresh samples
}

func init() {
	heapWatch.collect = make(chan struct{}, 1)
}

// heapEnter counts a callback starting, starting the sampler if none runs.
func heapEnter() {
	heapWatch.active.Add(1)
	if !heapWatch.running.Load() && heapWatch.running.CompareAndSwap(false, true) {
		go sampleHeap()
	}
}

// heapLeave counts a callback ending.
func heapLeave() {
	heapWatch.active.Add(-1)
}

// heapOver reports whether the live heap is over bound. A sample over bound that no collection
// has confirmed yet asks for one and reports false until it is done.
func heapOver(bound uint64) bool {
	if heapWatch.bytes.Load() <= bound || heapWatch.confirming.Load() {
		return false // under it, or a collection under way will tell
	}
	if heapWatch.live.Load() > bound {
		return true
	}
	heapCollect()
	return false
}

// heapCollect asks the sampler for a collection and fresh samples, once at a time: when a
// sample is over a bound, and after a callback was stopped for the heap.
func heapCollect() {
	if heapWatch.confirming.Load() || !heapWatch.confirming.CompareAndSwap(false, true) {
		return
	}
	select {
	case heapWatch.collect <- struct{}{}:
	default:
	}
}

// heapRecollect asks for a collection after a call stopped for the heap was dropped, even while
// one is under way: that one may have measured the stopped call's memory still held, and until
// the next, every callback that runs for heapGrace would be stopped too. The request waits in
// collect while the sampler collects, and for the next sampler when none runs.
func heapRecollect() {
	heapWatch.confirming.Store(true)
	select {
	case heapWatch.collect <- struct{}{}:
	default: // one is waiting already
	}
}

// sampleHeap publishes the heap size, and ends the calls whose budget ran out (see budget),
// until no callback runs.
func sampleHeap() {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	tick := time.NewTicker(heapPollInterval)
	defer tick.Stop()
	for {
		select {
		case now := <-tick.C:
			heapWatch.bytes.Store(read())
			expireBudgets(monoSince(now))
		case <-heapWatch.collect:
			runtime.GC()
			h := read()
			heapWatch.live.Store(h)
			heapWatch.bytes.Store(h)
			heapWatch.confirming.Store(false)
		}
		if heapWatch.active.Load() > 0 {
			continue
		}
		heapWatch.bytes.Store(0)
		heapWatch.live.Store(0)
		heapWatch.running.Store(false)
		// A callback that started after the check above may have seen running still true.
		if heapWatch.active.Load() == 0 || !heapWatch.running.CompareAndSwap(false, true) {
			return
		}
	}
}
