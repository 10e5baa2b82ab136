package luabind

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"weak"
)

// budget is a VM's CPU-budget context, reused for every call on that VM. gopher-lua checks a
// context's Done channel before each instruction; arming a fresh context.WithTimeout per call
// costs four allocations and, under a shared cancelable parent, two trips through the parent's
// lock, and even a reused timer costs a Reset and a Stop per call. A budget arms with two
// stores instead: its deadline is enforced by the watchdog goroutine that already samples the
// heap while callbacks run (see heapWatch), which every heapPollInterval ends the calls whose
// deadline has passed; a call therefore ends up to that interval after its deadline. A budget
// needs a new channel only after it ended a call, and keeps watching the same parent from
// call to call. It is used by the goroutine holding its VM; only the watchdog and the
// parent's cancellation reach it from elsewhere, through mu and due. A budget also ends its
// call when the heap watchdog sees the process heap over maxHeap (see heapWatch).
//
// The deadline is wall-clock time (Go has no clock of one goroutine's CPU), and a call
// that waited for a CPU on a saturated host is not a runaway: past its deadline, a call
// ends only once it has also done minWork units of work (see Done), or at hardFactor times
// its budget whatever it did. A runaway has done far more than minWork by its deadline and
// ends within a watchdog interval of it; a join of three lines that was not scheduled for
// its whole budget finishes.
type budget struct {
	maxHeap   uint64          // the heap bound of its calls; set before the first call
	watched   context.Context // the parent being watched for cancellation, if any
	stopWatch func() bool     // stops watching it
	started   time.Time       // when the current call was armed; the calling goroutine's
	due       atomic.Int64    // the current call's deadline (monoSince), for the watchdog; 0 when disarmed
	work      int64           // units of work the current call has done; the calling goroutine's
	late      atomic.Bool     // the current call is past its deadline: it ends at minWork

	mu       sync.Mutex      // guards the fields below against the watchdog and parent callbacks
	parent   context.Context // the caller's context of the current call
	done     chan struct{}   // closed when the budget ran out; replaced on arm after that
	err      error           // why done was closed
	armed    bool            // a call is running: ending it now counts
	deadline time.Time
	hard     time.Time // past it the call ends, however little it did
}

const (
	// minWork is how much work a call past its deadline must have done to be stopped for
	// time: Lua instructions, and budgetCheckEvery per budget check of our Go loops (which
	// check once every that many steps). 10,000 instructions are a few milliseconds of Lua
	// at most; the callbacks of a chat room do a few hundred.
	minWork = 10_000
	// hardFactor times its budget, a call ends however little work it did: a loop of
	// long builtin calls (each a step, and each capped) does little work per second.
	hardFactor = 4
)

// budgets is every budget alive, for the watchdog. Weak pointers: a budget whose VM is
// dropped leaves the list by itself.
var budgets struct {
	mu   sync.Mutex
	list []weak.Pointer[budget]
}

func newBudget() *budget {
	b := &budget{done: make(chan struct{}), maxHeap: math.MaxUint64}
	budgets.mu.Lock()
	budgets.list = append(budgets.list, weak.Make(b))
	budgets.mu.Unlock()
	return b
}

// monoEpoch is where monoSince counts from.
var monoEpoch = time.Now()

// monoSince is t as nanoseconds since the process started, on the monotonic clock (for times
// that carry a monotonic reading, as time.Now's do): a step of the wall clock moves no
// deadline.
func monoSince(t time.Time) int64 { return int64(t.Sub(monoEpoch)) }

// expireBudgets ends the calls whose deadline (monoSince) is before now, and forgets the
// budgets that are gone. The watchdog calls it every heapPollInterval while callbacks run.
func expireBudgets(now int64) {
	budgets.mu.Lock()
	defer budgets.mu.Unlock()
	live := budgets.list[:0]
	for _, w := range budgets.list {
		b := w.Value()
		if b == nil {
			continue
		}
		live = append(live, w)
		if due := b.due.Load(); due != 0 && due <= now {
			b.expire()
		}
	}
	clear(budgets.list[len(live):])
	budgets.list = live
}

// arm starts a call under min(parent, d); disarm ends it. An already ended parent is
// reported at once and leaves b disarmed. The parent stays watched after the call, so the
// next call under the same parent (the usual case: one server context) registers nothing.
func (b *budget) arm(parent context.Context, d time.Duration) error {
	if err := parent.Err(); err != nil {
		return err
	}
	now := time.Now()
	b.mu.Lock()
	if b.err != nil {
		b.done, b.err = make(chan struct{}), nil
	}
	b.parent, b.armed = parent, true
	b.started = now
	b.work = 0
	b.late.Store(false)
	b.deadline, b.hard = now.Add(d), now.Add(hardFactor*d)
	if dl, ok := parent.Deadline(); ok && dl.Before(b.deadline) {
		b.deadline = dl
	}
	b.mu.Unlock()
	b.due.Store(max(monoSince(b.deadline), 1))
	heapEnter()
	if parent != b.watched { // contexts are pointers in practice, so this compares identity
		b.unwatch()
		if parent.Done() != nil {
			b.watched = parent
			b.stopWatch = context.AfterFunc(parent, func() { b.parentDone(parent) })
		}
	}
	return nil
}

// disarm ends the call arm started.
func (b *budget) disarm() {
	b.due.Store(0)
	b.mu.Lock()
	b.armed, b.parent = false, nil
	b.mu.Unlock()
	heapLeave()
}

// wait runs f, a wait for something other than the call's own work (socket:call waiting
// for the topic's state, perhaps on another node), with the call's clock stopped: its
// deadline moves by the time f took. The caller's context still ends it.
func (b *budget) wait(f func()) {
	b.due.Store(0) // the watchdog leaves it alone meanwhile
	start := time.Now()
	f()
	waited := time.Since(start)
	b.mu.Lock()
	if b.armed && b.err == nil {
		b.deadline, b.hard = b.deadline.Add(waited), b.hard.Add(waited)
		if dl, ok := b.parent.Deadline(); ok && dl.Before(b.deadline) {
			b.deadline = dl
		}
		b.late.Store(!time.Now().Before(b.deadline))
	}
	dl, armed := b.deadline, b.armed
	b.mu.Unlock()
	if armed {
		b.due.Store(max(monoSince(dl), 1))
	}
}

// unwatch stops watching the last parent.
func (b *budget) unwatch() {
	if b.stopWatch != nil {
		b.stopWatch()
	}
	b.watched, b.stopWatch = nil, nil
}

// close releases b for good: its VM is closed.
func (b *budget) close() {
	b.unwatch()
}

// expire marks the current call late when its deadline has passed, and ends it when its hard
// deadline has. A watchdog that read the deadline of an earlier call finds a deadline still
// ahead and does nothing.
func (b *budget) expire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.armed || b.err != nil {
		return
	}
	switch now := time.Now(); {
	case !now.Before(b.hard):
		b.endLocked(context.DeadlineExceeded)
	case !now.Before(b.deadline):
		b.late.Store(true)
	}
}

// outOfTime ends the current call, late and having done minWork: a runaway.
func (b *budget) outOfTime() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.late.Store(false) // once is enough
	if b.armed && b.err == nil {
		b.endLocked(context.DeadlineExceeded)
	}
}

// parentDone ends the current call when parent, the context it was armed with, ended.
func (b *budget) parentDone(parent context.Context) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.armed && b.err == nil && b.parent == parent {
		b.endLocked(context.Cause(parent))
	}
}

func (b *budget) endLocked(err error) {
	b.err = err
	close(b.done)
}

// overHeap ends the current call for the heap watchdog.
func (b *budget) overHeap() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.armed && b.err == nil {
		b.endLocked(ErrHeapLimit)
	}
}

// Done is read before every Lua instruction, by the goroutine that armed b: done changes only
// in arm, on that goroutine, so it is read without the lock. It is also where the heap bound
// is checked, as often as the deadline.
func (b *budget) Done() <-chan struct{} {
	if b.work++; b.late.Load() && b.work >= minWork {
		b.outOfTime()
	}
	// The watchdog cannot tell which callback allocated; the ones that have run for less
	// than heapGrace are the short, healthy ones, and stopping them would punish everyone
	// for one runaway. heapOver is one atomic load while the heap is under its bound.
	if heapOver(b.maxHeap) && time.Since(b.started) >= heapGrace {
		b.overHeap()
	}
	return b.done
}

// Err reports why the current call was ended, or nil.
func (b *budget) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// Deadline is the current call's deadline.
func (b *budget) Deadline() (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.deadline, b.armed
}

// Value looks key up in the current call's context.
func (b *budget) Value(key any) any {
	b.mu.Lock()
	parent := b.parent
	b.mu.Unlock()
	if parent == nil {
		return nil
	}
	return parent.Value(key)
}

var _ context.Context = (*budget)(nil)
