package redis_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/luachan/luachan/hub/redis"
	"github.com/luachan/luachan/store"
)

// storeAPI is luabind.Store, which store.Memory and redis.Store implement (neither imports luabind).
type storeAPI interface {
	Get(key string) (value []byte, ok bool, err error)
	Set(key string, value []byte) error
	SetTTL(key string, value []byte, ttl time.Duration) error
	CAS(key string, old, value []byte, ttl time.Duration) (bool, error)
	TTL(key string) (ttl time.Duration, ok bool, err error)
	Incr(key string, by int64) (int64, error)
	Del(key string) error
}

var (
	_ storeAPI = (*store.Memory)(nil)
	_ storeAPI = (*redis.Store)(nil)
)

// stores returns a fresh store of every kind, by name; the Redis ones are two nodes'
// views of one Redis.
func stores(t *testing.T) map[string][2]storeAPI {
	t.Helper()
	mem := store.NewMemory()
	rs := startRedis(t)
	a := dialStore(t, rs.url())
	b := dialStore(t, rs.url())
	return map[string][2]storeAPI{"memory": {mem, mem}, "redis": {a, b}}
}

func dialStore(t *testing.T, url string) *redis.Store {
	t.Helper()
	ps, err := redis.Dial(context.Background(), redis.Config{URL: url, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ps.Close(context.Background()) })
	return ps.Store()
}

func TestStore(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			a, b := s[0], s[1]
			if _, ok, err := a.Get("missing"); ok || err != nil {
				t.Fatalf("Get(missing) = ok %v, err %v", ok, err)
			}
			if err := a.Set("k", []byte(`{"x":[1,"two"]}`)); err != nil {
				t.Fatal(err)
			}
			if v, ok, err := b.Get("k"); !ok || err != nil || string(v) != `{"x":[1,"two"]}` {
				t.Fatalf("Get(k) = %q, %v, %v", v, ok, err)
			}
			if err := b.Del("k"); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := a.Get("k"); ok {
				t.Fatal("Get after Del found the key")
			}
			if err := a.Del("never-set"); err != nil {
				t.Fatalf("Del(never-set): %v", err)
			}

			incr := []struct {
				by   int64
				want int64
			}{{1, 1}, {5, 6}, {-10, -4}, {0, -4}}
			for _, tc := range incr {
				if n, err := a.Incr("n", tc.by); n != tc.want || err != nil {
					t.Fatalf("Incr(n, %d) = %d, %v; want %d", tc.by, n, err, tc.want)
				}
			}
			if v, _, _ := b.Get("n"); string(v) != "-4" {
				t.Fatalf("Get(n) after Incr = %q, want -4 (JSON)", v)
			}
			if err := a.Set("n", []byte("41")); err != nil {
				t.Fatal(err)
			}
			if n, err := b.Incr("n", 1); n != 42 || err != nil {
				t.Fatalf("Incr after Set(41) = %d, %v", n, err)
			}

			for _, v := range []string{`"text"`, `1.5`, `{}`, `null`} {
				a.Set("bad", []byte(v))
				if _, err := a.Incr("bad", 1); !errors.Is(err, store.ErrNotInteger) {
					t.Errorf("Incr on %s: %v, want ErrNotInteger", v, err)
				}
			}
			a.Set("big", []byte(fmt.Sprint(int64(math.MaxInt64))))
			if _, err := a.Incr("big", 1); !errors.Is(err, store.ErrNotInteger) {
				t.Errorf("Incr past MaxInt64: %v, want ErrNotInteger", err)
			}
		})
	}
}

// TestStoreIncrIsAtomic: 50 writers over two views of the store, 100 increments each,
// lose nothing, and every sum is handed out exactly once.
func TestStoreIncrIsAtomic(t *testing.T) {
	const writers, each = 50, 100
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			var (
				wg   sync.WaitGroup
				mu   sync.Mutex
				seen = make(map[int64]bool)
				errs []error
			)
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range each {
						n, err := s[w%2].Incr("hits", 1)
						mu.Lock()
						if err != nil {
							errs = append(errs, err)
						} else if seen[n] {
							errs = append(errs, fmt.Errorf("sum %d handed out twice", n))
						}
						seen[n] = true
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if len(errs) > 0 {
				t.Fatal(errors.Join(errs...))
			}
			if v, _, _ := s[0].Get("hits"); string(v) != fmt.Sprint(writers*each) {
				t.Fatalf("hits = %s, want %d", v, writers*each)
			}
		})
	}
}

func TestRedisStoreWithoutRedis(t *testing.T) {
	rs := startRedis(t)
	s := dialStore(t, rs.url())
	rs.kill(t)
	if _, err := s.Incr("n", 1); err == nil || errors.Is(err, store.ErrNotInteger) {
		t.Fatalf("Incr with Redis down: %v, want a Redis error", err)
	}
	if _, _, err := s.Get("n"); err == nil {
		t.Fatal("Get with Redis down succeeded")
	}
	rs.start(t)
	if n, err := s.Incr("n", 1); n != 1 || err != nil {
		t.Fatalf("Incr once Redis is back = %d, %v", n, err)
	}
}
