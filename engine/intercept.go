package engine

import (
	"runtime"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/luachan/luachan/luabind"
)

// interceptTurn is how many broadcasts a worker handles for one channel in a
// turn before its copies go out together and the next channel's turn comes:
// a client behind by a few broadcasts gets them in one system call, far below
// the connection's queue limit, and the worker's other channels wait little.
const interceptTurn = 16

// maxHandleOutWait is the average wait of a script's handle_out on
// luachan.store or luachan.presence above which its mailboxes run on
// goroutines of their own rather than on a worker, where a call waiting on
// Redis would hold up every channel behind it.
const maxHandleOutWait = 20 * time.Microsecond

// interceptWorkers run the mailboxes that intercepted broadcasts acquire on
// GOMAXPROCS goroutines instead of a goroutine per channel: a broadcast to
// 10,000 idle subscribers starts no goroutine, and a worker holds one Lua VM
// for a run of handle_out calls.
//
// A worker runs only the broadcasts at the head of a mailbox. It hands the
// mailbox to a goroutine of its own (mailbox.start) when anything else comes
// first, or when handle_out may wait (maxHandleOutWait, or no VM free): a
// worker must not wait, since every channel behind it would wait too.
type interceptWorkers struct {
	e       *Engine
	workers []*interceptWorker // started by Engine.Start
}

// interceptWorker is one worker's queue of channels and its VM.
type interceptWorker struct {
	mu    sync.Mutex
	queue []*channel // channels whose mailboxes the worker owns, each at most once
	wake  chan struct{}

	// Owned by the worker's goroutine.
	spare []*channel // the last batch's slice, for reuse
	hold  luabind.Holder
	sends []pendingSend // lent to the channel whose turn it is (see lendSends)
	lent  bool          // sends is lent
}

// lentSends is the capacity of a worker's sends slice: a turn's copies, and more
// than a channel keeps (maxKeptSends), so flush lets go of it.
const lentSends = 2 * interceptTurn

// lendSends gives c, whose turn begins, the worker's slice for what its calls
// push, so that a turn does not grow a slice of its own from empty.
func (w *interceptWorker) lendSends(c *channel) {
	if len(c.sends) > 0 {
		return
	}
	if w.sends == nil {
		w.sends = make([]pendingSend, 0, lentSends)
	}
	c.sends, w.lent = w.sends[:0], true
}

// flushLent is c.flushBatched for a channel lendSends lent the worker's slice
// to, then takeBackSends.
func (w *interceptWorker) flushLent(c *channel) {
	used := w.used(c)
	c.flushBatched()
	w.takeBackSends(c, used)
}

// used is how much of the worker's slice c's sends have written: all of it
// when they outgrew it.
func (w *interceptWorker) used(c *channel) int {
	if w.lent && w.lentTo(c) {
		return len(c.sends)
	}
	return cap(w.sends)
}

// lentTo reports whether c's sends are still in the worker's slice.
func (w *interceptWorker) lentTo(c *channel) bool {
	return cap(c.sends) > 0 && unsafe.SliceData(c.sends) == unsafe.SliceData(w.sends)
}

// takeBackSends ends the loan of lendSends before c's mailbox leaves the
// worker: whatever is still in the slice goes with c in a copy of its own, and
// the used part of the worker's slice is cleared of the turn's payloads.
func (w *interceptWorker) takeBackSends(c *channel, used int) {
	if !w.lent {
		return
	}
	w.lent = false
	if w.lentTo(c) {
		if len(c.sends) == 0 {
			c.sends = nil
		} else {
			c.sends = slices.Clone(c.sends)
		}
	}
	clear(w.sends[:used])
}

// post gives c's mailbox, which c.Deliver just acquired, to c's worker
// (chosen by socket, so one client's channels share one).
func (r *interceptWorkers) post(c *channel) {
	w := r.workers[c.conn.Key()%uint64(len(r.workers))]
	w.mu.Lock()
	w.queue = append(w.queue, c)
	first := len(w.queue) == 1
	w.mu.Unlock()
	if first {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// startWorkers starts the workers, each counted in wg until the engine's
// context ends and it returns.
func (r *interceptWorkers) startWorkers(wg *sync.WaitGroup) {
	r.workers = make([]*interceptWorker, runtime.GOMAXPROCS(0))
	for i := range r.workers {
		w := &interceptWorker{wake: make(chan struct{}, 1)}
		r.workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(r.e)
		}()
	}
}

// maxSpare is the largest queue slice a worker keeps for its next batch.
const maxSpare = 1 << 14

// loop gives turns to the channels it is posted until the engine closes. The
// mailboxes still queued then stay owned: the engine is done with them.
func (w *interceptWorker) loop(e *Engine) {
	for {
		select {
		case <-w.wake:
		case <-e.ctx.Done():
			return
		}
		for {
			// Swap the queue for the spare slice: posts carry on into it while the
			// batch runs. The slice taken becomes the spare, so the two never share.
			w.mu.Lock()
			chans := w.queue
			w.queue, w.spare = w.spare[:0], nil
			w.mu.Unlock()
			for _, c := range chans {
				w.turn(c)
			}
			w.hold.Release()
			clear(chans)
			if cap(chans) <= maxSpare {
				w.spare = chans[:0]
			}
			if len(chans) == 0 {
				break
			}
		}
	}
}

// turn handles up to interceptTurn broadcasts at the head of c's mailbox,
// which the worker owns, then releases the mailbox, keeps it for another
// turn, or hands it to a goroutine. A panic meanwhile crashes the channel,
// as in mailbox.dispatch, and the worker carries on.
func (w *interceptWorker) turn(c *channel) {
	script := c.file.script()
	// A reload ends a turn too: the VM held is the old script's, and the new
	// one's pool may make us wait.
	broadcastNext := func(ev event) bool { return ev.isBroadcast() && c.file.script() == script }
	owned := true // the worker still owns c's mailbox
	handled := int32(0)
	var current event
	defer func() {
		if !owned {
			return
		}
		if p := recover(); p != nil {
			w.takeBackSends(c, cap(w.sends))
			c.logPanic(current, p)
			w.hold.Release() // the call may have left its VM half done
			c.mb.broadcastsSent(handled)
			// Ending the channel may wait (Unsubscribe, presence); the worker must not.
			c.mb.handOff(current, func() { c.crashAfterPanic(current) })
		}
	}()
	for calls := 0; calls < interceptTurn; calls++ {
		if calls == 0 {
			if !c.mb.headIs(broadcastNext) {
				break
			}
			if script.HandleOutWait() > maxHandleOutWait || !w.hold.TryHold(c.e.ctx, script) {
				owned = false
				c.mb.start()
				return
			}
			w.lendSends(c)
		}
		ev, ok := c.mb.nextIf(broadcastNext) // stop() may have emptied it meanwhile
		if !ok {
			break
		}
		current = ev
		handled++
		if dispatchHook != nil {
			dispatchHook(c, current.kind)
		}
		if c.ended || c.alreadySent(current.broadcast) {
			continue
		}
		if current.kind == evFast {
			c.sends = append(c.sends, pendingSend{kind: sendFast, fast: current.broadcast})
			continue
		}
		if err := c.callHandleOut(script, current.broadcast, &w.hold); err != nil {
			// The channel crashes after what its calls sent, on a goroutine, as
			// for a panic.
			w.flushLent(c)
			c.mb.broadcastsSent(handled)
			owned = false
			c.mb.handOff(current, func() { c.handleOutFailed(script, err) })
			return
		}
	}
	// The turn's copies leave together, while the worker still owns the
	// mailbox (c.sends is the owner's).
	w.flushLent(c)
	c.mb.broadcastsSent(handled)
	owned = false

	switch {
	case c.mb.release():
	case c.mb.headIs(broadcastNext):
		// More copies are due: the channel goes to the back of the worker's
		// queue, its mailbox still the worker's, so it does not hold up the others.
		w.mu.Lock()
		w.queue = append(w.queue, c)
		w.mu.Unlock()
	default:
		c.mb.start()
	}
}
