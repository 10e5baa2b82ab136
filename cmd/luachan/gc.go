package main

import (
	"math"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync"
	"sync/atomic"
)

// DefaultGCMinHeap is -gc-min-heap's default: the heap a server may grow to between
// collections however little of it is live. Under load, a server's live heap is a few MiB
// while it allocates tens of MiB a second (every message's tables and frames), so with GOGC
// alone it collects ten times a second, each collection a few ms of one core that requests
// queue behind. 64 MiB is little to a laptop or a server, and less than the heap of a node
// holding 10,000 connections, where GOGC alone decides.
const DefaultGCMinHeap = 64 << 20

// maxGCFloor bounds -gc-min-heap (1 PiB): past it, a floor is no different from no
// collections at all, and the arithmetic below stays far from overflowing.
const maxGCFloor = 1 << 50

// runtimeHeapMinimum is the runtime's own least heap goal at GOGC=100, which it scales with
// GOGC: at GOGC=1600, no collection comes before 64 MiB whatever is live.
const runtimeHeapMinimum = 4 << 20

// gcFloor keeps the heap goal at a floor: after every collection (a finalizer of an object
// made unreachable for the purpose tells when one ends), GOGC is set from the live heap that
// collection marked, so the next one comes when the heap reaches the floor, or at the GOGC
// the process started with once the live heap is so large that this comes later.
var gcFloor struct {
	once  sync.Once
	floor atomic.Uint64      // bytes; 0: GOGC as the process started with
	least int                // the process's own GOGC: 100, or what GOGC set
	set   int                // the GOGC last set
	live  []rtmetrics.Sample // the live heap, and the stacks and globals GOGC counts with it
}

// tuneGC keeps the heap goal at floor bytes or more from the next collection on; 0 goes back
// to the GOGC the process started with. GOGC=off leaves the collector off. With a memory limit
// (GOMEMLIMIT), the floor is a quarter of it at most: the runtime collects at whichever goal
// comes first anyway, and the script heap watchdog's bound (three quarters of the limit)
// stays far above what garbage alone reaches.
func tuneGC(floor int64) {
	if limit := debug.SetMemoryLimit(-1); limit < math.MaxInt64 {
		floor = min(floor, limit/4)
	}
	floor = min(floor, maxGCFloor)
	gcFloor.once.Do(func() {
		gogc := []rtmetrics.Sample{{Name: "/gc/gogc:percent"}}
		rtmetrics.Read(gogc)
		gcFloor.least = int(gogc[0].Value.Uint64())
		gcFloor.set = gcFloor.least
		gcFloor.live = []rtmetrics.Sample{
			{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"},
		}
		if gcFloor.least > 0 { // GOGC=off reads as -1, GOGC=0 as 0: nothing to tune
			armGCFloor()
		}
	})
	gcFloor.floor.Store(uint64(max(floor, 0)))
}

// gcCycle is the object whose finalizer runs once per collection.
type gcCycle struct{ _ *byte } // a pointer keeps it out of the tiny allocator, whose blocks may never be finalized

// armGCFloor makes a gcCycle for the next collection to find unreachable.
func armGCFloor() {
	runtime.SetFinalizer(&gcCycle{}, func(*gcCycle) {
		retuneGC()
		armGCFloor()
	})
}

// retuneGC sets GOGC for the next collection from the live heap of the last one. Finalizers
// run one at a time, so it never runs twice at once.
func retuneGC() {
	rtmetrics.Read(gcFloor.live)
	s := gcFloor.live
	live, roots := s[0].Value.Uint64(), s[1].Value.Uint64()+s[2].Value.Uint64()
	percent := gcPercent(live, roots, gcFloor.floor.Load(), gcFloor.least)
	if percent != gcFloor.set {
		gcFloor.set = percent
		debug.SetGCPercent(percent)
	}
}

// gcPercent is the GOGC whose heap goal is floor, or least when least's goal is larger. The
// runtime's goal is live + (live + roots) * GOGC / 100, roots being the goroutine stacks and
// globals it scans, and never less than runtimeHeapMinimum * GOGC / 100, which bounds GOGC
// when the live heap is small.
func gcPercent(live, roots, floor uint64, least int) int {
	if live == 0 || floor <= live {
		return least
	}
	p := min((floor-live)*100/(live+roots), floor*100/runtimeHeapMinimum, math.MaxInt32)
	return max(int(p), least) // GOGC is an int32 in the runtime: more would wrap to "off"
}
