package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/luachan/luachan/store"
)

// Store keeps the shared state behind luachan.store (SPEC sections 3 and 11) in Redis,
// one string key per store key (Prefix + "store:" + key), so that every node sees it;
// Incr is INCRBY and CAS a script on the one key, atomic across nodes (and on a Redis
// Cluster), and a ttl is the key's own Redis expiry. Commands are never retried (a
// retried INCRBY could count twice): while Redis is unreachable every call fails, and
// the script calling it gets a Lua error. It satisfies luabind.Store, as store.Memory
// does.
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

// Set stores value (JSON text) under key, with no expiry (clearing any ttl).
func (s *Store) Set(key string, value []byte) error {
	return storeError(s.client.Set(context.Background(), s.prefix+key, value, 0).Err())
}

// SetTTL stores value under key, expiring ttl (> 0, whole milliseconds) from now.
func (s *Store) SetTTL(key string, value []byte, ttl time.Duration) error {
	return storeError(s.client.Set(context.Background(), s.prefix+key, value, ttl).Err())
}

// casScript is Store.CAS. KEYS[1] is the key; ARGV: 1 "1" to expect old, "0" to
// expect the key absent, 2 old, 3 "1" to set value, "0" to delete the key, 4 value,
// 5 ttl in ms ("0": none). It returns 1 when it set or deleted the key.
var casScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur ~= ARGV[2] then return 0 end
elseif cur then
  return 0
end
if ARGV[3] == '0' then
  redis.call('DEL', KEYS[1])
elseif ARGV[5] == '0' then
  redis.call('SET', KEYS[1], ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
end
return 1
`)

// CAS sets key to value (nil: deletes it) if its value is old byte for byte (nil: if
// it has none), with expiry ttl (0: none), and reports whether it did.
func (s *Store) CAS(key string, old, value []byte, ttl time.Duration) (bool, error) {
	n, err := casScript.Run(context.Background(), s.client, []string{s.prefix + key},
		flag(old != nil), old, flag(value != nil), value, strconv.FormatInt(ttl.Milliseconds(), 10)).Int()
	return n == 1, storeError(err)
}

// flag is a Lua script's boolean argument.
func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// TTL returns the time key has left: ok=false when it is absent, ttl < 0 when it has no
// expiry.
func (s *Store) TTL(key string) (ttl time.Duration, ok bool, err error) {
	d, err := s.client.PTTL(context.Background(), s.prefix+key).Result()
	switch {
	case err != nil:
		return 0, false, storeError(err)
	case d == -2: // PTTL's "no such key", which go-redis passes on unscaled
		return 0, false, nil
	case d == -1: // and "no expiry"
		return -1, true, nil
	}
	return d, true, nil
}

// Incr adds by to key's integer (a missing key counts as 0) and returns the sum; the
// key keeps its ttl.
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
