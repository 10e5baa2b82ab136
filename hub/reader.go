package hub

import (
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"syscall"
	"time"
)

// Reader buffer sizes.
const (
	idleReadBuffer    = 256      // the buffer inside each connection that a quiet client's frames are read into
	readBufferSize    = 4096     // the pooled buffer a connection borrows while its client's bytes keep coming
	initialReadBuffer = 512      // first allocation of a message buffer (messages over readBufferSize)
	maxKeptReadBuffer = 64 << 10 // largest message buffer a connection keeps between messages
)

// run serves the connection on its own goroutine (its reader) until it is closed, then
// cleans up and reports to the Session. The caller has counted it in Hub.wg.
func (c *Conn) run() {
	c.session = c.hub.cfg.Handler.Open(c)
	if c.session == nil {
		c.session = nopSession{}
	}
	c.read(false)
}

// read runs the read loop and, once it ends, cleans up. When the loop moves to a fresh
// goroutine (see rest), read returns at once and that goroutine finishes the job.
func (c *Conn) read(moved bool) {
	if c.readLoop(moved) {
		return
	}
	<-c.w.done
	_ = c.nc.Close()
	c.rd.in.release()
	c.hub.removeConn(c)
	c.ended()
	c.hub.wg.Done()
}

// ended counts the connection's close reason and reports it to the Session.
func (c *Conn) ended() {
	reason := c.closeReason()
	c.hub.count.closed[closeKindOf(reason)].Add(1)
	c.session.Closed(reason)
}

// readLoop reads messages until the socket fails or the client's close frame arrives,
// and reports false; or until the client has been quiet for restAfter, and reports true
// once it has parked the connection (see park) or started a fresh goroutine (moved) to go
// on reading (see rest). Once the
// connection is closing it keeps reading, discarding messages, so that the client's
// close reply is seen before the socket is closed; after a frame that cannot be parsed
// past, it discards raw bytes instead (see drain).
func (c *Conn) readLoop(moved bool) bool {
	handled, handledSinceWait := 0, false // frames passed to the Session by this goroutine; one since the last wait (see restHold)
	for {
		if c.canRest() {
			move, deadline := c.rest(moved, handledSinceWait && handled > 1)
			handledSinceWait = false
			if move {
				c.hub.count.restMoves.Add(1)
				if !c.park(deadline) {
					go c.read(true)
				}
				return true
			}
			moved = false
		} else {
			c.armIdleDeadline()
		}
		binary, data, err := c.rd.next()
		if err != nil {
			var we *wireError
			if !errors.As(err, &we) {
				c.readFailed(err)
				return false
			}
			c.reject(we.code, we)
			if we.fatal {
				c.drain()
				return false
			}
			continue // the refused message is skipped; the client's close may follow
		}
		if c.isClosing() {
			continue
		}
		if !c.allowMessage() {
			continue
		}
		m, err := Decode(data, c.format, binary, c.hub.cfg.MaxDepth)
		if err != nil {
			code := CloseUnsupported
			if errors.Is(err, ErrBadUTF8) {
				code = CloseInvalidUTF8
			}
			c.reject(code, err)
			continue
		}
		c.hub.count.framesIn.Add(1)
		c.hub.count.bytesIn.Add(uint64(len(data)))
		if m.isHeartbeat() {
			_ = c.Reply("", m.Ref, phoenixTopic, "ok", nil, false) // written inline
			continue
		}
		c.handle(m)
		handled++
		handledSinceWait = true
	}
}

// drain ends reading after a frame the stream cannot be parsed past. Once the writer
// has sent the close frame, it half-closes the socket, so the client sees the end of
// the stream at once, and discards whatever the client still sends until it closes its
// side or closeGrace passes: closing a socket with unread data would reset it, and the
// reset could destroy the close frame before the client reads it.
func (c *Conn) drain() {
	<-c.w.done
	if hc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = hc.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, &c.rd.in)
}

// armIdleDeadline gives the client IdleTimeout to send its next frame. A closing
// connection keeps the shorter deadline the writer set.
func (c *Conn) armIdleDeadline() {
	c.setReadDeadline(time.Now().Add(c.hub.cfg.IdleTimeout))
}

// setReadDeadline sets the socket's read deadline, and reports whether it did: a
// closing connection keeps the shorter deadline the writer set.
func (c *Conn) setReadDeadline(t time.Time) bool {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	if c.w.closing {
		return false
	}
	_ = c.nc.SetReadDeadline(t)
	return true
}

// restAfter is how long a client may be quiet before its reader moves to a fresh
// goroutine (see rest). A variable for the tests.
var restAfter = time.Second

// canRest reports whether the reader may wait for the client's next frame in rest: the
// socket has a descriptor to wait on, and the last read left nothing buffered, at a
// frame boundary, with nothing to skip and no sign of more bytes waiting.
func (c *Conn) canRest() bool {
	in := &c.rd.in
	return canRestRead && c.w.raw != nil && in.src == c.nc && in.r == in.w && !in.lastFull && in.err == nil && c.rd.skip == 0
}

// rest waits for the client's next bytes where a quiet connection spends its time, and
// reports whether the reader should move to a fresh goroutine. A goroutine's stack
// grows to what its deepest call needed (a script's callback needs several KiB) and the
// garbage collector never shrinks it below 4 KiB once it has grown: a blocked read
// holds more than the 224 bytes that would allow. A fresh goroutine's stack is 2 KiB,
// which the wait here fits in. So a reader that has handled a frame (moved false) waits
// only restAfter here; if the client stays quiet, it sets the deadline IdleTimeout after
// the last frame and reports true with that deadline: the connection is then parked
// (see park), with no goroutine at all until its client sends or the deadline comes, or,
// where it cannot be, handed to a fresh goroutine, which waits for that deadline. A busy
// connection keeps its goroutine and its grown stack. The bytes that end the wait are
// read into the connection's small buffer (see sockReader.restRead), so a quiet
// connection holds no borrowed buffer either.
func (c *Conn) rest(moved, hold bool) (bool, time.Time) {
	in := &c.rd.in
	idle := c.hub.cfg.IdleTimeout
	quiet := !moved && restAfter < idle
	since := time.Now()
	switch {
	case moved: // the deadline is set: the last frame's IdleTimeout
	case quiet:
		if !c.setReadDeadline(since.Add(restAfter)) {
			return false, time.Time{} // closing: the next read meets the writer's deadline
		}
	default:
		if !c.setReadDeadline(since.Add(idle)) {
			return false, time.Time{}
		}
	}
	var err error
	if quiet && hold {
		err = in.restReadHolding(c.w.raw)
	} else {
		err = in.restRead(c.w.raw)
	}
	switch {
	case err == nil:
		in.rearm = quiet // a frame cut short must get IdleTimeout, not what is left of restAfter
		return false, time.Time{}
	case quiet && errorIsTimeout(err):
		// Move, leaving the fresh goroutine the idle deadline counted from the last frame;
		// unless closing, where the writer's deadline stands and reading goes on here.
		return c.setReadDeadline(since.Add(idle)), since.Add(idle)
	}
	return false, time.Time{} // the next read meets the error again
}

// restHold is the stack a busy reader holds while it waits in rest. The garbage
// collector halves a goroutine's stack when the goroutine uses less than a quarter of it,
// and a reader waiting for its client's next frame uses about 1.4 KiB (with the runtime's
// reserve). So at every collection a busy reader's stack, grown to 8 KiB by its last
// script callback (one that calls socket:call, say), was halved, and the next callback
// grew it again by copying it whole: copystack was 10-13% of the server's CPU under
// socket:call load. Holding 1 KiB more, the wait still fits in 4 KiB, so a reader that
// never needed more keeps 4 KiB; an 8 KiB stack is no longer shrunk while its connection
// is busy, and a deeper one only down to 8 KiB. A quiet reader gives it all back: it
// moves to a fresh 2 KiB goroutine, or parks (see rest).
//
// Busy means the reader passed a frame to the Session since its last wait, and another
// before that. Heartbeats are answered here and need no more stack than a fresh
// goroutine has. A client that joins and then stays quiet would keep its join's stack
// for the second before it parks: 15,000 of them joining at once left about 0.3 KiB more
// resident memory per connection.
const restHold = 1 << 10

// restReadHolding is restRead from a frame that holds restHold bytes of stack.
//
//go:noinline
func (b *sockReader) restReadHolding(raw syscall.RawConn) error {
	var hold [restHold]byte
	holdStack(hold[:])
	return b.restRead(raw)
}

// holdStack makes its argument live, so the compiler keeps the frame's array.
//
//go:noinline
func holdStack(b []byte) { b[0] = 0 }

// allowMessage spends one of the client's message tokens. A client out of tokens is
// closed with 1008, once, and false returned.
func (c *Conn) allowMessage() bool {
	if c.bucket.allow(monoNow(), c.hub.cfg.MaxMessageRate, c.hub.cfg.MaxMessageBurst) {
		return true
	}
	if c.closeWith(ClosePolicy, "rate limit exceeded", ErrRateLimit, true) {
		c.hub.count.rateLimited.Add(1)
		c.logger().Warn("rate limit exceeded, connection closed", "reason", ErrRateLimit,
			"rate", c.hub.cfg.MaxMessageRate, "burst", c.hub.cfg.MaxMessageBurst)
	}
	return false
}

// reject closes the connection over a bad frame from the client, once, with a warning.
func (c *Conn) reject(code int, reason error) {
	if c.closeWith(code, reason.Error(), reason, true) {
		c.hub.count.badFrames.Add(1)
		c.logger().Warn("bad frame, connection closed", "reason", reason, "code", code)
	}
}

// readFailed turns the reader's final error into the connection's close reason.
func (c *Conn) readFailed(err error) {
	var ce *CloseError
	switch {
	case errors.As(err, &ce):
		// Echo the client's close code, as RFC 6455 asks; no flush, it reads no more.
		c.closeWith(ce.Code, "", ce, false)
	case errorIsTimeout(err):
		if c.closeWith(CloseGoingAway, "idle timeout", ErrIdle, true) {
			c.hub.count.idleClosed.Add(1)
			c.logger().Debug("idle connection closed", "reason", ErrIdle)
		}
	default:
		c.fail(fmt.Errorf("%w: %w", ErrPeerClosed, err))
	}
}

// onPing answers a WebSocket ping through the queue, keeping the writer the only one to
// write. (Phoenix clients use heartbeat messages instead; other clients may ping.) Pings
// count against the rate limit like messages.
func (c *Conn) onPing(data []byte) {
	if c.isClosing() || !c.allowMessage() {
		return
	}
	_ = c.queueFrame(pongFrame(data).buf, true)
}

// handle passes m to the Session. A panic there is contained to this connection: it is
// logged and the connection closed with 1011, as a script bug must not take the server
// down.
func (c *Conn) handle(m *Message) {
	defer func() {
		if p := recover(); p != nil {
			c.logger().Error("session panicked", "topic", m.Topic, "event", m.Event, "panic", p, "stack", string(debug.Stack()))
			c.closeWith(CloseInternal, "internal error", fmt.Errorf("hub: session panicked: %v", p), true)
		}
	}()
	c.session.Handle(m)
}

// nopSession stands in for a Handler that returns no Session.
type nopSession struct{}

func (nopSession) Handle(*Message) {}
func (nopSession) Closed(error)    {}

// readBufPool holds the buffers connections borrow while their clients send.
var readBufPool = sync.Pool{New: func() any { return new([readBufferSize]byte) }}

// sockReader buffers a connection's reads. A quiet client costs it only idleReadBuffer
// bytes inside the Conn: that is what the reader blocks on. When a read fills the
// buffer, or a frame needs more room, it borrows a readBufferSize buffer from a pool
// for as long as reads keep filling it, and gives it back at the first read that does
// not. Used by the reader goroutine only.
type sockReader struct {
	src      io.Reader
	buf      []byte                // small[:] or big[:]; nil until the first read
	r, w     int                   // buf[r:w] is read and not yet consumed
	lastFull bool                  // the last read filled buf: more is probably waiting
	err      error                 // the error that ended reading, once buf[r:w] is consumed
	big      *[readBufferSize]byte // borrowed from readBufPool; nil when not
	small    [idleReadBuffer]byte

	// For restRead and Conn.rest (nil, zero and false for other readers).
	restFn    func(fd uintptr) bool // raw.Read's callback, made at the first restRead
	restN     int                   // what restFn read
	restErrno syscall.Errno         // the error restFn met
	rearm     bool                  // the deadline is restAfter's: call arm before blocking
	arm       func()                // sets the idle deadline
}

// more reads once from src, keeping the unconsumed bytes, with room for at least n
// bytes in all (n <= readBufferSize).
func (b *sockReader) more(n int) error {
	if b.err != nil {
		return b.err
	}
	if b.buf == nil {
		b.buf = b.small[:]
	}
	unread := b.w - b.r
	switch wantBig := b.lastFull || n > len(b.small); {
	case wantBig && b.big == nil:
		b.big = readBufPool.Get().(*[readBufferSize]byte)
		copy(b.big[:], b.buf[b.r:b.w])
		b.buf = b.big[:]
	case !wantBig && b.big != nil && unread <= len(b.small):
		copy(b.small[:], b.buf[b.r:b.w])
		b.releaseBig()
	case b.r > 0:
		copy(b.buf, b.buf[b.r:b.w])
	}
	b.r, b.w = 0, unread
	if b.rearm {
		b.rearm = false
		b.arm()
	}
	m, err := b.src.Read(b.buf[b.w:])
	b.w += m
	b.lastFull = b.w == len(b.buf)
	if err != nil {
		b.err = err
		if m == 0 {
			return err
		}
	}
	return nil
}

// releaseBig gives the borrowed buffer back; buf must not point into it any more.
func (b *sockReader) releaseBig() {
	readBufPool.Put(b.big)
	b.big = nil
	b.buf = b.small[:]
}

// release gives back what the reader borrowed, once it reads no more.
func (b *sockReader) release() {
	if b.big != nil {
		b.r, b.w = 0, 0
		b.releaseBig()
	}
}

// next consumes the next n bytes (n <= readBufferSize) and returns them; they stay
// valid until the next read. A stream ending on a frame boundary (at) is io.EOF,
// anywhere else io.ErrUnexpectedEOF.
func (b *sockReader) next(n int, at bool) ([]byte, error) {
	for b.w-b.r < n {
		if err := b.more(n); err != nil {
			if !at || b.w > b.r {
				return nil, noEOF(err)
			}
			return nil, err
		}
	}
	p := b.buf[b.r : b.r+n]
	b.r += n
	return p, nil
}

// Read reads from the buffer, or for a large p with nothing buffered straight from src.
func (b *sockReader) Read(p []byte) (int, error) {
	if b.r == b.w {
		if b.err != nil {
			return 0, b.err
		}
		if len(p) >= readBufferSize {
			n, err := b.src.Read(p)
			b.lastFull = n == len(p)
			return n, err
		}
		if err := b.more(0); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}
