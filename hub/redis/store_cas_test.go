package redis_test

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/luachan/luachan/internal/hubtest"
	"github.com/luachan/luachan/internal/rediscluster"
)

// TestStoreCAS: compare-and-set, seen alike by two nodes, byte for byte, with nil for
// an absent key (old) and for a delete (value).
func TestStoreCAS(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			a, b := s[0], s[1]
			steps := []struct {
				name       string
				s          storeAPI
				old, value string // "" is nil
				want       bool
				after      string // "" absent
			}{
				{"absent, expected present", a, `1`, `2`, false, ""},
				{"absent, expected absent", a, "", `{"a":1}`, true, `{"a":1}`},
				{"present, expected absent", b, "", `3`, false, `{"a":1}`},
				{"other value", b, `{"a":2}`, `3`, false, `{"a":1}`},
				{"equal as JSON, other bytes", b, `{ "a": 1 }`, `3`, false, `{"a":1}`},
				{"same value, other node", b, `{"a":1}`, `"x"`, true, `"x"`},
				{"null is a value, not absence", a, "", `null`, false, `"x"`},
				{"delete on match", a, `"x"`, "", true, ""},
				{"delete what is absent", b, "", "", true, ""},
				{"delete, expected present", b, `"x"`, "", false, ""},
			}
			for _, st := range steps {
				done, err := st.s.CAS("k", bytesOrNil(st.old), bytesOrNil(st.value), 0)
				if err != nil || done != st.want {
					t.Fatalf("%s: CAS(%s, %s) = %v, %v; want %v", st.name, st.old, st.value, done, err, st.want)
				}
				v, ok, err := a.Get("k")
				if err != nil || ok != (st.after != "") || string(v) != st.after {
					t.Fatalf("%s: then Get = %q, %v, %v; want %q", st.name, v, ok, err, st.after)
				}
			}
			// Incr's integers compare as the JSON a script would give.
			if _, err := a.Incr("n", 41); err != nil {
				t.Fatal(err)
			}
			if done, err := b.CAS("n", []byte(`41`), []byte(`42`), 0); !done || err != nil {
				t.Fatalf("CAS on an Incr'd key = %v, %v", done, err)
			}
		})
	}
}

func bytesOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// TestStoreCASIsAtomic: writers over two views of the store incrementing one key with
// CAS loops end at exactly the total.
func TestStoreCASIsAtomic(t *testing.T) {
	const writers, each = 20, 50
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := range writers {
				wg.Go(func() {
					if err := casIncrements(s[w%2], "count", each); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			if err := errors.Join(collect(errs)...); err != nil {
				t.Fatal(err)
			}
			if v, _, _ := s[0].Get("count"); string(v) != fmt.Sprint(writers*each) {
				t.Fatalf("count = %s, want %d", v, writers*each)
			}
		})
	}
}

// casIncrements adds 1 to key n times, each with a read and a CAS, retried until it wins.
func casIncrements(s storeAPI, key string, n int) error {
	for range n {
		for {
			cur, ok, err := s.Get(key)
			if err != nil {
				return err
			}
			next := 1
			if ok {
				m, err := strconv.Atoi(string(cur))
				if err != nil {
					return fmt.Errorf("%s holds %q", key, cur)
				}
				next = m + 1
			} else {
				cur = nil
			}
			done, err := s.CAS(key, cur, []byte(strconv.Itoa(next)), 0)
			if err != nil {
				return err
			}
			if done {
				break
			}
		}
	}
	return nil
}

func collect(errs <-chan error) []error {
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return all
}

// TestStoreTTL: a value set with a ttl is gone after it on every node; a plain Set
// clears the ttl, Incr keeps it, a CAS sets its own.
func TestStoreTTL(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			a, b := s[0], s[1]
			if _, ok, err := a.TTL("absent"); ok || err != nil {
				t.Fatalf("TTL(absent) = ok %v, %v", ok, err)
			}
			a.Set("plain", []byte(`1`))
			if d, ok, err := b.TTL("plain"); d >= 0 || !ok || err != nil {
				t.Fatalf("TTL(plain) = %v, %v, %v; want < 0 (no expiry)", d, ok, err)
			}

			if err := a.SetTTL("k", []byte(`"v"`), time.Hour); err != nil {
				t.Fatal(err)
			}
			if d, ok, err := b.TTL("k"); !ok || err != nil || d <= 59*time.Minute || d > time.Hour {
				t.Fatalf("TTL(k) = %v, %v, %v; want just under 1h", d, ok, err)
			}
			if v, _, _ := b.Get("k"); string(v) != `"v"` {
				t.Fatalf("Get(k) = %q", v)
			}
			a.Set("k", []byte(`"w"`))
			if d, ok, _ := b.TTL("k"); d >= 0 || !ok {
				t.Fatalf("TTL after a plain Set = %v, %v; want no expiry", d, ok)
			}

			a.SetTTL("n", []byte(`1`), time.Hour)
			if n, err := b.Incr("n", 1); n != 2 || err != nil {
				t.Fatalf("Incr = %d, %v", n, err)
			}
			if d, ok, _ := a.TTL("n"); d <= 0 || !ok {
				t.Fatalf("TTL after Incr = %v, %v; want the ttl kept", d, ok)
			}
			if done, _ := b.CAS("n", []byte(`2`), []byte(`3`), 0); !done {
				t.Fatal("CAS(n, 2, 3) failed")
			}
			if d, ok, _ := a.TTL("n"); d >= 0 || !ok {
				t.Fatalf("TTL after a CAS without ttl = %v, %v; want no expiry", d, ok)
			}
			if done, _ := b.CAS("n", []byte(`3`), []byte(`4`), time.Hour); !done {
				t.Fatal("CAS(n, 3, 4, 1h) failed")
			}
			if d, ok, _ := a.TTL("n"); d <= 59*time.Minute || !ok {
				t.Fatalf("TTL after a CAS with 1h = %v, %v", d, ok)
			}

			// Expiry, seen from the other node: the key reads as absent, for Get, TTL, CAS
			// and Incr alike.
			for _, key := range []string{"e1", "e2", "e3", "e4"} {
				if err := a.SetTTL(key, []byte(`7`), 150*time.Millisecond); err != nil {
					t.Fatal(err)
				}
			}
			hubtest.WaitFor(t, "e4, set last, to expire", func() bool {
				_, ok, err := b.Get("e4")
				return err == nil && !ok
			})
			if _, ok, err := b.TTL("e2"); ok || err != nil {
				t.Fatalf("TTL of an expired key = ok %v, %v; want absent", ok, err)
			}
			if done, _ := b.CAS("e3", []byte(`7`), []byte(`8`), 0); done {
				t.Fatal("CAS matched an expired value")
			}
			if done, _ := b.CAS("e3", nil, []byte(`8`), 0); !done {
				t.Fatal("CAS expecting an expired key absent failed")
			}
			if n, err := b.Incr("e1", 1); n != 1 || err != nil {
				t.Fatalf("Incr on an expired key = %d, %v; want 1", n, err)
			}
			if d, ok, _ := a.TTL("e1"); d >= 0 || !ok {
				t.Fatalf("TTL after Incr on an expired key = %v, %v; want no expiry", d, ok)
			}
		})
	}
}

// TestStoreCASOnRedisCluster: CAS, its script included, and ttls work on a Redis Cluster,
// with keys on every master.
func TestStoreCASOnRedisCluster(t *testing.T) {
	cl := rediscluster.StartCluster(t)
	a, b := dialStore(t, cl.URL()), dialStore(t, cl.URL())
	keys := map[string]string{} // master -> key
	for i := 0; len(keys) < len(cl.Nodes); i++ {
		key := fmt.Sprintf("k%d", i)
		if m := cl.MasterOf(t, "luachan:store:"+key); keys[m] == "" {
			keys[m] = key
		}
	}
	for _, key := range keys {
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for w := range 4 {
			wg.Go(func() {
				if err := casIncrements([]storeAPI{a, b}[w%2], key, 10); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := errors.Join(collect(errs)...); err != nil {
			t.Fatal(err)
		}
		if v, _, _ := b.Get(key); string(v) != "40" {
			t.Fatalf("%s = %s after 40 CAS increments", key, v)
		}
		if err := a.SetTTL(key, []byte(`"v"`), time.Minute); err != nil {
			t.Fatal(err)
		}
		if d, ok, err := b.TTL(key); !ok || err != nil || d <= 0 || d > time.Minute {
			t.Fatalf("TTL(%s) = %v, %v, %v", key, d, ok, err)
		}
	}
}
