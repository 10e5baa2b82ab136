package hub

import "time"

// Defaults of the inbound message rate limit.
const (
	DefaultMaxMessageRate = 100 // messages per second a client may sustain
	// DefaultMaxMessageBurst is how many messages a client may send at once after a quiet
	// spell. It is generous: joining a hundred channels at once, or a test client firing
	// requests back to back, is legitimate; what the limit stops is a sustained flood.
	DefaultMaxMessageBurst = 1000
)

// clockStart anchors the monotonic clock the rate limiters read.
var clockStart = time.Now()

// monoNow returns nanoseconds on a monotonic clock.
func monoNow() int64 { return int64(time.Since(clockStart)) }

// tokenBucket limits one connection's inbound messages: it holds up to burst tokens,
// gains rate tokens a second, and each message spends one. It is refilled lazily from
// the time elapsed when a message arrives, so an idle connection costs no goroutine and
// no timer. It has no lock: one goroutine at a time uses it (the connection's reader,
// or a LongPoll POST holding the session's handle lock).
type tokenBucket struct {
	tokens float64 // tokens available at last
	last   int64   // monoNow of the last refill; 0 = never used (full)
}

// allow spends a token if there is one, refilling first. rate <= 0 means unlimited.
func (b *tokenBucket) allow(now int64, rate float64, burst int) bool {
	if rate <= 0 {
		return true
	}
	if b.last == 0 {
		b.tokens = float64(burst)
	} else {
		b.tokens = min(float64(burst), b.tokens+float64(now-b.last)*rate/float64(time.Second))
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
