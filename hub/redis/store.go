package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/luachan/luachan/store"
)

// Store keeps the shared state behind luachan.store (SPEC section 3) in Redis, one
// string key per store key (Prefix + "store:" + key), so that every node sees it; Incr
// is INCRBY, atomic across nodes. Commands are never retried (a retried INCRBY could
// count twice): while Redis is unreachable every call fails, and the script calling it
// gets a Lua error. It satisfies luabind.Store, as store.Memory does.
type Store struct {
	client goredis.UniversalClient
	prefix string
}

// Get returns key's value, or ok=false when it has none.
func (s *Store) Get(key string) (value []byte, ok bool, err error) {
	v, err := s.client.Get(context.Background(), s.prefix+key).Bytes()
	switch {
	case errors.Is(err, goredis.Nil):
		return nil, false, nil
	case err != nil:
		return nil, false, storeError(err)
	}
	return v, true, nil
}

// Set stores value (JSON text) under key, with no expiry.
func (s *Store) Set(key string, value []byte) error {
	return storeError(s.client.Set(context.Background(), s.prefix+key, value, 0).Err())
}

// Incr adds by to key's integer (a missing key counts as 0) and returns the sum.
func (s *Store) Incr(key string, by int64) (int64, error) {
	n, err := s.client.IncrBy(context.Background(), s.prefix+key, by).Result()
	return n, storeError(err)
}

// Del removes key; a missing key is no error.
func (s *Store) Del(key string) error {
	return storeError(s.client.Del(context.Background(), s.prefix+key).Err())
}

// storeError maps Redis's answer for a non-integer INCRBY to store.ErrNotInteger and
// marks the others as Redis's.
func storeError(err error) error {
	var rerr goredis.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &rerr) && strings.Contains(rerr.Error(), "not an integer"),
		errors.As(err, &rerr) && strings.Contains(rerr.Error(), "overflow"):
		return store.ErrNotInteger
	}
	return fmt.Errorf("redis: store: %w", err)
}
