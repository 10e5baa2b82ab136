package main

// A log-linear latency histogram: exact below 128 ns, then 64 buckets per
// power of two (under 1.6% error), lock-free to record from many goroutines
// and small enough to ship from a worker process as JSON.

import (
	"math/bits"
	"sync/atomic"
	"time"
)

const (
	// histLinear values below it have a bucket each.
	histLinear = 128
	// histSubBits is log2 of the buckets per power of two above histLinear.
	histSubBits = 6
	// histBuckets covers every non-negative int64.
	histBuckets = (64-histSubBits)<<histSubBits + histLinear
	// histShards spreads concurrent recorders over separate counters.
	histShards = 8
)

// histIndex is the bucket of v (nanoseconds, v >= 0).
func histIndex(v int64) int {
	if v < histLinear {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - histSubBits - 1
	return e<<histSubBits + int(v>>e)
}

// histUpper is the largest value that falls in bucket i.
func histUpper(i int) int64 {
	if i < histLinear {
		return int64(i)
	}
	e := i>>histSubBits - 1
	m := int64(i - e<<histSubBits)
	return (m+1)<<e - 1
}

// histogram records durations concurrently.
type histogram struct {
	shards [histShards]struct {
		counts [histBuckets]atomic.Uint64
		_      [64]byte
	}
	max atomic.Int64
}

// record adds one duration in nanoseconds; hint picks the shard (any int).
func (h *histogram) record(ns int64, hint int) {
	if ns < 0 {
		ns = 0
	}
	h.shards[uint(hint)%histShards].counts[histIndex(ns)].Add(1)
	for {
		m := h.max.Load()
		if ns <= m || h.max.CompareAndSwap(m, ns) {
			return
		}
	}
}

// snapshot merges the shards into the form workers send to the parent.
func (h *histogram) snapshot() histSnap {
	var s histSnap
	for i := 0; i < histBuckets; i++ {
		var n uint64
		for j := range h.shards {
			n += h.shards[j].counts[i].Load()
		}
		if n > 0 {
			s.Buckets = append(s.Buckets, [2]uint64{uint64(i), n})
			s.N += n
		}
	}
	s.Max = h.max.Load()
	return s
}

// histSnap is a histogram as sparse (bucket, count) pairs.
type histSnap struct {
	Buckets [][2]uint64 `json:"b,omitempty"`
	N       uint64      `json:"n"`
	Max     int64       `json:"max"`
}

// merge adds o into s.
func (s *histSnap) merge(o histSnap) {
	if o.N == 0 {
		return
	}
	m := make(map[uint64]uint64, len(s.Buckets)+len(o.Buckets))
	for _, b := range s.Buckets {
		m[b[0]] += b[1]
	}
	for _, b := range o.Buckets {
		m[b[0]] += b[1]
	}
	s.Buckets = s.Buckets[:0]
	for i := uint64(0); i < histBuckets; i++ {
		if n, ok := m[i]; ok {
			s.Buckets = append(s.Buckets, [2]uint64{i, n})
		}
	}
	s.N += o.N
	s.Max = max(s.Max, o.Max)
}

// quantile is the value at or below which a fraction q of samples fall
// (to bucket precision, never above the maximum seen).
func (s histSnap) quantile(q float64) time.Duration {
	if s.N == 0 {
		return 0
	}
	rank := uint64(q*float64(s.N) + 0.5)
	rank = min(max(rank, 1), s.N)
	var seen uint64
	for _, b := range s.Buckets {
		seen += b[1]
		if seen >= rank {
			return time.Duration(min(histUpper(int(b[0])), s.Max))
		}
	}
	return time.Duration(s.Max)
}
