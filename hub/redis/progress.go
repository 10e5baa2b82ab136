package redis

import (
	"context"
	"sync"
	"sync/atomic"
)

// queueProgress follows a queue that one goroutine works through in order (the
// publisher's, the history appender's), so that Flush can wait for what was queued
// before it. The zero value is ready.
type queueProgress struct {
	queued atomic.Uint64 // counted before an item goes in; taken back if it did not
	done   atomic.Uint64 // sent, or dropped, by the goroutine working the queue

	mu   sync.Mutex    // guards wake; a leaf
	wake chan struct{} // closed when done or queued moves, while a Flush waits; nil otherwise
}

// in counts an item about to go into the queue.
func (p *queueProgress) in() { p.queued.Add(1) }

// undo takes back in for an item that did not go in after all.
func (p *queueProgress) undo() {
	p.queued.Add(^uint64(0))
	p.signal()
}

// advance counts n items the queue's goroutine has sent or dropped.
func (p *queueProgress) advance(n int) {
	p.done.Add(uint64(n))
	p.signal()
}

func (p *queueProgress) signal() {
	p.mu.Lock()
	if p.wake != nil {
		close(p.wake)
		p.wake = nil
	}
	p.mu.Unlock()
}

// wait returns once every item queued before the call is done, or ctx's error. Every
// item ahead of the last one queued before the call was counted before it went in, and
// the queue is worked through in order: once done reaches that count, that item is done.
// (A count taken back meanwhile only makes the count to reach lower: done catching up
// with queued ends the wait too.)
func (p *queueProgress) wait(ctx context.Context) error {
	target := p.queued.Load()
	for {
		p.mu.Lock()
		if done := p.done.Load(); done >= target || done >= p.queued.Load() {
			p.mu.Unlock()
			return nil
		}
		if p.wake == nil {
			p.wake = make(chan struct{})
		}
		wake := p.wake
		p.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
