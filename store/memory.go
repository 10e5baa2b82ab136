package store

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"sync"
	"time"
)

// ErrNotInteger is Incr on a key whose value is not an integer, or a sum out of range.
// Every store returns it for those, so that scripts see one error whatever the store.
var ErrNotInteger = errors.New("store: value is not an integer or is out of range")

// sweepBatch is how many keys with a ttl a write that sets one looks at, dropping those
// expired: keys nobody reads again do not pile up, at a bounded cost per write.
const sweepBatch = 8

// Memory keeps the shared state in this process: the default, without -pubsub redis.
// A key with a ttl is gone once its time is up: reads see it absent at once, and its
// memory is freed when it is next touched or swept by a later write with a ttl.
type Memory struct {
	now func() time.Time // the clock that ttls run on

	mu      sync.Mutex           // guards vals and expires
	vals    map[string][]byte    // JSON text by key
	expires map[string]time.Time // when each key with a ttl expires; most keys have none
}

// NewMemory returns an empty Memory store on the wall clock.
func NewMemory() *Memory { return NewMemoryClock(time.Now) }

// NewMemoryClock returns an empty Memory store whose ttls run on now: a test's clock.
func NewMemoryClock(now func() time.Time) *Memory {
	return &Memory{now: now, vals: make(map[string][]byte), expires: make(map[string]time.Time)}
}

// Get returns a copy of key's value, or ok=false when it has none.
func (s *Memory) Get(key string) (value []byte, ok bool, err error) {
	s.mu.Lock()
	v, ok := s.getLocked(key)
	s.mu.Unlock()
	return bytes.Clone(v), ok, nil
}

// Set stores a copy of value (JSON text) under key, with no expiry.
func (s *Memory) Set(key string, value []byte) error {
	v := bytes.Clone(value)
	s.mu.Lock()
	s.setLocked(key, v, 0)
	s.mu.Unlock()
	return nil
}

// SetTTL stores a copy of value under key, gone ttl (> 0) from now unless set again.
func (s *Memory) SetTTL(key string, value []byte, ttl time.Duration) error {
	v := bytes.Clone(value)
	s.mu.Lock()
	s.setLocked(key, v, ttl)
	s.mu.Unlock()
	return nil
}

// CAS sets key to value (nil: deletes it) if its value is old byte for byte (nil: if
// it has none), with expiry ttl (0: none), and reports whether it did.
func (s *Memory) CAS(key string, old, value []byte, ttl time.Duration) (bool, error) {
	v := bytes.Clone(value)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.getLocked(key)
	if ok != (old != nil) || !bytes.Equal(cur, old) {
		return false, nil
	}
	if value == nil {
		s.delLocked(key)
	} else {
		s.setLocked(key, v, ttl)
	}
	return true, nil
}

// TTL returns the time key has left: ok=false when it is absent, ttl < 0 when it has no
// expiry.
func (s *Memory) TTL(key string) (ttl time.Duration, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.getLocked(key); !ok {
		return 0, false, nil
	}
	at, has := s.expires[key]
	if !has {
		return -1, true, nil
	}
	return at.Sub(s.now()), true, nil
}

// Incr adds by to key's integer (a missing key counts as 0) and returns the sum. The
// key keeps its ttl, as with Redis's INCRBY.
func (s *Memory) Incr(key string, by int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	if v, ok := s.getLocked(key); ok {
		var err error
		if n, err = strconv.ParseInt(string(v), 10, 64); err != nil {
			return 0, ErrNotInteger
		}
	}
	if (by > 0 && n > math.MaxInt64-by) || (by < 0 && n < math.MinInt64-by) {
		return 0, ErrNotInteger
	}
	n += by
	s.vals[key] = strconv.AppendInt(nil, n, 10)
	return n, nil
}

// Del removes key; a missing key is no error.
func (s *Memory) Del(key string) error {
	s.mu.Lock()
	s.delLocked(key)
	s.mu.Unlock()
	return nil
}

// getLocked returns key's value unless it is absent or expired; an expired key is
// dropped.
func (s *Memory) getLocked(key string) ([]byte, bool) {
	v, ok := s.vals[key]
	if ok && len(s.expires) > 0 {
		if at, has := s.expires[key]; has && !s.now().Before(at) {
			s.delLocked(key)
			return nil, false
		}
	}
	return v, ok
}

// setLocked stores v under key, expiring ttl from now (0: never).
func (s *Memory) setLocked(key string, v []byte, ttl time.Duration) {
	s.vals[key] = v
	switch {
	case ttl > 0:
		now := s.now()
		s.sweepLocked(now)
		s.expires[key] = now.Add(ttl)
	case len(s.expires) > 0:
		delete(s.expires, key)
	}
}

func (s *Memory) delLocked(key string) {
	delete(s.vals, key)
	delete(s.expires, key)
}

// sweepLocked drops the expired keys among up to sweepBatch of those with a ttl (map
// order is random: a sample). Each write with a ttl adds one key and may drop several,
// so expired keys stay a small share of the live ones.
func (s *Memory) sweepLocked(now time.Time) {
	n := 0
	for key, at := range s.expires {
		if !now.Before(at) {
			s.delLocked(key)
		}
		if n++; n == sweepBatch {
			return
		}
	}
}
