package engine

import (
	"runtime"
	"sync"
	"time"

	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/luabind"
)

// outBatchMax bounds how many handle_out calls a worker makes while holding
// back the writes to the sockets it has touched: the larger, the more copies
// a client gets per system call when the workers fall behind; the smaller,
// the sooner the first of them are written.
const outBatchMax = 1 << 16

// maxSpareItems is the largest queue slice (16 bytes an item) a worker keeps
// for its next batch.
const maxSpareItems = 1 << 16

// waitOut is the average wait of a script's handle_out on luachan.store
// above which its calls run on the channels' own goroutines rather than
// inline on a worker: a call waiting on Redis would otherwise hold up every
// channel behind it on that worker, while goroutines wait in parallel. (How
// long a call runs is no guide: a garbage collection assist can make any
// call slow now and then, and calls that only compute are best run on as
// few goroutines as there are cores.)
const waitOut = 20 * time.Microsecond

// outRunner runs handle_out for intercepted broadcasts on a few worker
// goroutines (GOMAXPROCS) instead of one goroutine per subscribing channel:
// a broadcast to 10,000 subscribers then starts no goroutine, and a worker
// takes a VM once for a run of calls rather than once per call.
//
// Order is kept per channel: a channel's broadcasts always go to the same
// worker (chosen by its socket), which takes them in order and runs each on
// the channel's behalf only when the mailbox is idle (claim), posting it to
// the mailbox otherwise, where it queues behind the events before it. A
// script whose handle_out waits (see waitOut) has every call posted.
//
// A worker holds back the writes of every socket it touches during a batch
// (Cork) and releases them together at its end (UncorkLater), so that a
// client whose copies pile up gets them in one system call, as the fast
// lane's subscribers do.
type outRunner struct {
	e       *Engine
	start   sync.Once
	workers []*outWorker
}

// outWorker is one worker's queue and state.
type outWorker struct {
	mu    sync.Mutex
	queue []outItem
	wake  chan struct{} // capacity 1: there is work

	// Owned by the worker's goroutine.
	spare  []outItem // the last batch's slice, for reuse
	batch  uint64    // numbers batches, for channel.outBatch
	hold   luabind.Holder
	corked []*hub.Conn
}

// outItem is one intercepted broadcast for one channel.
type outItem struct {
	c *channel
	b *hub.Broadcast
}

// post queues b for c on c's worker, starting the workers on first use.
func (r *outRunner) post(c *channel, b *hub.Broadcast) {
	r.start.Do(r.startWorkers)
	w := r.workers[c.conn.Key()%uint64(len(r.workers))]
	w.mu.Lock()
	w.queue = append(w.queue, outItem{c: c, b: b})
	first := len(w.queue) == 1
	w.mu.Unlock()
	if first {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (r *outRunner) startWorkers() {
	r.workers = make([]*outWorker, runtime.GOMAXPROCS(0))
	for i := range r.workers {
		w := &outWorker{wake: make(chan struct{}, 1)}
		r.workers[i] = w
		go w.loop(r.e)
	}
}

// loop runs batches until the engine closes; what is still queued then is
// dropped, as a closed channel's mailbox is.
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
			items := w.queue
			w.queue, w.spare = w.spare[:0], nil
			w.mu.Unlock()
			for rest := items; len(rest) > 0; rest = rest[min(len(rest), outBatchMax):] {
				w.run(rest[:min(len(rest), outBatchMax)])
			}
			clear(items)
			if cap(items) <= maxSpareItems { // a burst's slice is not kept for good
				w.spare = items[:0]
			}
			if len(items) == 0 {
				break
			}
		}
	}
}

// run makes one batch of handle_out calls and then lets the flushers write
// what they sent.
func (w *outWorker) run(items []outItem) {
	w.batch++
	for _, it := range items {
		c := it.c
		c.outPending.Add(-1)
		if c.outBatch != w.batch {
			c.outBatch = w.batch
			c.conn.Cork()
			w.corked = append(w.corked, c.conn)
		}
		if c.file.script().HandleOutWait() > waitOut || !c.claim() {
			c.post(event{kind: evOut, out: it.b})
			continue
		}
		c.handleOutHeld(it.b, &w.hold)
		c.release()
	}
	w.hold.Release()
	for _, conn := range w.corked {
		conn.UncorkLater()
	}
	clear(w.corked)
	w.corked = w.corked[:0]
}
