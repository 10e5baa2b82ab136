package luabind

import (
	"context"
	"math"
	"sync"
	"time"
)

// budget is a VM's CPU-budget context, reused for every call on that VM. gopher-lua checks a
// context's Done channel before each instruction; arming a fresh context.WithTimeout per call
// costs four allocations and, under a shared cancelable parent, two trips through the parent's
// lock. A budget is armed with a timer Reset instead, and needs a new channel only after it
// fired, and keeps watching the same parent from call to call. It is used by the goroutine
// holding its VM; only the timer and the parent's cancellation reach it from elsewhere,
// through mu. A budget also ends its call when the heap watchdog sees the process heap over
// maxHeap (see heapWatch).
type budget struct {
	maxHeap   uint64          // the heap bound of its calls; set before the first call
	timer     *time.Timer     // fires expire; stopped between calls
	watched   context.Context // the parent being watched for cancellation, if any
	stopWatch func() bool     // stops watching it
	started   time.Time       // when the current call was armed; the calling goroutine's

	mu       sync.Mutex      // guards the fields below against the timer and parent callbacks
	parent   context.Context // the caller's context of the current call
	done     chan struct{}   // closed when the budget ran out; replaced on arm after that
	err      error           // why done was closed
	armed    bool            // a call is running: firing now counts
	deadline time.Time
}

func newBudget() *budget {
	b := &budget{done: make(chan struct{}), maxHeap: math.MaxUint64}
	b.timer = time.AfterFunc(time.Hour, b.expire)
	b.timer.Stop()
	return b
}

// arm starts a call under min(parent, d); disarm ends it. An already ended parent is
// reported at once and leaves b disarmed. The parent stays watched after the call, so the
// next call under the same parent (the usual case: one server context) registers nothing.
func (b *budget) arm(parent context.Context, d time.Duration) error {
	if err := parent.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	if b.err != nil {
		b.done, b.err = make(chan struct{}), nil
	}
	b.parent, b.armed = parent, true
	b.started = time.Now()
	heapEnter()
	b.deadline = time.Now().Add(d)
	if dl, ok := parent.Deadline(); ok && dl.Before(b.deadline) {
		b.deadline = dl
	}
	b.mu.Unlock()
	b.timer.Reset(time.Until(b.deadline))
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
	b.timer.Stop()
	b.mu.Lock()
	b.armed, b.parent = false, nil
	b.mu.Unlock()
	heapLeave()
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
	b.timer.Stop()
	b.unwatch()
}

// expire ends the current call when its deadline has passed. A timer that fired for an
// earlier call, too late to be stopped, finds a deadline still ahead and does nothing.
func (b *budget) expire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.armed && b.err == nil && !time.Now().Before(b.deadline) {
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
