package scripttest

import (
	"sync"
	"time"

	"github.com/luachan/luachan/engine"
)

// virtualClock is the engine's clock in a test: time stands still until the test advances
// it, and a timer's function runs on the test's goroutine, when the runner fires it (see
// env.settle and env.advance), never by itself.
type virtualClock struct {
	mu     sync.Mutex // guards the fields below
	now    time.Time
	seq    uint64 // orders timers due at the same instant by creation
	timers map[*virtualTimer]struct{}
}

var _ engine.Clock = (*virtualClock)(nil)

// virtualTimer is one pending AfterFunc.
type virtualTimer struct {
	c   *virtualClock
	due time.Time
	seq uint64
	f   func()
}

func newVirtualClock(start time.Time) *virtualClock {
	return &virtualClock{now: start, timers: make(map[*virtualTimer]struct{})}
}

func (c *virtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *virtualClock) AfterFunc(d time.Duration, f func()) engine.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &virtualTimer{c: c, due: c.now.Add(max(d, 0)), seq: c.seq, f: f}
	c.timers[t] = struct{}{}
	return t
}

func (t *virtualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, pending := t.c.timers[t]
	delete(t.c.timers, t)
	return pending
}

// next removes and returns the earliest timer due by until (the first created among
// equals), setting the clock to its due time; nil when none is.
func (c *virtualClock) next(until time.Time) *virtualTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first *virtualTimer
	for t := range c.timers {
		if t.due.After(until) {
			continue
		}
		if first == nil || t.due.Before(first.due) || t.due.Equal(first.due) && t.seq < first.seq {
			first = t
		}
	}
	if first != nil {
		delete(c.timers, first)
		if first.due.After(c.now) {
			c.now = first.due
		}
	}
	return first
}

// set moves the clock to t (never back).
func (c *virtualClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
}
