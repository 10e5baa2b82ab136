package hub

import "sync/atomic"

// Stats is a snapshot of a Hub's gauges and counters, for /metrics and tests. Counters
// run from New; none is kept per subscriber, so counting costs the fast lane nothing.
type Stats struct {
	Conns         int    // open connections
	Topics        int    // topics with at least one local subscriber
	Subscriptions int    // local subscriptions over all topics
	Accepted      uint64 // connections upgraded
	FramesIn      uint64 // valid client frames read, heartbeats included
	Broadcasts    uint64 // broadcasts delivered locally (Broadcast and DeliverLocal)
	BadFrames     uint64 // connections closed over a bad or oversized frame
	SlowClosed    uint64 // connections closed as slow consumers
	IdleClosed    uint64 // connections closed for sending nothing for IdleTimeout
}

// counters are the Hub's running totals; each is updated with one atomic add.
type counters struct {
	accepted   atomic.Uint64
	framesIn   atomic.Uint64
	broadcasts atomic.Uint64
	badFrames  atomic.Uint64
	slowClosed atomic.Uint64
	idleClosed atomic.Uint64
}

// Stats returns the Hub's current gauges and counters.
func (h *Hub) Stats() Stats {
	return Stats{
		Conns:         h.Conns(),
		Topics:        h.Topics(),
		Subscriptions: h.Subscriptions(),
		Accepted:      h.count.accepted.Load(),
		FramesIn:      h.count.framesIn.Load(),
		Broadcasts:    h.count.broadcasts.Load(),
		BadFrames:     h.count.badFrames.Load(),
		SlowClosed:    h.count.slowClosed.Load(),
		IdleClosed:    h.count.idleClosed.Load(),
	}
}
