package hub

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// lastKey numbers connections; Conn.Key values start at 1 so that 0 can mean "nobody".
var lastKey atomic.Uint64

// Conn is one client connection. All methods are safe for concurrent use.
//
// A WebSocket Conn has exactly one reader, a goroutine of its own (see run), and at
// most one writer at a time (see writer.go). Everything sent to the client goes through
// the outbound queue; whoever finds the queue unattended becomes its writer: a reply or
// push sent from a channel's goroutine (or the reader) is written by that goroutine at
// once, without blocking, a broadcast's subscribers by the shared flushers, and only a
// socket that is full or closing gets a writer goroutine of its own (writeLoop), for as
// long as it has something to write. An idle connection therefore has one goroutine,
// its reader, and no buffers but small ones. gorilla/websocket is used for the
// handshake only (see wsread.go).
//
// A LongPoll Conn (lp not nil) has no socket: its queue is emptied by the client's
// polls, and its frames arrive in POST requests (see longpoll.go).
type Conn struct {
	hub     *Hub
	nc      net.Conn        // the socket; nil for LongPoll
	raw     syscall.RawConn // nc's file descriptor, for writes that must not block; nil if nc has none
	lp      *longPoll       // LongPoll session state; nil for a WebSocket
	key     uint64
	id      string
	state   any
	format  Format
	remote  string
	session Session // set by run before the first frame is read

	// userBroadcasts: the client is realtime-js, whose binary messages are kind 4
	// (see userbroadcast.go). Set before the connection runs.
	userBroadcasts bool

	wake       chan struct{} // without raw, capacity 1: wakes a waiting poll (LongPoll) or the resident writer
	writerDone chan struct{} // closed once the close frame is written (or abandoned)
	rd         frameReader   // reader only
	bucket     tokenBucket   // inbound rate limit; reader only (LongPoll: under lp.handleMu)

	// Owned by the current writer (see writing).
	pending [][]byte    // frames taken from the queue that a write without blocking left over
	cut     bool        // pending's first frame is the rest of one partly written
	spare   [][]byte    // an emptied frame list, for the queue's next burst
	bufs    net.Buffers // vectored-write state

	mu sync.Mutex // guards the fields below
	q  outQueue
	// writing is set while a goroutine is the connection's writer (writeLoop, or a
	// sender writing inline); only the writer touches the socket's write side.
	writing bool
	corked  int // Cork calls not yet undone: frames queued meanwhile wait for Uncork
	// closing is set once, by the first close request; later requests change nothing.
	closing    bool
	closeCode  int    // close frame code to send; 0 sends none (the socket is gone)
	closeText  string // close frame reason
	closeErr   error  // reason handed to Session.Closed
	closeFlush bool   // write what is queued before the close frame
}

// CloseError is the reason passed to Session.Closed for a connection closed with a close
// code: by the client's close frame (it then matches ErrPeerClosed), or by Conn.Close
// (it then matches ErrClosed).
type CloseError struct {
	Code int    // WebSocket close code
	Text string // close reason text
	Peer bool   // the client sent the close frame
}

func (e *CloseError) Error() string {
	who := "server"
	if e.Peer {
		who = "peer"
	}
	return fmt.Sprintf("hub: closed by %s: %d %s", who, e.Code, e.Text)
}

// Is matches ErrPeerClosed for a client's close and ErrClosed for a server's.
func (e *CloseError) Is(target error) bool {
	if e.Peer {
		return target == ErrPeerClosed
	}
	return target == ErrClosed
}

// newConn wraps an upgraded WebSocket, whose frames the Conn reads from src (nil: from
// nc), or, with nc nil, a LongPoll session. The Conn does nothing until run (or
// runLongPoll) is called.
func newConn(h *Hub, nc net.Conn, src io.Reader, f Format, id string, state any, remote string) *Conn {
	key := lastKey.Add(1)
	c := &Conn{
		hub:        h,
		nc:         nc,
		key:        key,
		id:         id,
		state:      state,
		format:     f,
		remote:     remote,
		writerDone: make(chan struct{}),
	}
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	if c.raw == nil {
		c.wake = make(chan struct{}, 1) // LongPoll, or a socket written to by a resident writer
	}
	c.q.limit = h.cfg.MaxQueueBytes
	c.rd = frameReader{limit: h.cfg.MaxFrameSize, onPing: c.onPing}
	c.rd.in.src = src
	if src == nil && nc != nil {
		c.rd.in.src = nc
	}
	return c
}

// logger returns a logger tagged with the connection. It is built on demand: a
// connection logs rarely, and 10,000 idle connections need not hold 10,000 loggers.
func (c *Conn) logger() *slog.Logger {
	return c.hub.log.With("conn", c.key, "remote", c.remote)
}

// ID returns the socket id chosen by Handler.Connect ("" for none).
func (c *Conn) ID() string { return c.id }

// State returns the value Handler.Connect gave for this connection.
func (c *Conn) State() any { return c.state }

// Format returns the wire format the client chose with ?vsn=.
func (c *Conn) Format() Format { return c.format }

// Key returns a number unique to this connection within the process, never 0.
func (c *Conn) Key() uint64 { return c.key }

// RemoteAddr returns the client's network address as the HTTP server saw it.
func (c *Conn) RemoteAddr() string { return c.remote }

// Send encodes m in c's format and queues it. It never blocks: when nobody is writing
// to the socket, the calling goroutine writes the frame itself, as far as the socket
// takes it at once. If the queue would exceed Config.MaxQueueBytes the connection is
// closed with ErrSlow and ErrSlow is returned. A binary message cannot go to a V1
// connection: Send returns ErrBinaryV1 and the connection stays open.
func (c *Conn) Send(m *Message) error {
	wf, err := c.encodeFor(m)
	if err != nil {
		c.logger().Debug("message not sendable", "topic", m.Topic, "event", m.Event, "reason", err)
		return err
	}
	c.hub.count.sent.Add(1)
	return c.queueFrame(wf.buf, true)
}

// Reply queues [joinRef, ref, topic, "phx_reply", {"status":status,"response":response}],
// or a V2 binary reply frame (kind 1) when binary. A nil response means {}. Errors are
// those of Send.
func (c *Conn) Reply(joinRef, ref, topic, status string, response []byte, binary bool) error {
	wf, err := encodeReply(c.format, joinRef, ref, topic, status, response, binary)
	if err != nil {
		c.logger().Debug("reply not sendable", "topic", topic, "reason", err)
		return err
	}
	c.hub.count.sent.Add(1)
	return c.queueFrame(wf.buf, true)
}

// Close closes the connection with a WebSocket close code and reason text, after writing
// what is already queued (bounded by a short write deadline). Session.Closed then gets a
// *CloseError. Close is idempotent: only the first close of a connection counts.
func (c *Conn) Close(code int, reason string) {
	c.closeWith(code, reason, &CloseError{Code: code, Text: reason}, true)
}

// Cork holds back the writing of what is queued on c until the matching Uncork, so that
// several messages sent together (a callback's reply and pushes, a join's reply and
// what follows it) reach the socket in one system call, and none is written while the
// caller holds a lock. Calls nest. A close is not held back.
func (c *Conn) Cork() {
	c.mu.Lock()
	c.corked++
	c.mu.Unlock()
}

// Uncork undoes one Cork. The last one writes what was queued meanwhile, from the
// calling goroutine and without blocking, unless a writer is already at work.
func (c *Conn) Uncork() { c.uncork(false) }

// UncorkLater undoes one Cork like Uncork, but the last one leaves the writing to the
// hub's flushers, as for a broadcast, instead of writing from the calling goroutine:
// for what a callback sends as its part of a fan-out (handle_out), so that a client
// receiving many gets them in few writes, and the callbacks spend no time in the kernel.
func (c *Conn) UncorkLater() { c.uncork(true) }

func (c *Conn) uncork(later bool) {
	c.mu.Lock()
	c.corked--
	if c.corked > 0 || c.writing || c.q.queued == 0 || c.closing || c.lp != nil {
		resident := c.corked == 0 && c.writing && c.raw == nil
		c.mu.Unlock()
		if resident {
			c.wakeWriter()
		}
		return
	}
	c.writing = true
	c.mu.Unlock()
	switch {
	case c.raw == nil:
		c.startWriter()
	case later:
		scheduleFlush(c)
	default:
		c.writeSome()
	}
}

// enqueue queues a complete frame for the flushers, as a broadcast to thousands of
// connections must; see queueFrame.
func (c *Conn) enqueue(frame []byte) error { return c.queueFrame(frame, false) }

// queueFrame queues a complete frame, closing the connection with ErrSlow if it does
// not fit. If nobody is writing to the socket, the caller becomes the writer: with
// inline it writes at once, without blocking, as much as the socket takes (see
// writeSome); otherwise it hands the connection to the flushers.
func (c *Conn) queueFrame(frame []byte, inline bool) error {
	if c.lp != nil && frame[0]&opcodeBits == opBinary {
		return ErrBinaryLongPoll // as a binary broadcast to a V1 client, it is not sendable
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	if !c.q.push(frame) {
		queued := c.q.size()
		c.beginCloseLocked(ClosePolicy, "slow consumer", ErrSlow, false)
		c.mu.Unlock()
		c.hub.count.slowClosed.Add(1)
		c.logger().Warn("slow consumer closed", "reason", ErrSlow, "queued", queued)
		return ErrSlow
	}
	if c.lp != nil {
		c.mu.Unlock()
		c.wakeWriter()
		return nil
	}
	if c.writing || c.corked > 0 {
		resident := c.corked == 0 && c.raw == nil
		c.mu.Unlock()
		if resident {
			c.wakeWriter()
		}
		return nil
	}
	c.writing = true
	c.mu.Unlock()
	switch {
	case c.raw == nil:
		c.startWriter() // no way to write without blocking (a pipe): a resident writer
	case inline:
		c.writeSome()
	default:
		scheduleFlush(c)
	}
	return nil
}

// wakeWriter wakes a LongPoll session's waiting poll, or the resident writer of a
// socket without a file descriptor. The buffered channel coalesces a burst of wake-ups
// into one: the poll or writer then takes everything queued at once.
func (c *Conn) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// closeWith starts closing the connection: a writer writes what is queued (if flush),
// then a close frame with code and text (none if code is 0), and err becomes the reason
// given to Session.Closed. Only the first call has any effect; it reports whether this
// call was it.
func (c *Conn) closeWith(code int, text string, err error, flush bool) bool {
	c.mu.Lock()
	first := c.beginCloseLocked(code, text, err, flush)
	c.mu.Unlock()
	return first
}

// beginCloseLocked records the first close request and makes sure a writer will write
// the close frame: the current one, or a writer goroutine started for it. c.mu must be
// held.
//
// It also bounds a write the writer may be blocked in (a slow client's full socket) to
// closeWait, flushing or not, so that the frame on the wire may still be finished and
// the close frame follow it: a client that stalled and reads again then learns why it
// was closed. Doing this under c.mu orders it after the
// deadline the writer arms for a burst (also under c.mu), so it is never overridden.
func (c *Conn) beginCloseLocked(code int, text string, err error, flush bool) bool {
	if c.closing {
		return false
	}
	c.closing, c.closeCode, c.closeText, c.closeErr, c.closeFlush = true, code, text, err, flush
	if !flush {
		c.q.drop()
	}
	if c.nc != nil {
		_ = c.nc.SetWriteDeadline(time.Now().Add(closeWait))
		if !c.writing {
			c.writing = true
			c.startWriter()
		} else if c.raw == nil {
			c.wakeWriter()
		}
	}
	if c.lp != nil {
		close(c.lp.closeReq) // wakes the session's owner and its polls
	}
	return true
}

// isClosing reports whether a close has been requested.
func (c *Conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// closeReason returns the reason for Session.Closed.
func (c *Conn) closeReason() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeErr == nil {
		return ErrClosed
	}
	return c.closeErr
}

// fail closes the connection after an I/O error, without a close frame: the socket is
// already unusable.
func (c *Conn) fail(reason error) {
	c.closeWith(0, "", reason, false)
}

// errorIsTimeout reports whether err is a deadline expiring.
func errorIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
