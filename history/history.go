// Package history keeps the most recent broadcasts of each topic in memory, each at a
// position "<epoch>:<n>", so that a client that was away can ask for what it missed.
//
// n counts up from 1 in one life of a topic's history, its epoch. An epoch is unique to
// the process and the topic: a restart, or a topic dropped after it was idle past its
// TTL, starts a new one, and a position of another epoch is never taken for one of this.
//
// # Locks
//
//	Memory.mu   the topic map and the last sweep
//	stream.mu   one topic's counter and entries; Append holds it while the broadcast is delivered
//
// Lock order: Memory.mu before stream.mu (the sweep); Append and Read take them one
// after the other, never together.
package history

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxN is the largest n a position may name: larger ones are malformed (a JavaScript
// number is exact up to 2^53).
const MaxN = 1 << 53

// sweepEvery is how often, at most, Append and Read look for idle topics to drop.
const sweepEvery = time.Second

// Limits are a topic's history settings, from its script.
type Limits struct {
	Size int           // entries kept (at least 1)
	TTL  time.Duration // how long an entry is kept, and an idle topic's history
}

// Position is a place in a topic's history: after its n-th broadcast of epoch Epoch.
type Position struct {
	Epoch string
	N     uint64
}

// String is the wire form, "<epoch>:<n>".
func (p Position) String() string {
	return p.Epoch + ":" + strconv.FormatUint(p.N, 10)
}

// ParsePosition reads "<epoch>:<n>"; ok is false for anything else, a negative n, or
// an n over MaxN.
func ParsePosition(s string) (p Position, ok bool) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return Position{}, false
	}
	n, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil || n > MaxN {
		return Position{}, false
	}
	return Position{Epoch: s[:i], N: n}, true
}

// Entry is one stored value at its position.
type Entry[T any] struct {
	Position Position
	Value    T
}

// Memory is an in-memory history of values T (the engine stores its broadcasts),
// bounded by Size entries per topic and by TTL. Safe for concurrent use.
type Memory[T any] struct {
	prefix string           // random per Memory: this process's part of every epoch
	now    func() time.Time // the clock

	mu        sync.RWMutex
	topics    map[string]*stream[T]
	made      uint64 // streams created, the other part of an epoch
	lastSweep time.Time
}

// stream is one topic's history: a ring of its last entries.
type stream[T any] struct {
	mu      sync.Mutex
	epoch   string
	n       uint64 // the last position given
	ring    []entry[T]
	head    int // index of the oldest entry
	count   int
	touched time.Time // the last append or read
	ttl     time.Duration
	dead    bool // swept: a new stream takes the topic
}

type entry[T any] struct {
	n  uint64
	at time.Time
	v  T
}

// NewMemory returns an empty history whose epochs are new to this process. now is
// the clock (nil: time.Now).
func NewMemory[T any](now func() time.Time) *Memory[T] {
	if now == nil {
		now = time.Now
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &Memory[T]{prefix: hex.EncodeToString(b[:]), now: now, topics: make(map[string]*stream[T])}
}

// Append gives topic its next position and runs publish with it under the topic's
// lock, so that the broadcasts of a topic are delivered in the order of their
// positions; the value publish returns is stored at that position.
func (m *Memory[T]) Append(topic string, lim Limits, publish func(Position) T) {
	now := m.now()
	s := m.lockStream(topic, lim, now)
	defer s.mu.Unlock()
	s.n++
	pos := Position{Epoch: s.epoch, N: s.n}
	v := publish(pos)
	s.push(entry[T]{n: s.n, at: now, v: v}, lim.Size)
}

// Current returns topic's current position: the last broadcast's, or n 0.
func (m *Memory[T]) Current(topic string, lim Limits) Position {
	now := m.now()
	s := m.lockStream(topic, lim, now)
	defer s.mu.Unlock()
	return Position{Epoch: s.epoch, N: s.n}
}

// Read returns the entries after since, in order, at most limit of them (limit <= 0:
// all), and the current position. recovered is false, with no entries, when since is
// malformed, of another epoch, ahead of the current position, or older than what is
// kept. An empty since reads the latest limit entries, and is recovered.
func (m *Memory[T]) Read(topic string, lim Limits, since string, limit int) (entries []Entry[T], current Position, recovered bool) {
	now := m.now()
	s := m.lockStream(topic, lim, now)
	defer s.mu.Unlock()
	current = Position{Epoch: s.epoch, N: s.n}
	oldest := s.n - uint64(s.count) // entries kept are oldest+1 .. n
	from := oldest
	if since != "" {
		p, ok := ParsePosition(since)
		if !ok || p.Epoch != s.epoch || p.N > s.n || p.N < oldest {
			return nil, current, false
		}
		from = p.N
	} else if limit > 0 && s.n-from > uint64(limit) {
		from = s.n - uint64(limit)
	}
	k := int(s.n - from)
	if limit > 0 && k > limit {
		k = limit
	}
	entries = make([]Entry[T], 0, k)
	skip := int(from - oldest)
	for i := skip; i < skip+k; i++ {
		e := s.ring[(s.head+i)%len(s.ring)]
		entries = append(entries, Entry[T]{Position: Position{Epoch: s.epoch, N: e.n}, Value: e.v})
	}
	return entries, current, true
}

// lockStream returns topic's stream, created if need be, locked, with its expired
// entries dropped.
func (m *Memory[T]) lockStream(topic string, lim Limits, now time.Time) *stream[T] {
	m.maybeSweep(now)
	for {
		m.mu.RLock()
		s := m.topics[topic]
		m.mu.RUnlock()
		if s == nil {
			m.mu.Lock()
			if s = m.topics[topic]; s == nil {
				m.made++
				s = &stream[T]{epoch: m.prefix + strconv.FormatUint(m.made, 36)}
				m.topics[topic] = s
			}
			m.mu.Unlock()
		}
		s.mu.Lock()
		if s.dead {
			s.mu.Unlock()
			continue
		}
		s.touched, s.ttl = now, lim.TTL
		s.expire(now)
		return s
	}
}

// maybeSweep drops the topics idle past their TTL, at most once per sweepEvery.
func (m *Memory[T]) maybeSweep(now time.Time) {
	m.mu.RLock()
	due := now.Sub(m.lastSweep) >= sweepEvery
	m.mu.RUnlock()
	if !due {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.lastSweep) < sweepEvery {
		return
	}
	m.lastSweep = now
	for topic, s := range m.topics {
		s.mu.Lock()
		if now.Sub(s.touched) > s.ttl {
			s.dead = true
			delete(m.topics, topic)
		}
		s.mu.Unlock()
	}
}

// Forget drops topic's history: its next broadcast starts a new epoch, so a position
// read before is not recovered from it. For a node that stopped hearing the topic's
// broadcasts from other nodes, whose history would otherwise miss them unnoticed.
func (m *Memory[T]) Forget(topic string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.topics[topic]; s != nil {
		s.mu.Lock()
		s.dead = true
		s.mu.Unlock()
		delete(m.topics, topic)
	}
}

// Topics reports how many topics have a history.
func (m *Memory[T]) Topics() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.topics)
}

// push adds e, dropping the oldest entry past size. The ring is rebuilt when the
// size changed (a reload of the script).
func (s *stream[T]) push(e entry[T], size int) {
	size = max(size, 1)
	if len(s.ring) != size {
		ring := make([]entry[T], size)
		keep := min(s.count, size)
		for i := range keep {
			ring[i] = s.ring[(s.head+s.count-keep+i)%len(s.ring)]
		}
		s.ring, s.head, s.count = ring, 0, keep
	}
	if s.count == size {
		s.ring[s.head] = e
		s.head = (s.head + 1) % size
		return
	}
	s.ring[(s.head+s.count)%size] = e
	s.count++
}

// expire drops the entries older than the TTL.
func (s *stream[T]) expire(now time.Time) {
	var zero entry[T]
	for s.count > 0 && now.Sub(s.ring[s.head].at) > s.ttl {
		s.ring[s.head] = zero
		s.head = (s.head + 1) % len(s.ring)
		s.count--
	}
}
