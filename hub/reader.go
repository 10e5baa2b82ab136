package hub

import (
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"time"
)

// Reader buffer sizes.
const (
	readBufferSize    = 4096     // a connection's buffered reader, when net/http's cannot be reused
	initialReadBuffer = 512      // first allocation of a connection's message buffer
	maxKeptReadBuffer = 64 << 10 // largest message buffer a connection keeps between messages
)

// run serves the connection on the calling goroutine (its reader) until it is closed,
// then cleans up and reports to the Session. The caller holds one count of Hub.wg.
func (c *Conn) run() {
	c.hub.wg.Add(1)
	go c.writeLoop()

	c.session = c.hub.cfg.Handler.Open(c)
	if c.session == nil {
		c.session = nopSession{}
	}
	c.readLoop()

	<-c.writerDone
	_ = c.nc.Close()
	c.hub.removeConn(c)
	c.ended()
}

// ended counts the connection's close reason and reports it to the Session.
func (c *Conn) ended() {
	reason := c.closeReason()
	c.hub.count.closed[closeKindOf(reason)].Add(1)
	c.session.Closed(reason)
}

// readLoop reads messages until the socket fails or the client's close frame arrives.
// Once the connection is closing it keeps reading, discarding messages, so that the
// client's close reply is seen before the socket is closed; after a frame that cannot
// be parsed past, it discards raw bytes instead (see drain).
func (c *Conn) readLoop() {
	for {
		c.armIdleDeadline()
		binary, data, err := c.rd.next()
		if err != nil {
			var we *wireError
			if !errors.As(err, &we) {
				c.readFailed(err)
				return
			}
			c.reject(we.code, we)
			if we.fatal {
				c.drain()
				return
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
		if m.isHeartbeat() {
			_ = c.Reply("", m.Ref, phoenixTopic, "ok", nil, false)
			continue
		}
		c.handle(m)
	}
}

// drain ends reading after a frame the stream cannot be parsed past. Once the writer
// has sent the close frame, it half-closes the socket, so the client sees the end of
// the stream at once, and discards whatever the client still sends until it closes its
// side or closeGrace passes: closing a socket with unread data would reset it, and the
// reset could destroy the close frame before the client reads it.
func (c *Conn) drain() {
	<-c.writerDone
	if hc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = hc.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, c.rd.br)
}

// armIdleDeadline gives the client IdleTimeout to send its next frame. A closing
// connection keeps the shorter deadline the writer set.
func (c *Conn) armIdleDeadline() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.hub.cfg.IdleTimeout))
	}
}

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
	_ = c.enqueue(pongFrame(data).buf)
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
