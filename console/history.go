package console

import (
	"sync"
	"time"
)

// totals are the running counters the traffic charts are made of.
type totals struct {
	Conns         int    `json:"conns"`         // open connections
	Topics        int    `json:"topics"`        // topics with a local subscriber
	Subscriptions int    `json:"subscriptions"` // local subscriptions
	Channels      int64  `json:"channels"`      // channels joined
	Joins         uint64 `json:"joins"`         // joins accepted
	In            uint64 `json:"in"`            // client frames read, heartbeats included
	Out           uint64 `json:"out"`           // frames queued to clients: broadcasts, replies, pushes
	Crashes       uint64 `json:"crashes"`       // channels ended by a script error, and joins that crashed
}

// totals reads the hub's and the engine's counters.
func (c *Console) totals() totals {
	hs, es := c.cfg.Hub.Stats(), c.cfg.Engine.Stats()
	return totals{
		Conns: hs.Conns, Topics: hs.Topics, Subscriptions: hs.Subscriptions,
		Channels: es.Channels, Joins: es.Joins,
		In: hs.FramesIn, Out: hs.Delivered + hs.Sent,
		Crashes: es.Crashes + es.JoinsCrashed,
	}
}

// sample is one point of the traffic charts: gauges, and rates per second since the
// sample before.
type sample struct {
	At      int64   `json:"t"` // unix milliseconds
	Conns   int     `json:"conns"`
	Joins   float64 `json:"joins"`
	In      float64 `json:"in"`
	Out     float64 `json:"out"`
	Crashes float64 `json:"crashes"`
}

// history is the last historyLen samples, oldest first.
type history struct {
	mu      sync.Mutex // guards the fields below
	samples []sample
	last    totals
	lastAt  time.Time
}

// add records the totals read at now.
func (h *history) add(t totals, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := sample{At: now.UnixMilli(), Conns: t.Conns}
	if !h.lastAt.IsZero() {
		dt := now.Sub(h.lastAt).Seconds()
		rate := func(cur, prev uint64) float64 {
			if dt <= 0 || cur < prev {
				return 0
			}
			return float64(cur-prev) / dt
		}
		s.Joins = rate(t.Joins, h.last.Joins)
		s.In = rate(t.In, h.last.In)
		s.Out = rate(t.Out, h.last.Out)
		s.Crashes = rate(t.Crashes, h.last.Crashes)
		if len(h.samples) == historyLen {
			copy(h.samples, h.samples[1:])
			h.samples = h.samples[:historyLen-1]
		}
		h.samples = append(h.samples, s)
	}
	h.last, h.lastAt = t, now
}

// since returns the samples taken after unix millisecond t.
func (h *history) since(t int64) []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := len(h.samples)
	for i > 0 && h.samples[i-1].At > t {
		i--
	}
	out := make([]sample, len(h.samples)-i)
	copy(out, h.samples[i:])
	return out
}
