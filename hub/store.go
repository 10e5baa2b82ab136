package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// The shared state behind luachan.store (SPEC section 3): values are JSON text, every
// operation is atomic, and every channel and VM sees the same keys; with RedisStore,
// every node too. Both types satisfy luabind.Store, which cmd/luachan hands the engine.

// ErrNotInteger is Incr on a key whose value is not an integer, or a sum out of range.
var ErrNotInteger = errors.New("hub: store value is not an integer or is out of range")

// MemoryStore keeps the shared state in this process: the default, without -pubsub redis.
type MemoryStore struct {
	mu   sync.Mutex        // guards vals
	vals map[string][]byte // JSON text by key
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{vals: make(map[string][]byte)}
}

// Get returns a copy of key's value, or ok=false when it has none.
func (s *MemoryStore) Get(key string) (value []byte, ok bool, err error) {
	s.mu.Lock()
	v, ok := s.vals[key]
	s.mu.Unlock()
	return bytes.Clone(v), ok, nil
}

// Set stores a copy of value (JSON text) under key.
func (s *MemoryStore) Set(key string, value []byte) error {
	v := bytes.Clone(value)
	s.mu.Lock()
	s.vals[key] = v
	s.mu.Unlock()
	return nil
}

// Incr adds by to key's integer (a missing key counts as 0) and returns the sum.
func (s *MemoryStore) Incr(key string, by int64) (int64, error) {
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
func (s *MemoryStore) Del(key string) error {
	s.mu.Lock()
	delete(s.vals, key)
	s.mu.Unlock()
	return nil
}

// RedisStore keeps the shared state in Redis, one string key per store key (Prefix +
// "store:" + key), so that every node sees it; Incr is INCRBY, atomic across nodes.
// Commands are never retried (a retried INCRBY could count twice): while Redis is
// unreachable every call fails, and the script calling it gets a Lua error.
type RedisStore struct {
	client *redis.Client
	prefix string
}

// Get returns key's value, or ok=false when it has none.
func (s *RedisStore) Get(key string) (value []byte, ok bool, err error) {
	v, err := s.client.Get(context.Background(), s.prefix+key).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	case err != nil:
		return nil, false, storeError(err)
	}
	return v, true, nil
}

// Set stores value (JSON text) under key, with no expiry.
func (s *RedisStore) Set(key string, value []byte) error {
	return storeError(s.client.Set(context.Background(), s.prefix+key, value, 0).Err())
}

// Incr adds by to key's integer (a missing key counts as 0) and returns the sum.
func (s *RedisStore) Incr(key string, by int64) (int64, error) {
	n, err := s.client.IncrBy(context.Background(), s.prefix+key, by).Result()
	return n, storeError(err)
}

// Del removes key; a missing key is no error.
func (s *RedisStore) Del(key string) error {
	return storeError(s.client.Del(context.Background(), s.prefix+key).Err())
}

// storeError maps Redis's answer for a non-integer INCRBY to ErrNotInteger and marks
// the others as Redis's.
func storeError(err error) error {
	var rerr redis.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &rerr) && strings.Contains(rerr.Error(), "not an integer"),
		errors.As(err, &rerr) && strings.Contains(rerr.Error(), "overflow"):
		return ErrNotInteger
	}
	return fmt.Errorf("hub: redis store: %w", err)
}
