package hub

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"
)

// lastKey numbers connections; Conn.Key values start at 1 so that 0 can mean "nobody".
var lastKey atomic.Uint64

// Conn is one client connection. All methods are safe for concurrent use.
//
// A WebSocket Conn has exactly one reader, a goroutine of its own (see run), and at
// most one writer at a time: everything sent to the client goes through its writer (see
// writer), whose role passes from the goroutine that sends a reply or push (which
// writes it at once, without blocking) to the shared flushers for broadcasts, and to a
// writer goroutine only while the socket is full or closing. An idle connection
// therefore has one goroutine, its reader, and no buffers but small ones.
// gorilla/websocket is used for the handshake only (see wsread.go).
//
// A LongPoll Conn (lp not nil) has no socket: its queue is emptied by the client's
// polls, and its frames arrive in POST requests (see longpoll.go).
type Conn struct {
	// w is the outbound queue, the writer role and the close request. Its lock, w.mu,
	// also orders the reader's idle deadline before a close's (armIdleDeadline). It
	// comes first, so that its fields fall on cache lines as laid out in writer.
	w writer

	hub     *Hub
	nc      net.Conn  // the socket, whose write side is w's; nil for LongPoll
	lp      *longPoll // LongPoll session state; nil for a WebSocket
	key     uint64
	id      string
	state   any
	format  Format
	remote  string
	session Session // set by run before the first frame is read

	// userBroadcasts: the client is realtime-js, whose binary messages are kind 4
	// (see userbroadcast.go). Set before the connection runs.
	userBroadcasts bool

	rd     frameReader // reader only
	bucket tokenBucket // inbound rate limit; reader only (LongPoll: under lp.handleMu)

	// Parking (see park): the reader's state, its idle timer, and its id in hub.park
	// (under hub.park.mu).
	parkState atomic.Uint32
	parkTimer *time.Timer
	parkID    uint64
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
		hub:    h,
		nc:     nc,
		key:    key,
		id:     id,
		state:  state,
		format: f,
		remote: remote,
	}
	c.w.init(nc, &h.wg, h.cfg.MaxQueueBytes)
	c.rd = frameReader{limit: h.cfg.MaxFrameSize, onPing: c.onPing}
	c.rd.in.src = src
	if src == nil && nc != nil {
		c.rd.in.src = nc
		c.rd.in.arm = c.armIdleDeadline
		if canRestRead && c.w.raw != nil { // a reader that can rest can park
			c.w.finished = c.unpark // a parked reader must see the close
		}
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
	c.hub.count.bytesOut.Add(uint64(len(wf.buf)))
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
	c.hub.count.bytesOut.Add(uint64(len(wf.buf)))
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
func (c *Conn) Cork() { c.w.cork() }

// Uncork undoes one Cork. The last one writes what was queued meanwhile, from the
// calling goroutine and without blocking, unless a writer is already at work.
func (c *Conn) Uncork() { c.w.uncork(false) }

// UncorkLater undoes one Cork like Uncork, but the last one leaves the writing to the
// hub's flushers, as for a broadcast, instead of writing from the calling goroutine:
// for what a callback sends as its part of a fan-out (handle_out), so that a client
// receiving many gets them in few writes, and the callbacks spend no time in the kernel.
func (c *Conn) UncorkLater() { c.w.uncork(true) }

// enqueue queues a complete frame for the flushers, as a broadcast to thousands of
// connections must; see queueFrame.
func (c *Conn) enqueue(frame []byte) error { return c.queueFrame(frame, false) }

// queueFrame queues a complete frame on c's writer (see writer.send): with now, the
// calling goroutine writes it if nobody else is writing. A frame that does not fit
// closes the connection with ErrSlow.
func (c *Conn) queueFrame(frame []byte, now bool) error {
	if c.lp != nil && frame[0]&opcodeBits == opBinary {
		return ErrBinaryLongPoll // as a binary broadcast to a V1 client, it is not sendable
	}
	held, err := c.w.send(frame, now)
	if err == ErrSlow {
		c.slowClosed(held)
	}
	return err
}

// slowClosed follows a send that closed c as a slow consumer, holding held bytes.
func (c *Conn) slowClosed(held int) {
	c.closeRequested()
	c.hub.count.slowClosed.Add(1)
	c.logger().Warn("slow consumer closed", "reason", ErrSlow, "queued", held)
}

// closeWith starts closing the connection: its writer writes what is queued (if
// flush), then a close frame with code and text (none if code is 0), and err becomes
// the reason given to Session.Closed. Only the first call has any effect; it reports
// whether this call was it.
func (c *Conn) closeWith(code int, text string, err error, flush bool) bool {
	first := c.w.close(code, text, err, flush)
	if first {
		c.closeRequested()
	}
	return first
}

// closeRequested follows the first close request: it wakes a LongPoll session's owner
// and its polls.
func (c *Conn) closeRequested() {
	if c.lp != nil {
		close(c.lp.closeReq)
	}
}

// isClosing reports whether a close has been requested.
func (c *Conn) isClosing() bool { return c.w.isClosing() }

// closeReason returns the reason for Session.Closed.
func (c *Conn) closeReason() error { return c.w.reason() }

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
