package store

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"sync"
)

// ErrNotInteger is Incr on a key whose value is not an integer, or a sum out of range.
// Every store returns it for those, so that scripts see one error whatever the store.
var ErrNotInteger = errors.New("store: value is not an integer or is out of range")

// Memory keeps the shared state in this process: the default, without -pubsub redis.
type Memory struct {
	mu   sync.Mutex        // guards vals
	vals map[string][]byte // JSON text by key
}

// NewMemory returns an empty Memory store.
func NewMemory() *Memory {
	return &Memory{vals: make(map[string][]byte)}
}

// Get returns a copy of key's value, or ok=false when it has none.
func (s *Memory) Get(key string) (value []byte, ok bool, err error) {
	s.mu.Lock()
	v, ok := s.vals[key]
	s.mu.Unlock()
	return bytes.Clone(v), ok, nil
}

// Set stores a copy of value (JSON text) under key.
func (s *Memory) Set(key string, value []byte) error {
	v := bytes.Clone(value)
	s.mu.Lock()
	s.vals[key] = v
	s.mu.Unlock()
	return nil
}

// Incr adds by to key's integer (a missing key counts as 0) and returns the sum.
func (s *Memory) Incr(key string, by int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	if v, ok := s.vals[key]; ok {
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
	delete(s.vals, key)
	s.mu.Unlock()
	return nil
}
