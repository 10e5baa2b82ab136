package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// busyGroup is the WaitGroup of the engine's goroutines that also counts
// them, so a caller can wait for the engine to go idle: every mailbox
// drained and every callback returned. A broadcast reaches its intercepting
// subscribers' mailboxes before the sender's mailbox finishes, so once the
// count is zero nothing is left in flight but timers not yet due.
type busyGroup struct {
	sync.WaitGroup
	n       atomic.Int64
	idlePtr atomic.Pointer[chan struct{}] // capacity 1: a Done brought n to zero
}

func (g *busyGroup) Add(d int) {
	g.n.Add(int64(d))
	g.WaitGroup.Add(d)
}

func (g *busyGroup) Done() {
	if g.n.Add(-1) == 0 {
		select {
		case g.idleChan() <- struct{}{}:
		default:
		}
	}
	g.WaitGroup.Done()
}

// idleChan is idle, made on first use so a zero busyGroup works.
func (g *busyGroup) idleChan() chan struct{} {
	if c := g.idlePtr.Load(); c != nil {
		return *c
	}
	c := make(chan struct{}, 1)
	if g.idlePtr.CompareAndSwap(nil, &c) {
		return c
	}
	return *g.idlePtr.Load()
}

// idlePollEvery bounds how long WaitIdle may miss a wake-up it raced with.
const idlePollEvery = 5 * time.Millisecond

// WaitIdle waits until no channel event is queued or running, or ctx ends.
// It is for tests that drive the engine in process (`luachan test`): once
// it returns, everything the last client frame caused has been sent. With
// a watcher running (Watch) the engine is never idle.
func (e *Engine) WaitIdle(ctx context.Context) error {
	tick := time.NewTicker(idlePollEvery)
	defer tick.Stop()
	for e.wg.n.Load() != 0 {
		select {
		case <-e.wg.idleChan():
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
