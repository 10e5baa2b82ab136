package hub

import (
	"bytes"
	"errors"
	"net"
	"time"
)

// Test-only access to internals that the public API reaches only through a socket.

// EncodeReply exposes the reply encoder to the codec tests.
func EncodeReply(f Format, joinRef, ref, topic, status string, response []byte, binary bool) ([]byte, error) {
	wf, err := encodeReply(f, joinRef, ref, topic, status, response, binary)
	if err != nil {
		return nil, err
	}
	return wf.buf[wf.body:], nil
}

// NewWriterConn returns a Conn of h that writes to nc and has no reader, so benchmarks
// can fan out to thousands of subscribers without thousands of sockets. Its writers
// start as frames are queued. Close it with Conn.Close; h.Close waits for its writer.
func NewWriterConn(h *Hub, f Format, nc net.Conn) *Conn {
	return newConn(h, nc, nil, f, "", nil, "pipe")
}

// TokenBucket runs a connection's rate limiter over message arrival times (offsets from
// the first) and reports which messages it lets through.
func TokenBucket(rate float64, burst int, arrivals []time.Duration) []bool {
	var b tokenBucket
	start := monoNow()
	allowed := make([]bool, len(arrivals))
	for i, at := range arrivals {
		allowed[i] = b.allow(start+int64(at), rate, burst)
	}
	return allowed
}

// ReadFrames reads client frames from data as a connection with message limit limit
// would: past refusals that are not fatal (their close codes are in refused), until the
// first other error, which it returns with the messages read.
func ReadFrames(data []byte, limit int64) (msgs [][]byte, binary []bool, refused []int, err error) {
	r := frameReader{limit: limit, onPing: func([]byte) {}}
	r.in.src = bytes.NewReader(data)
	for {
		bin, m, err := r.next()
		var we *wireError
		if errors.As(err, &we) && !we.fatal {
			refused = append(refused, we.code)
			continue
		}
		if err != nil {
			return msgs, binary, refused, err
		}
		msgs = append(msgs, bytes.Clone(m))
		binary = append(binary, bin)
	}
}

// CloseCodeOf returns the close code a reader error is answered with, or 0 if it is not
// a refused frame.
func CloseCodeOf(err error) (code int, fatal bool) {
	var we *wireError
	if !errors.As(err, &we) {
		return 0, false
	}
	return we.code, we.fatal
}

// SetSendBuffer sets the kernel send buffer of c's socket, so that a test can make a
// client that does not read fill its queue quickly.
func SetSendBuffer(c *Conn, n int) error {
	tc, ok := c.nc.(*net.TCPConn)
	if !ok {
		return errors.New("not a TCP connection")
	}
	return tc.SetWriteBuffer(n)
}

// PollsWaiting returns how many polls of the LongPoll session c are waiting.
func PollsWaiting(c *Conn) int { return int(c.lp.polls.Load()) }

// SetRestAfter sets how long a client may be quiet before its reader moves to a fresh
// goroutine, until the test ends. Tests that call it must not run in parallel.
func SetRestAfter(tb interface{ Cleanup(func()) }, d time.Duration) {
	old := restAfter
	restAfter = d
	tb.Cleanup(func() { restAfter = old })
}

// RestMoves reports how many readers of h moved to a fresh goroutine.
func RestMoves(h *Hub) uint64 { return h.count.restMoves.Load() }

// CanRestRead reports whether readers can rest on this system (see Conn.rest).
const CanRestRead = canRestRead

// Parked reports how many of h's connections are parked (see Conn.park).
func Parked(h *Hub) int { return h.park.len() }

// Polling reports whether h's poller of parked connections runs.
func Polling(h *Hub) bool { return h.park.polling() }
