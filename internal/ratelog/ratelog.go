// Package ratelog keeps a repeated log line readable: a Limiter lets it through at most
// once per Every, counting what happened in between. The broker adapters (hub/redis,
// hub/nats) share it.
package ratelog

import (
	"sync"
	"time"
)

// Every is how often a repeated failure is logged at most.
const Every = 10 * time.Second

// Limiter rate-limits one log line. The zero value is ready; its lock is a leaf.
type Limiter struct {
	mu    sync.Mutex // guards the fields below
	next  time.Time
	count int
}

// Allow counts n events and reports whether to log now, with the events since the last line.
func (l *Limiter) Allow(n int) (ok bool, since int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count += n
	now := time.Now()
	if now.Before(l.next) {
		return false, 0
	}
	l.next = now.Add(Every)
	since, l.count = l.count, 0
	return true, since
}

// Reset makes the next Allow log at once.
func (l *Limiter) Reset() {
	l.mu.Lock()
	l.next, l.count = time.Time{}, 0
	l.mu.Unlock()
}
