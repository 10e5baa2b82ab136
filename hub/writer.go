package hub

import (
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// Writer deadlines.
const (
	writeWait  = 10 * time.Second       // longest one burst may take to reach the kernel; slower clients are dropped
	closeWait  = 2 * time.Second        // longest the final flush and close frame may take
	abortWait  = 250 * time.Millisecond // longest a close frame alone may take (slow client: it rarely gets through)
	closeGrace = 2 * time.Second        // how long the reader then waits for the client's close reply
)

// writer is a connection's outbound side: its bounded queue, the role of writing the
// socket, which at most one goroutine holds at a time, and the close it must carry out.
// Every frame for the client goes through send; only the role's holder touches the
// socket's write side, and the role passes between goroutines only as written here.
//
// Who writes, by state:
//
//	writerIdle      nobody: the queue is empty, or held back by a cork
//	writerInline    the goroutine that sent (or uncorked), once and without blocking
//	writerFlushing  a shared flusher, once and without blocking (the writer waits in
//	                the flush queue until one takes it)
//	writerLooping   a writer goroutine of its own (writeLoop), which may block within
//	                writeWait: for a socket whose kernel buffer is full, one that is
//	                closing, or one with no descriptor (raw nil: a pipe)
//	writerClosed    nobody, ever again: the close frame is written or abandoned
//
// Transitions, each made under mu:
//
//	idle     → inline    send, or the last uncork, with frames queued
//	idle     → flushing  send for a broadcast, or the last uncork(later)
//	idle     → looping   send or uncork to a socket with no descriptor (the loop then
//	                     stays, waiting on wake); close (a close always needs a writer)
//	inline   → idle      the write took everything, and nothing more was queued
//	flushing → idle      the same
//	inline   → flushing  more was queued meanwhile: the flushers take the rest in turn
//	flushing → flushing  the same
//	inline   → looping   the kernel took only part, the write failed, or a close came
//	flushing → looping   the same
//	looping  → idle      the queue is empty (a socket with a descriptor only)
//	looping  → closed    writeLoop wrote the close frame, or gave it up; done is closed
//
// A send while the role is held only queues: the holder takes everything queued at its
// next write, so frames sent together reach the socket in one system call. A holder
// gives the role up only when it finds the queue empty, under mu, so no frame is ever
// left without a writer. While corked, a send only queues; the last uncork takes the
// role as a send would. A close is never held back by a cork: the first one is
// recorded with its reason (later ones change nothing), drops the queue unless it
// flushes, bounds the write in progress to closeWait, and makes sure writeLoop runs to
// finish the frame begun and write the close frame; sends then return ErrClosed. A send
// that takes the queue over its limit closes it as a slow consumer (ClosePolicy, "slow
// consumer", ErrSlow, no flush). A writer without a socket (LongPoll) is a queue and a
// close record only: its state stays idle, and its frames are taken by the session's
// polls, woken through wake.
type writer struct {
	// Owned by the role's holder. (First, and apart from the read-only fields below:
	// a flusher writes these while a broadcast reads those, on another core.)
	pending [][]byte    // frames taken from the queue that a write without blocking left over
	cut     bool        // pending's first frame is the rest of one partly written
	spare   [][]byte    // an emptied frame list, for the queue's next burst
	bufs    net.Buffers // vectored-write state

	mu     sync.Mutex // guards the fields below up to nc (and, for a Conn, lp.unsent)
	q      outQueue
	state  writerState
	corked int // cork calls not yet undone: frames queued meanwhile wait for uncork
	// closing is set once, by the first close request; later requests change nothing.
	closing    bool
	closeCode  int    // close frame code to send; 0 sends none (the socket is gone)
	closeText  string // close frame reason
	closeErr   error  // reason handed to Session.Closed
	closeFlush bool   // write what is queued before the close frame

	// Set by init, then read-only.
	nc   net.Conn        // the socket, whose write side is the role holder's; nil for LongPoll
	raw  syscall.RawConn // nc's descriptor, for writes that must not block; nil: writeLoop writes
	wg   *sync.WaitGroup // the Hub's: counts writeLoop goroutines and hand-offs to the flushers
	wake chan struct{}   // without raw, capacity 1: wakes the resident writeLoop, or a LongPoll's poll
	done chan struct{}   // closed once the close frame is written (or abandoned)

	finished func() // called once done is closed, if set: resumes a parked reader
}

// writerState is who holds a writer's role; see writer.
type writerState uint8

// The writer states; see writer.
const (
	writerIdle writerState = iota
	writerInline
	writerFlushing
	writerLooping
	writerClosed
)

func (s writerState) String() string {
	return [...]string{"idle", "inline", "flushing", "looping", "closed"}[s]
}

// init prepares w to write to nc (nil: a LongPoll queue), within a queue of limit
// bytes, counting its goroutines in wg.
func (w *writer) init(nc net.Conn, wg *sync.WaitGroup, limit int) {
	w.nc, w.wg, w.q.limit = nc, wg, limit
	w.done = make(chan struct{})
	if sc, ok := nc.(syscall.Conn); ok {
		w.raw, _ = sc.SyscallConn()
	}
	if w.raw == nil {
		w.wake = make(chan struct{}, 1)
	}
}

// send queues frame and, if the role is idle and nothing is corked, takes it: with now
// the calling goroutine writes at once, without blocking (inline); otherwise the
// flushers do. It never blocks. It returns ErrClosed once closing, and ErrSlow, with
// held the bytes the connection held, when the frame does not fit and this call closed w.
func (w *writer) send(frame []byte, now bool) (held int, err error) {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return 0, ErrClosed
	}
	if !w.q.push(frame) {
		held = w.q.size()
		w.closeLocked(ClosePolicy, "slow consumer", ErrSlow, false)
		w.mu.Unlock()
		return held, ErrSlow
	}
	if w.nc == nil {
		w.mu.Unlock()
		w.wakeUp() // a LongPoll's waiting poll
		return 0, nil
	}
	if w.state != writerIdle || w.corked > 0 {
		resident := w.corked == 0 && w.raw == nil
		w.mu.Unlock()
		if resident {
			w.wakeUp()
		}
		return 0, nil
	}
	s := w.claimLocked(now)
	w.mu.Unlock()
	w.run(s)
	return 0, nil
}

// cork holds back writing what is queued until the matching uncork. Calls nest.
func (w *writer) cork() {
	w.mu.Lock()
	w.corked++
	w.mu.Unlock()
}

// uncork undoes one cork. The last one takes the idle role for what was queued
// meanwhile, as send does: written now by the caller, or with later by the flushers.
func (w *writer) uncork(later bool) {
	w.mu.Lock()
	w.corked--
	if w.corked > 0 || w.state != writerIdle || w.q.queued == 0 || w.closing || w.nc == nil {
		resident := w.corked == 0 && w.state != writerIdle && w.raw == nil
		w.mu.Unlock()
		if resident {
			w.wakeUp()
		}
		return
	}
	s := w.claimLocked(!later)
	w.mu.Unlock()
	w.run(s)
}

// claimLocked takes the idle role for the caller, who then calls run with the state
// returned: writeLoop for a socket with no descriptor, else inline (now) or flushing.
func (w *writer) claimLocked(now bool) writerState {
	switch {
	case w.raw == nil:
		w.state = writerLooping
	case now:
		w.state = writerInline
	default:
		w.state = writerFlushing
	}
	return w.state
}

// run hands the role just claimed as s to its holder.
func (w *writer) run(s writerState) {
	switch s {
	case writerLooping:
		w.startLoop()
	case writerInline:
		w.writeSome()
	default:
		scheduleFlush(w)
	}
}

// close records the first close request: a writer writes what is queued (if flush),
// then a close frame with code and text (none if code is 0), and err becomes the
// reason for Session.Closed. It reports whether this call was the first.
func (w *writer) close(code int, text string, err error, flush bool) bool {
	w.mu.Lock()
	first := w.closeLocked(code, text, err, flush)
	w.mu.Unlock()
	return first
}

// closeLocked is close with w.mu held. It makes sure a writer will write the close
// frame: the holder, which hands over to writeLoop when it sees the close, or a
// writeLoop started for it.
//
// It also bounds a write the holder may be blocked in (a slow client's full socket) to
// closeWait, flushing or not, so that the frame on the wire may still be finished and
// the close frame follow it: a client that stalled and reads again then learns why it
// was closed. Doing this under w.mu orders it after the deadline writeLoop arms for a
// burst (also under w.mu), so it is never overridden.
func (w *writer) closeLocked(code int, text string, err error, flush bool) bool {
	if w.closing {
		return false
	}
	w.closing, w.closeCode, w.closeText, w.closeErr, w.closeFlush = true, code, text, err, flush
	if !flush {
		w.q.drop()
	}
	if w.nc == nil {
		return true
	}
	_ = w.nc.SetWriteDeadline(time.Now().Add(closeWait))
	switch {
	case w.state == writerIdle:
		w.state = writerLooping
		w.startLoop()
	case w.raw == nil:
		w.wakeUp()
	}
	return true
}

// isClosing reports whether a close has been requested.
func (w *writer) isClosing() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closing
}

// reason returns the reason given with the first close request (ErrClosed if none).
func (w *writer) reason() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closeErr == nil {
		return ErrClosed
	}
	return w.closeErr
}

// wakeUp wakes a LongPoll session's waiting poll, or the resident writeLoop of a socket
// without a descriptor. The buffered channel coalesces a burst of wake-ups into one:
// the poll or loop then takes everything queued at once.
func (w *writer) wakeUp() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// startLoop starts writeLoop. The caller has set the state writerLooping for it.
func (w *writer) startLoop() {
	w.wg.Add(1)
	go w.writeLoop()
}

// writeSome writes what is queued from the calling goroutine, which holds the role
// (inline or flushing), with one vectored write that does not block. What was queued
// meanwhile it leaves to the flushers; what the socket did not take at once, and a
// close, to writeLoop.
func (w *writer) writeSome() {
	w.mu.Lock()
	if w.closing {
		w.state = writerLooping
		w.mu.Unlock()
		w.startLoop()
		return
	}
	frames := w.q.take(w.spare)
	w.spare = nil
	w.mu.Unlock()
	if len(w.pending) > 0 { // the rest of the last write goes first
		frames = append(w.pending, frames...)
		w.pending = nil
	}

	n, blocked, err := writeNow(w.raw, frames)
	if w.pending, w.cut = skipWritten(frames, n); w.pending == nil {
		w.spare = recycle(frames)
	}

	w.mu.Lock()
	w.q.wrote(n)
	if err == nil && !blocked && !w.closing {
		if len(w.pending) == 0 && w.q.queued == 0 {
			w.state = writerIdle
			w.mu.Unlock()
			return
		}
		w.state = writerFlushing
		w.mu.Unlock()
		scheduleFlush(w) // more than one write's worth: the others get their turn first
		return
	}
	w.state = writerLooping
	w.mu.Unlock()
	if err != nil {
		w.failed(err)
	}
	w.startLoop()
}

// writeLoop is a writer goroutine, started with the state writerLooping. Each round takes
// everything queued since the last one and writes it with a single vectored write, so
// a burst of broadcasts costs one system call per client, and the shared broadcast
// frames are never copied. It returns when the queue is empty, or after writing the
// close frame.
func (w *writer) writeLoop() {
	defer w.wg.Done()
	failed := false // a write failed: the stream may end inside a frame
	for {
		w.mu.Lock()
		frames := w.q.take(w.spare)
		w.spare = nil
		cut := w.cut
		if len(w.pending) > 0 {
			frames = append(w.pending, frames...)
			w.pending, w.cut = nil, false
		}
		closing, code, text, flush := w.closing, w.closeCode, w.closeText, w.closeFlush
		if !closing && len(frames) == 0 {
			if w.raw == nil {
				// A socket without a descriptor (a pipe) cannot be written to without
				// blocking, so neither inline nor by the flushers: its writer stays,
				// waiting for the next frame or the close.
				w.spare = frames
				w.mu.Unlock()
				<-w.wake
				continue
			}
			w.state = writerIdle
			w.mu.Unlock()
			return
		}
		if !closing {
			// Armed under w.mu, so that a close coming later overrides it (see
			// closeLocked) and a burst to a stuck client does not delay the close.
			_ = w.nc.SetWriteDeadline(time.Now().Add(writeWait))
		}
		w.mu.Unlock()

		if closing {
			switch {
			case failed:
				frames, code = frames[:0], 0 // nothing more can follow a broken frame
			case !flush && cut:
				frames = frames[:1] // the rest of the frame already begun, then the close
			case !flush:
				frames = frames[:0] // only the close frame goes out
			}
			w.finish(frames, code, text, flush)
			return
		}
		err := w.writeFrames(frames)
		w.mu.Lock()
		w.q.done()
		w.mu.Unlock()
		w.spare = recycle(frames)
		if err != nil {
			failed = true
			w.failed(err) // the next round finds the connection closing
		}
	}
}

// failed closes w after a failed write, without a close frame, and wakes the reader:
// the socket is finished.
func (w *writer) failed(err error) {
	w.close(0, "", fmt.Errorf("%w: %w", ErrWrite, err), false)
	_ = w.nc.SetReadDeadline(time.Now())
}

// finish writes the last frames (if flush) and the close frame (none when code is 0),
// bounds how long the reader waits for the client to answer the close, and gives the
// role up for good.
func (w *writer) finish(frames [][]byte, code int, text string, flush bool) {
	if code != 0 {
		frames = append(frames, closeFrame(code, text).buf)
	}
	wait := closeWait
	if !flush {
		wait = abortWait
	}
	err := w.nc.SetWriteDeadline(time.Now().Add(wait))
	if err == nil {
		err = w.writeFrames(frames)
	}
	w.mu.Lock()
	w.q.done()
	w.state = writerClosed
	w.mu.Unlock()
	grace := time.Now().Add(closeGrace)
	if code == 0 || err != nil {
		grace = time.Now()
	}
	// Reading on until the client's close frame (or the grace deadline) lets its close
	// reach us before the socket is closed, so the client gets our close frame rather
	// than a TCP reset.
	_ = w.nc.SetReadDeadline(grace)
	close(w.done)
	if w.finished != nil {
		w.finished()
	}
}

// writeFrames writes frames to the socket in one vectored write, within the write
// deadline the caller set.
func (w *writer) writeFrames(frames [][]byte) error {
	if len(frames) == 0 {
		return nil
	}
	w.bufs = frames
	_, err := w.bufs.WriteTo(w.nc) // consumes w.bufs; frames' contents are untouched
	w.bufs = nil
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
