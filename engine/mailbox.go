package engine

import (
	"sync"
	"sync/atomic"

	"github.com/luachan/luachan/hub"
)

// mailbox is a channel's queue of events and the right to run them. At any
// moment it is idle (empty, and nobody's) or owned by exactly one goroutine,
// which runs its events one at a time, in order, until it is empty.
//
// The one protocol, for the channel's goroutine, for runNow on the socket's
// reader and for the intercept workers alike:
//
//  1. Acquire: put or stop that finds the mailbox idle, or runNow, makes the
//     caller its owner and counts it in the engine's busy group.
//  2. Run: the owner takes events with next (or nextIf) and handles them.
//  3. Hand off or release: next releases the mailbox once it is empty (and so
//     does release, which refuses while events wait); start hands it to a new
//     goroutine, which runs it to the end; a worker may also keep it for a
//     later turn.
//
// A panic in handling an event is recovered and reported to the handler,
// which ends the channel; the mailbox carries on, so it is never left owned.
type mailbox struct {
	h    eventHandler
	busy *busyGroup // counts owned mailboxes: Engine.Close and WaitIdle wait for them
	max  int        // events that may wait; a leave is taken beyond it

	// mu guards queue, owned and closed. It is a leaf: nothing else is
	// locked, and nothing is called, while it is held.
	mu     sync.Mutex
	queue  []event
	owned  bool // a goroutine runs the mailbox
	closed bool // the channel is ending: only a leave is taken

	// unsentBroadcasts counts the broadcasts (evIntercepted, evFast) queued or
	// being handled whose copies are not yet queued on the socket: while there
	// are any, every broadcast goes through the mailbox (channel.Intercepts),
	// so a fast-laned one never overtakes an intercepted one sent before it.
	// The owner subtracts what it handled with broadcastsSent.
	unsentBroadcasts atomic.Int32
}

// eventHandler runs a mailbox's events: the channel.
type eventHandler interface {
	// handle runs one event, on the mailbox's owner.
	handle(ev event)
	// panicked ends the channel after handling ev panicked with p; it runs in
	// the deferred recover, so the panic's stack is still there to log.
	panicked(ev event, p any)
}

// putResult is what put did with an event.
type putResult uint8

const (
	putQueued   putResult = iota // queued behind the events the owner runs
	putAcquired                  // queued in an idle mailbox: the caller owns it and must run it (start, or a worker)
	putRefused                   // dropped: the mailbox is closed
	putFull                      // dropped: max events already wait; the caller closes the socket
)

func newMailbox(h eventHandler, busy *busyGroup, max int) mailbox {
	return mailbox{h: h, busy: busy, max: max}
}

// put queues ev. A leave is always taken, closed or full: the session has
// already forgotten the channel, so nothing else would answer it.
func (m *mailbox) put(ev event) putResult {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ev.kind != evLeave {
		if m.closed {
			return putRefused
		}
		if len(m.queue) >= m.max {
			return putFull
		}
	}
	m.queue = append(m.queue, ev)
	if ev.isBroadcast() {
		m.unsentBroadcasts.Add(1)
	}
	if m.acquireLocked() {
		return putAcquired
	}
	return putQueued
}

// acquireLocked makes the caller the owner of an idle mailbox.
func (m *mailbox) acquireLocked() bool {
	if m.owned {
		return false
	}
	m.owned = true
	m.busy.Add(1)
	return true
}

// runNow runs ev on the calling goroutine when the mailbox is idle and
// open, then hands any events that came meanwhile to a goroutine. It
// reports false, having done nothing, otherwise.
func (m *mailbox) runNow(ev event) bool {
	m.mu.Lock()
	ok := !m.closed && m.acquireLocked()
	m.mu.Unlock()
	if !ok {
		return false
	}
	m.dispatch(ev)
	if !m.release() {
		m.start()
	}
	return true
}

// stop closes the mailbox, drops what waits in it but leaves, and puts ev
// first, so it runs as soon as the event running now returns. It reports
// whether it closed the mailbox (false: it was closed already, and ev is
// dropped), and whether the caller acquired it and must start it.
func (m *mailbox) stop(ev event) (closed, acquired bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, false
	}
	m.closed = true
	m.dropQueuedLocked()
	m.queue = append(m.queue, event{})
	copy(m.queue[1:], m.queue)
	m.queue[0] = ev
	return true, m.acquireLocked()
}

// close makes the mailbox take nothing but leaves from now on.
func (m *mailbox) close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
}

// closeAndDrop closes the mailbox and drops what waits in it but leaves,
// which are still answered. It returns the client's events it dropped, for
// the caller to answer.
func (m *mailbox) closeAndDrop() (ins []*hub.Message) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return m.dropQueuedLocked()
}

// dropQueuedLocked drops what waits but leaves, and returns the client's
// events (evIn) among it.
func (m *mailbox) dropQueuedLocked() (ins []*hub.Message) {
	kept, dropped := m.queue[:0], int32(0)
	for _, ev := range m.queue {
		switch {
		case ev.kind == evLeave:
			kept = append(kept, ev)
		case ev.isBroadcast():
			dropped++
		case ev.kind == evIn:
			ins = append(ins, ev.msg)
		}
	}
	clear(m.queue[len(kept):])
	m.queue = kept
	m.unsentBroadcasts.Add(-dropped)
	return ins
}

// isClosed reports whether the mailbox takes only leaves.
func (m *mailbox) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// next takes the next event for the owner. When there is none it releases
// the mailbox and reports false: the caller owns it no more.
func (m *mailbox) next() (event, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.queue) == 0 {
		m.releaseLocked()
		return event{}, false
	}
	return m.popLocked(), true
}

// nextIf takes the next event for the owner if there is one and ok accepts
// it (ok runs with m.mu held). It never releases the mailbox.
func (m *mailbox) nextIf(ok func(event) bool) (event, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.queue) == 0 || !ok(m.queue[0]) {
		return event{}, false
	}
	return m.popLocked(), true
}

// headIs reports whether there is a next event and ok accepts it (ok runs
// with m.mu held).
func (m *mailbox) headIs(ok func(event) bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.queue) > 0 && ok(m.queue[0])
}

func (m *mailbox) popLocked() event {
	ev := m.queue[0]
	m.queue[0] = event{} // let what it holds be collected
	m.queue = m.queue[1:]
	return ev
}

// release gives up an empty mailbox, reporting true; while events wait it
// reports false, and the caller still owns it.
func (m *mailbox) release() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.queue) > 0 {
		return false
	}
	m.releaseLocked()
	return true
}

func (m *mailbox) releaseLocked() {
	m.owned = false
	m.queue = nil
	m.busy.Done()
}

// start hands the owner's mailbox to a new goroutine, which runs it until
// it is empty.
func (m *mailbox) start() { go m.run() }

// handOff is start with first run before the mailbox's events, as part of
// handling ev (a panic in it is ev's): how a worker passes on what may wait.
func (m *mailbox) handOff(ev event, first func()) {
	go func() {
		m.protect(ev, first)
		m.run()
	}()
}

// run runs the owner's mailbox until it is empty and released.
func (m *mailbox) run() {
	for {
		ev, ok := m.next()
		if !ok {
			return
		}
		m.dispatch(ev)
	}
}

// dispatch handles ev, turning a panic into the handler's panicked.
func (m *mailbox) dispatch(ev event) {
	defer m.recoverPanic(&ev) // a pointer: the deferred call's copy is on the stack
	m.h.handle(ev)
}

// protect runs f, part of handling ev, as dispatch runs handle.
func (m *mailbox) protect(ev event, f func()) {
	defer m.recoverPanic(&ev)
	f()
}

func (m *mailbox) recoverPanic(ev *event) {
	if p := recover(); p != nil {
		m.h.panicked(*ev, p)
	}
}

// broadcastsSent records that the owner queued the copies of n broadcasts
// it took from the mailbox (see unsentBroadcasts).
func (m *mailbox) broadcastsSent(n int32) { m.unsentBroadcasts.Add(-n) }

// hasUnsentBroadcasts reports whether broadcasts wait in the mailbox or are
// being handled.
func (m *mailbox) hasUnsentBroadcasts() bool { return m.unsentBroadcasts.Load() > 0 }
