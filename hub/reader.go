package hub

import (
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/gorilla/websocket"
)

// Reader buffer sizes.
const (
	initialReadBuffer = 512      // first allocation of a connection's read buffer
	maxKeptReadBuffer = 64 << 10 // largest read buffer a connection keeps between frames
)

// run serves the connection on the calling goroutine (its reader) until it is closed,
// then cleans up and reports to the Session. The caller holds one count of Hub.wg.
func (c *Conn) run() {
	c.ws.SetPingHandler(c.onPing)
	c.ws.SetCloseHandler(func(int, string) error { return nil }) // the writer answers closes
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
	c.session.Closed(c.closeReason())
}

// readLoop reads frames until the socket fails or the client's close frame arrives. Once
// the connection is closing it keeps reading, discarding frames, so that the client's
// close reply is seen before the socket is closed.
func (c *Conn) readLoop() {
	for {
		c.armIdleDeadline()
		typ, r, err := c.ws.NextReader()
		if err != nil {
			c.readFailed(err)
			return
		}
		if c.isClosing() {
			continue // NextReader discards the unread message
		}
		data, err := c.readMessage(r)
		if errors.Is(err, ErrTooBig) {
			c.reject(CloseTooBig, err)
			continue
		}
		if err != nil {
			c.readFailed(err)
			return
		}
		m, err := Decode(data, c.format, typ == websocket.BinaryMessage, c.hub.cfg.MaxDepth)
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

// armIdleDeadline gives the client IdleTimeout to send its next frame. A closing
// connection keeps the shorter deadline the writer set.
func (c *Conn) armIdleDeadline() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.hub.cfg.IdleTimeout))
	}
}

// readMessage reads one message into the connection's scratch buffer, failing with
// ErrTooBig as soon as it exceeds MaxFrameSize. The result is valid until the next call.
func (c *Conn) readMessage(r io.Reader) ([]byte, error) {
	limit := c.hub.cfg.MaxFrameSize
	buf := c.rbuf[:0]
	if buf == nil {
		buf = make([]byte, 0, initialReadBuffer)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, fmt.Errorf("%w: over %d bytes", ErrTooBig, limit)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if cap(buf) <= maxKeptReadBuffer {
		c.rbuf = buf
	}
	return buf, nil
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
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		// Echo the client's close code, as RFC 6455 asks; no flush, it reads no more.
		c.closeWith(ce.Code, "", &CloseError{Code: ce.Code, Text: ce.Text, Peer: true}, false)
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
// write. (Phoenix clients use heartbeat messages instead; other clients may ping.)
func (c *Conn) onPing(data string) error {
	_ = c.enqueue(pongFrame(data).buf)
	return nil
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
