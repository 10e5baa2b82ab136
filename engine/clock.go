package engine

import "time"

// Clock is the engine's time source for socket:after and luachan.now. The
// server runs on the real clock; `luachan test` injects a virtual one that
// only moves when a test says so.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f on a goroutine of the clock's once d has passed,
	// unless the returned Timer is stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop cancels the call; it reports false when the call already ran or
	// was stopped.
	Stop() bool
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
