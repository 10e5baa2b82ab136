package main

// Heartbeats as Phoenix clients send them: each connection every interval,
// counted from its own join, so that none goes quiet for longer than the
// interval however long the others take to connect. A setup of 100,000
// connections takes longer than luachan's idle timeout; a schedule that
// started only once every connection was up, or that reached a connection
// only on its next pass, let the first ones be closed as idle.

import (
	"container/heap"
	"context"
	"math"
	"sync"
	"time"
)

// beatSpread is the golden ratio's fraction: the k-th client added beats
// first at k·beatSpread (mod 1) of the interval after it joined, so clients
// that join together spread their heartbeats evenly over the interval, like
// clients that connected at different times.
const beatSpread = 0.6180339887498949

// beater sends every client it is given a heartbeat each interval until the
// context of run ends. One goroutine, one heap of due times.
type beater struct {
	interval time.Duration
	kick     chan struct{} // cap 1: a client was added

	mu    sync.Mutex // guards due and added
	due   beatHeap
	added int
}

func newBeater(interval time.Duration) *beater {
	return &beater{interval: interval, kick: make(chan struct{}, 1)}
}

// add schedules c's heartbeats, the first within one interval from now.
func (b *beater) add(c *client) {
	if b.interval <= 0 {
		return
	}
	b.mu.Lock()
	_, frac := math.Modf(float64(b.added) * beatSpread)
	b.added++
	heap.Push(&b.due, beat{at: time.Now().Add(time.Duration(frac * float64(b.interval))), c: c})
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// run sends the heartbeats until ctx ends. A client whose heartbeat cannot
// be written is dropped: its connection is gone, and its reader says so.
func (b *beater) run(ctx context.Context) {
	if b.interval <= 0 {
		return
	}
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		c, at, wait := b.nextDue()
		if c != nil {
			if c.heartbeat() == nil {
				// Late (a write that waited), the next one comes no sooner than now.
				next := at.Add(b.interval)
				if now := time.Now(); next.Before(now) {
					next = now
				}
				b.mu.Lock()
				heap.Push(&b.due, beat{at: next, c: c})
				b.mu.Unlock()
			}
			continue
		}
		var timer <-chan time.Time
		if wait > 0 {
			t.Reset(wait)
			timer = t.C
		}
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		case <-timer:
		}
	}
}

// nextDue takes the client whose heartbeat is due, or says how long until
// the next one is (0: none scheduled).
func (b *beater) nextDue() (c *client, at time.Time, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.due) == 0 {
		return nil, time.Time{}, 0
	}
	if d := time.Until(b.due[0].at); d > 0 {
		return nil, time.Time{}, d
	}
	next := heap.Pop(&b.due).(beat)
	return next.c, next.at, 0
}

// beat is a client's next heartbeat.
type beat struct {
	at time.Time
	c  *client
}

// beatHeap orders heartbeats by due time (container/heap).
type beatHeap []beat

func (h beatHeap) Len() int           { return len(h) }
func (h beatHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h beatHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *beatHeap) Push(x any)        { *h = append(*h, x.(beat)) }
func (h *beatHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = beat{}
	*h = old[:len(old)-1]
	return x
}
