package hub

import (
	"runtime"
	"sync"
)

// Flush queue sizes.
const (
	maxFlushBatch     = 128     // connections a flusher takes from the flush queue at once
	maxKeptFlushQueue = 1 << 17 // longest flush queue whose memory is kept once it empties
)

// flushQueue is the writers whose queued broadcasts wait for a flusher: a few
// goroutines, at most GOMAXPROCS, that write to each connection in turn without
// blocking. A broadcast to ten thousand subscribers thus starts no goroutine per
// subscriber, and a subscriber whose writer is still busy gets several broadcasts in
// one write. The flushers are shared by every Hub of the process; each queued writer
// counts in its Hub's wg until it has been written to, and a flusher exits when the
// queue is empty.
var flushQueue struct {
	mu      sync.Mutex // guards the fields below
	writers []*writer  // waiting, oldest from head on; each in state writerFlushing
	head    int
	workers int // flushers running
}

// scheduleFlush queues w, whose role (writerFlushing) the caller hands over, for a
// flusher.
func scheduleFlush(w *writer) {
	w.wg.Add(1)
	fq := &flushQueue
	fq.mu.Lock()
	fq.writers = append(fq.writers, w)
	start := fq.workers < runtime.GOMAXPROCS(0)
	if start {
		fq.workers++
	}
	fq.mu.Unlock()
	if start {
		go flusher()
	}
}

// flusher writes to queued writers until the flush queue is empty.
func flusher() {
	fq := &flushQueue
	var batch [maxFlushBatch]*writer
	for {
		fq.mu.Lock()
		k := copy(batch[:], fq.writers[fq.head:])
		clear(fq.writers[fq.head : fq.head+k])
		fq.head += k
		if fq.head == len(fq.writers) {
			if cap(fq.writers) > maxKeptFlushQueue {
				fq.writers = nil // a freak burst's memory is not kept for good
			}
			fq.writers, fq.head = fq.writers[:0], 0
		}
		if k == 0 {
			fq.workers--
			fq.mu.Unlock()
			return
		}
		fq.mu.Unlock()
		for i, w := range batch[:k] {
			batch[i] = nil
			wg := w.wg
			w.writeSome()
			wg.Done()
		}
	}
}
