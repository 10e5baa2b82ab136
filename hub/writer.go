package hub

import (
	"fmt"
	"runtime"
	"sync"
	"time"
)

// Writer deadlines.
const (
	writeWait  = 10 * time.Second       // longest one burst may take to reach the kernel; slower clients are dropped
	closeWait  = 2 * time.Second        // longest the final flush and close frame may take
	abortWait  = 250 * time.Millisecond // longest a close frame alone may take (slow client: it rarely gets through)
	closeGrace = 2 * time.Second        // how long the reader then waits for the client's close reply
)

// A connection has a writer only while it has something to write. The goroutine that
// finds the queue unattended (Conn.writing false) becomes the writer and sets writing;
// the writer gives the role up, clearing writing under Conn.mu, only when it finds the
// queue empty, so no frame is ever left behind without a writer. Writes that cannot
// block come first: a reply or push is written inline by the goroutine that sends it,
// and a broadcast's connections are handed to a few flusher goroutines that write to
// each in turn (see writeSome). Only a connection whose socket is full, or that is
// closing, gets a writer goroutine of its own (writeLoop), which may block, within
// writeWait.

// startWriter starts a writer goroutine. The caller has set c.writing for it.
func (c *Conn) startWriter() {
	c.hub.wg.Add(1)
	go c.writeLoop()
}

// writeSome writes what is queued from the calling goroutine, which holds the writer
// role, with one vectored write that does not block. What was queued meanwhile it
// leaves to the flushers; what the socket did not take at once, and a close, to a
// writer goroutine.
func (c *Conn) writeSome() {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		c.startWriter()
		return
	}
	frames := c.q.take(c.spare)
	c.spare = nil
	c.mu.Unlock()
	if len(c.pending) > 0 { // the rest of the last write goes first
		frames = append(c.pending, frames...)
		c.pending = nil
	}

	n, blocked, err := writeNow(c.raw, frames)
	if c.pending, c.cut = skipWritten(frames, n); c.pending == nil {
		c.spare = recycle(frames)
	}

	c.mu.Lock()
	c.q.wrote(n)
	if err == nil && !blocked && !c.closing {
		if len(c.pending) == 0 && c.q.queued == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		scheduleFlush(c) // more than one write's worth: the others get their turn first
		return
	}
	c.mu.Unlock()
	if err != nil {
		c.writeFailed(err)
	}
	c.startWriter()
}

// Flush queue sizes.
const (
	maxFlushBatch     = 128     // connections a flusher takes from the flush queue at once
	maxKeptFlushQueue = 1 << 17 // longest flush queue whose memory is kept once it empties
)

// flushQueue is the connections whose queued broadcasts wait for a flusher: a few
// goroutines, at most GOMAXPROCS, that write to each connection in turn without
// blocking. A broadcast to ten thousand subscribers thus starts no goroutine per
// subscriber, and a subscriber whose writer is still busy gets several broadcasts in
// one write. The flushers are shared by every Hub of the process; each queued
// connection counts in its Hub's wg until it has been written to, and a flusher exits
// when the queue is empty.
var flushQueue struct {
	mu      sync.Mutex // guards the fields below
	conns   []*Conn    // waiting, oldest from head on
	head    int
	workers int // flushers running
}

// scheduleFlush queues c, whose writer role the caller hands over, for a flusher.
func scheduleFlush(c *Conn) {
	c.hub.wg.Add(1)
	fq := &flushQueue
	fq.mu.Lock()
	fq.conns = append(fq.conns, c)
	start := fq.workers < runtime.GOMAXPROCS(0)
	if start {
		fq.workers++
	}
	fq.mu.Unlock()
	if start {
		go flusher()
	}
}

// flusher writes to queued connections until the flush queue is empty.
func flusher() {
	fq := &flushQueue
	var batch [maxFlushBatch]*Conn
	for {
		fq.mu.Lock()
		k := copy(batch[:], fq.conns[fq.head:])
		clear(fq.conns[fq.head : fq.head+k])
		fq.head += k
		if fq.head == len(fq.conns) {
			if cap(fq.conns) > maxKeptFlushQueue {
				fq.conns = nil // a freak burst's memory is not kept for good
			}
			fq.conns, fq.head = fq.conns[:0], 0
		}
		if k == 0 {
			fq.workers--
			fq.mu.Unlock()
			return
		}
		fq.mu.Unlock()
		for i, c := range batch[:k] {
			batch[i] = nil
			h := c.hub
			c.writeSome()
			h.wg.Done()
		}
	}
}

// writeLoop is a writer goroutine, started with c.writing set for it. Each round takes
// everything queued since the last one and writes it with a single vectored write, so
// a burst of broadcasts costs one system call per client, and the shared broadcast
// frames are never copied. It returns when the queue is empty, or after writing the
// close frame.
func (c *Conn) writeLoop() {
	defer c.hub.wg.Done()
	failed := false // a write failed: the stream may end inside a frame
	for {
		c.mu.Lock()
		frames := c.q.take(c.spare)
		c.spare = nil
		cut := c.cut
		if len(c.pending) > 0 {
			frames = append(c.pending, frames...)
			c.pending, c.cut = nil, false
		}
		closing, code, text, flush := c.closing, c.closeCode, c.closeText, c.closeFlush
		if !closing && len(frames) == 0 {
			if c.raw == nil {
				// A socket without a descriptor (a pipe) cannot be written to without
				// blocking, so neither inline nor by the flushers: its writer stays,
				// waiting for the next frame or the close.
				c.spare = frames
				c.mu.Unlock()
				<-c.wake
				continue
			}
			c.writing = false
			c.mu.Unlock()
			return
		}
		if !closing {
			// Armed under c.mu, so that a close coming later overrides it (see
			// beginCloseLocked) and a burst to a stuck client does not delay the close.
			_ = c.nc.SetWriteDeadline(time.Now().Add(writeWait))
		}
		c.mu.Unlock()

		if closing {
			switch {
			case failed:
				frames, code = frames[:0], 0 // nothing more can follow a broken frame
			case !flush && cut:
				frames = frames[:1] // the rest of the frame already begun, then the close
			case !flush:
				frames = frames[:0] // only the close frame goes out
			}
			c.finish(frames, code, text, flush)
			close(c.writerDone) // the writer role is never given back
			return
		}
		err := c.writeFrames(frames)
		c.mu.Lock()
		c.q.done()
		c.mu.Unlock()
		c.spare = recycle(frames)
		if err != nil {
			failed = true
			c.writeFailed(err) // the next round finds the connection closing
		}
	}
}

// writeFailed closes the connection after a failed write and wakes the reader: the
// socket is finished.
func (c *Conn) writeFailed(err error) {
	c.fail(fmt.Errorf("%w: %w", ErrWrite, err))
	_ = c.nc.SetReadDeadline(time.Now())
}

// finish writes the last frames (if flush) and the close frame (none when code is 0),
// then bounds how long the reader waits for the client to answer the close.
func (c *Conn) finish(frames [][]byte, code int, text string, flush bool) {
	if code != 0 {
		frames = append(frames, closeFrame(code, text).buf)
	}
	wait := closeWait
	if !flush {
		wait = abortWait
	}
	err := c.nc.SetWriteDeadline(time.Now().Add(wait))
	if err == nil {
		err = c.writeFrames(frames)
	}
	c.mu.Lock()
	c.q.done()
	c.mu.Unlock()
	grace := time.Now().Add(closeGrace)
	if code == 0 || err != nil {
		grace = time.Now()
	}
	// Reading on until the client's close frame (or the grace deadline) lets its close
	// reach us before the socket is closed, so the client gets our close frame rather
	// than a TCP reset.
	_ = c.nc.SetReadDeadline(grace)
}

// writeFrames writes frames to the socket in one vectored write, within the write
// deadline the caller set.
func (c *Conn) writeFrames(frames [][]byte) error {
	if len(frames) == 0 {
		return nil
	}
	c.bufs = frames
	_, err := c.bufs.WriteTo(c.nc) // consumes c.bufs; frames' contents are untouched
	c.bufs = nil
	return err
}

// skipWritten returns what is left of frames once their first n bytes are written, in
// frames' own list: the frames not reached, the first of them cut to its unwritten part
// (cut reports that it was begun); nil if nothing is left.
func skipWritten(frames [][]byte, n int) (rest [][]byte, cut bool) {
	for i, f := range frames {
		if n < len(f) {
			frames[i] = f[n:]
			k := copy(frames, frames[i:])
			clear(frames[k:])
			return frames[:k], n > 0
		}
		n -= len(f)
	}
	return nil, false
}
