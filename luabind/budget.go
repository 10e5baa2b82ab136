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
// that waited for a CPU on a saturated host is not a runaway: the watchdog only marks a
// call past its deadline late, and the call ends once it has gone on running for lateGrace
// after it first saw that (see Done). A runaway goes on, and ends within a watchdog
// interval and lateGrace of its deadline; a join of three lines that was not scheduled for
// its whole budget finishes in microseconds when it is.
type budget struct {
	maxHeap   uint64          // the heap bound of its calls; set before the first call
	watched   context.Context // the parent being watched for cancellation, if any
	stopWatch func() bool     // stops watching it
	started   time.Time       // when the current call was armed; the calling goroutine's
	due       atomic.Int64    // the current call's deadline (monoSince), for the watchdog; 0 when disarmed
	late      atomic.Bool     // the current call is past its deadline (set by the watchdog)
	lateSeen  time.Time       // when the current call first saw late; the calling goroutine's

	mu       sync.Mutex      // guards the fields below against the watchdog and parent callbacks
	parent   context.Context // the caller's context of the current call
	done     chan struct{}   // closed when the budget ran out; replaced on arm after that
	err      error           // why done was closed
	armed    bool            // a call is running: ending it now counts
	deadline time.Time
}

// lateGrace is how long a call past its deadline may go on running before it is stopped:
// one that only waited for a CPU finishes in far less, a runaway does not.
const lateGrace = 10 * time.Millisecond

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
	b.late.Store(false)
	b.lateSeen = time.Time{}
	b.deadline = now.Add(d)
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
		b.deadline = b.deadline.Add(waited)
		if dl, ok := b.parent.Deadline(); ok && dl.Before(b.deadline) {
			b.deadline = dl
		}
		b.late.Store(!time.Now().Before(b.deadline))
		b.lateSeen = time.Time{}
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

// expire marks the current call late when its deadline has passed. A watchdog that read the
// deadline of an earlier call finds a deadline still ahead and does nothing.
func (b *budget) expire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.armed && b.err == nil && !time.Now().Before(b.deadline) {
		b.late.Store(true)
	}
}

// runLate is Done for a call past its deadline: it ends the call once it has gone on
// running for lateGrace since it first saw that.
func (b *budget) runLate() {
	now := time.Now()
	if b.lateSeen.IsZero() {
		b.lateSeen = now
	} else if now.Sub(b.lateSeen) >= lateGrace {
		b.outOfTime()
	}
}

// outOfTime ends the current call, late and still running: a runaway.
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
	if b.late.Load() {
		b.runLate()
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
