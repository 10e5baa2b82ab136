package hub

import (
	"fmt"
	"time"
)

// Writer deadlines.
const (
	writeWait  = 10 * time.Second       // longest one burst may take to reach the kernel; slower clients are dropped
	closeWait  = 2 * time.Second        // longest the final flush and close frame may take
	abortWait  = 250 * time.Millisecond // longest a close frame alone may take (slow client: it rarely gets through)
	closeGrace = 2 * time.Second        // how long the reader then waits for the client's close reply
)

// writeLoop is the connection's only writer. Each wake-up takes everything queued since
// the last one and writes it with a single vectored write, so a burst of broadcasts
// costs one system call per client, and the shared broadcast frames are never copied.
// It returns after writing the close frame, or when a write fails.
func (c *Conn) writeLoop() {
	defer c.hub.wg.Done()
	defer close(c.writerDone)
	var spare [][]byte
	for range c.wake {
		c.mu.Lock()
		frames := c.q.take(spare)
		closing, code, text, flush := c.closing, c.closeCode, c.closeText, c.closeFlush
		if !closing {
			// Armed under c.mu, so that a close coming later overrides it (see
			// beginCloseLocked) and a burst to a stuck client does not delay the close.
			_ = c.nc.SetWriteDeadline(time.Now().Add(writeWait))
		}
		c.mu.Unlock()

		if closing {
			if !flush {
				frames = frames[:0] // only the close frame goes out
			}
			c.finish(frames, code, text, flush)
			return
		}
		err := c.writeFrames(frames)
		c.mu.Lock()
		c.q.done()
		c.mu.Unlock()
		spare = recycle(frames)
		if err != nil {
			c.fail(fmt.Errorf("%w: %w", ErrWrite, err))
			_ = c.nc.SetReadDeadline(time.Now()) // wake the reader: the socket is finished
			return
		}
	}
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
