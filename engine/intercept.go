package engine

import (
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/luachan/luachan/luabind"
)

// outTurn is how many handle_out calls a worker makes for one channel in a
// turn, whose pushes it then sends together: enough for a client behind by
// a few broadcasts to get them in one system call, few enough that they
// stay far below the connection's queue limit and that the other channels
// on the worker get their turns.
const outTurn = 16

// waitOut is the average wait of a script's handle_out on luachan.store or
// luachan.presence above which its channels' mailboxes run on goroutines of
// their own rather than on a worker: a call waiting on Redis would otherwise
// hold up every channel behind it on that worker, while goroutines wait in
// parallel. (How long a call runs is no guide: a garbage collection assist
// can make any call slow now and then, and calls that only compute are best
// run on as few goroutines as there are cores.)
const waitOut = 20 * time.Microsecond

// outRunner runs the mailboxes that intercepted broadcasts wake on a few
// worker goroutines (GOMAXPROCS), instead of a goroutine per channel: a
// broadcast to 10,000 idle subscribers then starts no goroutine, and a
// worker takes a Lua VM once for a run of calls rather than once per call.
//
// Channel.Deliver puts the broadcast in the channel's mailbox, in arrival
// order with everything else the channel gets, exactly as other events are
// posted; only who runs the mailbox differs. A worker runs the handle_out
// calls at the head of a mailbox it was given, and leaves the mailbox to a
// goroutine of its own as soon as anything else comes first (a client event,
// a timer, the end of the channel), or when the script's handle_out waits
// (see waitOut), or when no VM of the script is free: those may wait, and a
// worker must not, since every channel behind it would wait too.
//
// A worker makes up to outTurn calls for a channel in a turn and sends what
// they pushed together at its end, so a client that has fallen behind by
// several broadcasts gets them in one system call, as the fast lane's
// subscribers do; the socket's other writes (replies, heartbeats) are not
// held back meanwhile.
type outRunner struct {
	e       *Engine
	workers []*outWorker // started by Engine.Start
}

// outWorker is one worker's queue of channels and its VM.
type outWorker struct {
	mu    sync.Mutex
	queue []*channel // mailboxes to run, each at most once
	wake  chan struct{}

	// Owned by the worker's goroutine.
	spare []*channel // the last batch's slice, for reuse
	hold  luabind.Holder
}

// post gives c's mailbox, which c.Deliver just woke, to c's worker (chosen
// by socket, so one client's channels share one).
func (r *outRunner) post(c *channel) {
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
func (r *outRunner) startWorkers(wg *sync.WaitGroup) {
	r.workers = make([]*outWorker, runtime.GOMAXPROCS(0))
	for i := range r.workers {
		w := &outWorker{wake: make(chan struct{}, 1)}
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

// loop runs the mailboxes it is given until the engine closes. The channels
// still queued then are left running: the engine is done with them.
func (w *outWorker) loop(e *Engine) {
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
				w.run(c)
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

// run runs the handle_out calls (and fast-laned broadcasts queued behind
// them) at the head of c's mailbox, up to outTurn, which the worker owns
// (c.running) until it ends the run, hands the mailbox to a goroutine, or
// puts the channel back in its queue for another turn. A panic meanwhile
// crashes the channel, as in dispatch, and the worker carries on.
func (w *outWorker) run(c *channel) {
	script := c.file.script()
	// Anything but a broadcast at the head, or a reload (the VM held is the
	// old script's, and the new one's pool may make us wait), ends a turn.
	outNext := func() bool {
		if len(c.queue) == 0 || c.file.script() != script {
			return false
		}
		k := c.queue[0].kind
		return k == evOut || k == evFast
	}
	owned := true // the worker still owns c's mailbox
	popped := int32(0)
	var current event
	defer func() {
		if !owned {
			return
		}
		if p := recover(); p != nil {
			c.e.log.Error("channel panicked; crashing it", "topic", c.topic, "conn", c.conn.Key(),
				"event", current.kind.String(), "panic", p, "stack", string(debug.Stack()))
			w.hold.Release() // the call may have left its VM half done
			c.queuedOut.Add(-popped)
			go func() { // ending it may wait, as in crashOut
				c.crashAfterPanic(current)
				c.run() // inherits running and the wg count
			}()
		}
	}()
	for calls := 0; calls < outTurn; calls++ {
		c.mu.Lock()
		if !outNext() {
			c.mu.Unlock()
			break
		}
		if calls == 0 {
			c.mu.Unlock()
			if script.HandleOutWait() > waitOut || !w.hold.TryHold(c.e.ctx, script) {
				owned = false
				go c.run() // inherits running and the wg count
				return
			}
			c.mu.Lock()
			if !outNext() { // stop() replaced the queue meanwhile
				c.mu.Unlock()
				break
			}
		}
		current = c.popLocked()
		c.mu.Unlock()
		popped++
		if dispatchHook != nil {
			dispatchHook(c, current.kind)
		}
		if c.ended {
			continue
		}
		if current.kind == evFast {
			c.outbox = append(c.outbox, outgoingSend{kind: sendFast, fast: current.out})
			continue
		}
		if err := c.callHandleOut(script, current.out, &w.hold); err != nil {
			// The channel crashes, after what its calls sent, on a goroutine:
			// ending it may wait (Unsubscribe, presence), and the worker must not.
			c.flushOut()
			c.queuedOut.Add(-popped)
			owned = false
			go func(ev event) {
				c.protect(ev, func() { c.crashOut(script, err) })
				c.run() // inherits running and the wg count
			}(current)
			return
		}
	}
	// The turn's copies leave together, while the worker still owns the
	// mailbox (the outbox is the runner's).
	c.flushOut()
	c.queuedOut.Add(-popped)
	owned = false

	c.mu.Lock()
	switch {
	case len(c.queue) == 0:
		c.running = false
		c.queue = nil
		c.mu.Unlock()
		c.e.wg.Done()
	case outNext():
		// More copies are due: the channel goes to the back of the worker's
		// queue, still its to run, so it does not hold up the others.
		c.mu.Unlock()
		w.mu.Lock()
		w.queue = append(w.queue, c)
		w.mu.Unlock()
	default:
		c.mu.Unlock()
		go c.run() // inherits running and the wg count
	}
}
