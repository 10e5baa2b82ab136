package hub

import (
	"errors"
	"sync/atomic"
)

// Stats is a snapshot of a Hub's gauges and counters, for /metrics and tests. Counters
// run from New; none is kept per subscriber, so counting costs the fast lane nothing.
type Stats struct {
	Conns         int    // open connections (WebSocket and LongPoll)
	Topics        int    // topics with at least one local subscriber
	Subscriptions int    // local subscriptions over all topics
	Accepted      uint64 // WebSocket connections upgraded
	LongPolls     uint64 // LongPoll sessions opened
	FramesIn      uint64 // valid client frames read, heartbeats included
	Broadcasts    uint64 // broadcasts delivered locally (Broadcast and DeliverLocal)
	Delivered     uint64 // broadcast frames queued to subscribers by the fast lane (one add per broadcast)
	Sent          uint64 // frames queued to one client: replies, pushes, intercepted broadcasts
	BytesIn       uint64 // payload bytes of the WebSocket frames FramesIn counts
	BytesOut      uint64 // bytes of the frames Delivered and Sent count, as queued (WebSocket headers included)
	BadFrames     uint64 // connections closed over a bad, oversized or RFC 6455-breaking frame
	SlowClosed    uint64 // connections closed as slow consumers
	IdleClosed    uint64 // connections closed for sending nothing for IdleTimeout
	RateLimited   uint64 // connections closed for sending over MaxMessageRate
	PollsRefused  uint64 // LongPoll sessions refused over MaxLongPollSessions or MaxLongPollPerAddr
	// Closed counts every connection that has ended, by why it ended; it always holds
	// every key of CloseReasons(). A connection is counted once, when it is gone, so the
	// counts add up to every connection (WebSocket or LongPoll) ever closed.
	Closed map[string]uint64
}

// closeKind classifies why a connection ended, for Stats.Closed.
type closeKind int

const (
	closedPeer       closeKind = iota // the client closed, or the network dropped it
	closedIdle                        // ErrIdle
	closedSlow                        // ErrSlow
	closedRateLimit                   // ErrRateLimit
	closedBadFrame                    // ErrBadFrame: not Phoenix's shape, bad JSON or UTF-8
	closedProtocol                    // ErrProtocol: RFC 6455 broken
	closedTooBig                      // ErrTooBig
	closedDisconnect                  // ErrDisconnect
	closedShutdown                    // ErrShutdown
	closedServer                      // Conn.Close (by the engine)
	closedWrite                       // ErrWrite: the socket failed while writing
	closedInternal                    // a Session panicked, or anything else
	numCloseKinds
)

// closeKindNames are the keys of Stats.Closed.
var closeKindNames = [numCloseKinds]string{
	closedPeer:       "peer",
	closedIdle:       "idle",
	closedSlow:       "slow",
	closedRateLimit:  "rate_limit",
	closedBadFrame:   "bad_frame",
	closedProtocol:   "protocol",
	closedTooBig:     "too_big",
	closedDisconnect: "disconnect",
	closedShutdown:   "shutdown",
	closedServer:     "server",
	closedWrite:      "write_error",
	closedInternal:   "internal",
}

// CloseReasons returns the keys of Stats.Closed, in a fixed order: "peer", "idle",
// "slow", "rate_limit", "bad_frame", "protocol", "too_big", "disconnect", "shutdown",
// "server" (Conn.Close), "write_error", "internal".
func CloseReasons() []string { return closeKindNames[:] }

// closeKindOf classifies a reason given to Session.Closed.
func closeKindOf(reason error) closeKind {
	for _, k := range []struct {
		err  error
		kind closeKind
	}{
		{ErrShutdown, closedShutdown},
		{ErrDisconnect, closedDisconnect},
		{ErrIdle, closedIdle},
		{ErrSlow, closedSlow},
		{ErrRateLimit, closedRateLimit},
		{ErrTooBig, closedTooBig},
		{ErrProtocol, closedProtocol},
		{ErrBadFrame, closedBadFrame},
		{ErrWrite, closedWrite},
		{ErrPeerClosed, closedPeer},
		{ErrClosed, closedServer},
	} {
		if errors.Is(reason, k.err) {
			return k.kind
		}
	}
	return closedInternal
}

// counters are the Hub's running totals; each is updated with one atomic add.
type counters struct {
	accepted    atomic.Uint64
	longPolls   atomic.Uint64
	framesIn    atomic.Uint64
	bytesIn     atomic.Uint64 // payload bytes of the frames framesIn counts
	bytesOut    atomic.Uint64 // WebSocket frame bytes queued to clients, headers included
	broadcasts  atomic.Uint64
	delivered   atomic.Uint64
	sent        atomic.Uint64
	badFrames   atomic.Uint64
	slowClosed  atomic.Uint64
	idleClosed  atomic.Uint64
	restMoves   atomic.Uint64 // quiet readers parked or moved to a fresh goroutine (see Conn.rest)
	rateLimited atomic.Uint64
	lpRefused   atomic.Uint64
	closed      [numCloseKinds]atomic.Uint64
}

// Stats returns the Hub's current gauges and counters.
func (h *Hub) Stats() Stats {
	closed := make(map[string]uint64, numCloseKinds)
	for k, name := range closeKindNames {
		closed[name] = h.count.closed[k].Load()
	}
	return Stats{
		Conns:         h.Conns(),
		Topics:        h.Topics(),
		Subscriptions: h.Subscriptions(),
		Accepted:      h.count.accepted.Load(),
		LongPolls:     h.count.longPolls.Load(),
		FramesIn:      h.count.framesIn.Load(),
		Broadcasts:    h.count.broadcasts.Load(),
		Delivered:     h.count.delivered.Load(),
		Sent:          h.count.sent.Load(),
		BytesIn:       h.count.bytesIn.Load(),
		BytesOut:      h.count.bytesOut.Load(),
		BadFrames:     h.count.badFrames.Load(),
		SlowClosed:    h.count.slowClosed.Load(),
		IdleClosed:    h.count.idleClosed.Load(),
		RateLimited:   h.count.rateLimited.Load(),
		PollsRefused:  h.count.lpRefused.Load(),
		Closed:        closed,
	}
}
