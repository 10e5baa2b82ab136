package hub

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// lastKey numbers connections; Conn.Key values start at 1 so that 0 can mean "nobody".
var lastKey atomic.Uint64

// Conn is one client connection. All methods are safe for concurrent use.
//
// A WebSocket Conn has exactly one reader (the net/http goroutine that accepted it, see
// run) and one writer goroutine (writeLoop). Everything sent to the client goes through
// the outbound queue to the writer, which writes whole WebSocket frames straight to the
// socket; gorilla/websocket is used for the handshake only (see wsread.go).
//
// A LongPoll Conn (lp not nil) has no socket: its queue is emptied by the client's
// polls, and its frames arrive in POST requests (see longpoll.go).
type Conn struct {
	hub     *Hub
	nc      net.Conn  // the socket, the writer's; nil for LongPoll
	lp      *longPoll // LongPoll session state; nil for a WebSocket
	key     uint64
	id      string
	state   any
	format  Format
	remote  string
	session Session // set by run before the first frame is read

	wake       chan struct{} // capacity 1: a send on it wakes the writer for a whole burst
	writerDone chan struct{} // closed when writeLoop has returned
	rd         frameReader   // reader only
	bucket     tokenBucket   // inbound rate limit; reader only (LongPoll: under lp.handleMu)
	bufs       net.Buffers   // writer's vectored-write state; writer only

	mu sync.Mutex // guards the fields below
	q  outQueue
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

// newConn wraps an upgraded WebSocket, whose frames the Conn reads from br (nil only in
// tests that drive the writer alone), or, with nc nil, a LongPoll session. The Conn
// does nothing until run (or runLongPoll) is called.
func newConn(h *Hub, nc net.Conn, br *bufio.Reader, f Format, id string, state any, remote string) *Conn {
	key := lastKey.Add(1)
	c := &Conn{
		hub:        h,
		nc:         nc,
		key:        key,
		id:         id,
		state:      state,
		format:     f,
		remote:     remote,
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
	}
	c.q.limit = h.cfg.MaxQueueBytes
	c.rd = frameReader{br: br, limit: h.cfg.MaxFrameSize, onPing: c.onPing}
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

// Send encodes m in c's format and queues it. It never blocks. If the queue would exceed
// Config.MaxQueueBytes the connection is closed with ErrSlow and ErrSlow is returned. A
// binary message cannot go to a V1 connection: Send returns ErrBinaryV1 and the
// connection stays open.
func (c *Conn) Send(m *Message) error {
	wf, err := encodeMessage(m, c.format)
	if err != nil {
		c.logger().Debug("message not sendable", "topic", m.Topic, "event", m.Event, "reason", err)
		return err
	}
	return c.enqueue(wf.buf)
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
	return c.enqueue(wf.buf)
}

// Close closes the connection with a WebSocket close code and reason text, after writing
// what is already queued (bounded by a short write deadline). Session.Closed then gets a
// *CloseError. Close is idempotent: only the first close of a connection counts.
func (c *Conn) Close(code int, reason string) {
	c.closeWith(code, reason, &CloseError{Code: code, Text: reason}, true)
}

// enqueue queues a complete frame for the writer, closing the connection with ErrSlow
// if it does not fit.
func (c *Conn) enqueue(frame []byte) error {
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
		c.wakeWriter()
		c.logger().Warn("slow consumer closed", "reason", ErrSlow, "queued", queued)
		return ErrSlow
	}
	c.mu.Unlock()
	c.wakeWriter()
	return nil
}

// wakeWriter tells the writer there is work. The buffered channel coalesces a burst of
// wake-ups into one: the writer then takes everything queued at once.
func (c *Conn) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// closeWith starts closing the connection: the writer writes what is queued (if flush),
// then a close frame with code and text (none if code is 0), and err becomes the reason
// given to Session.Closed. Only the first call has any effect; it reports whether this
// call was it.
func (c *Conn) closeWith(code int, text string, err error, flush bool) bool {
	c.mu.Lock()
	first := c.beginCloseLocked(code, text, err, flush)
	c.mu.Unlock()
	if first {
		c.wakeWriter()
	}
	return first
}

// beginCloseLocked records the first close request. c.mu must be held.
//
// It also bounds a write the writer may be blocked in (a slow client's full socket):
// a flushing close gives it closeWait, any other cuts it short at once. Doing this under
// c.mu orders it after the deadline the writer arms for a burst (also under c.mu), so
// it is never overridden.
func (c *Conn) beginCloseLocked(code int, text string, err error, flush bool) bool {
	if c.closing {
		return false
	}
	c.closing, c.closeCode, c.closeText, c.closeErr, c.closeFlush = true, code, text, err, flush
	deadline := time.Now()
	if flush {
		deadline = deadline.Add(closeWait)
	} else {
		c.q.drop()
	}
	if c.nc != nil {
		_ = c.nc.SetWriteDeadline(deadline)
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
