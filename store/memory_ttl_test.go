package store_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/luachan/luachan/store"
)

// clock is a test's time: it stands still until advanced.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// wantTTL fails unless key has ttl want left (< 0: no expiry), or is absent for ok=false.
func wantTTL(tb testing.TB, s *store.Memory, key string, want time.Duration, wantOK bool) {
	tb.Helper()
	got, ok, err := s.TTL(key)
	if err != nil || ok != wantOK || (ok && got != want) {
		tb.Fatalf("TTL(%q) = %v, %v, %v; want %v, %v", key, got, ok, err, want, wantOK)
	}
}

func wantValue(tb testing.TB, s *store.Memory, key, want string) {
	tb.Helper()
	got, ok, err := s.Get(key)
	switch {
	case err != nil:
		tb.Fatal(err)
	case want == "" && ok:
		tb.Fatalf("Get(%q) = %s, want it absent", key, got)
	case want != "" && string(got) != want:
		tb.Fatalf("Get(%q) = %q, %v; want %s", key, got, ok, want)
	}
}

func TestMemoryTTL(t *testing.T) {
	c := newClock()
	s := store.NewMemoryClock(c.Now)

	wantTTL(t, s, "k", 0, false)
	s.Set("plain", []byte(`1`))
	wantTTL(t, s, "plain", -1, true)

	s.SetTTL("k", []byte(`"v"`), 2*time.Second)
	wantTTL(t, s, "k", 2*time.Second, true)
	c.advance(1500 * time.Millisecond)
	wantValue(t, s, "k", `"v"`)
	wantTTL(t, s, "k", 500*time.Millisecond, true)
	c.advance(500 * time.Millisecond)
	wantValue(t, s, "k", "")
	wantTTL(t, s, "k", 0, false)

	// A plain Set clears the ttl, as Redis's SET does; Incr keeps it, as INCRBY does.
	s.SetTTL("k", []byte(`1`), time.Second)
	s.Set("k", []byte(`2`))
	wantTTL(t, s, "k", -1, true)
	s.SetTTL("n", []byte(`1`), time.Second)
	if n, err := s.Incr("n", 1); n != 2 || err != nil {
		t.Fatalf("Incr = %d, %v", n, err)
	}
	wantTTL(t, s, "n", time.Second, true)
	c.advance(time.Second)
	// An expired key counts as absent: Incr starts again from 0, with no ttl.
	if n, err := s.Incr("n", 1); n != 1 || err != nil {
		t.Fatalf("Incr on an expired key = %d, %v; want 1", n, err)
	}
	wantTTL(t, s, "n", -1, true)

	// Del drops the ttl with the key.
	s.SetTTL("d", []byte(`1`), time.Second)
	s.Del("d")
	s.Set("d", []byte(`1`))
	c.advance(time.Hour)
	wantValue(t, s, "d", "1")
}

func TestMemoryCAS(t *testing.T) {
	c := newClock()
	s := store.NewMemoryClock(c.Now)
	steps := []struct {
		name       string
		old, value []byte
		ttl        time.Duration
		want       bool
		after      string // the value then ("" absent)
	}{
		{"absent, expected present", []byte(`1`), []byte(`2`), 0, false, ""},
		{"absent, expected absent", nil, []byte(`{"a":1}`), 0, true, `{"a":1}`},
		{"present, expected absent", nil, []byte(`3`), 0, false, `{"a":1}`},
		{"other value", []byte(`{"a":2}`), []byte(`3`), 0, false, `{"a":1}`},
		{"same value in another order of bytes", []byte(`{ "a":1}`), []byte(`3`), 0, false, `{"a":1}`},
		{"same value", []byte(`{"a":1}`), []byte(`"x"`), 0, true, `"x"`},
		{"null is a value, not absence", nil, []byte(`null`), 0, false, `"x"`},
		{"delete on match", []byte(`"x"`), nil, 0, true, ""},
		{"delete what is absent", nil, nil, 0, true, ""},
		{"delete, expected present", []byte(`"x"`), nil, 0, false, ""},
		{"set with a ttl", nil, []byte(`"lease"`), time.Second, true, `"lease"`},
	}
	for _, st := range steps {
		done, err := s.CAS("k", st.old, st.value, st.ttl)
		if err != nil || done != st.want {
			t.Fatalf("%s: CAS(%s, %s) = %v, %v; want %v", st.name, st.old, st.value, done, err, st.want)
		}
		wantValue(t, s, "k", st.after)
	}
	wantTTL(t, s, "k", time.Second, true)
	// The lease expires: a CAS expecting it absent takes the key; one expecting the old
	// holder's value does not.
	c.advance(time.Second)
	if done, _ := s.CAS("k", []byte(`"lease"`), []byte(`"renewed"`), time.Second); done {
		t.Fatal("CAS matched an expired value")
	}
	if done, _ := s.CAS("k", nil, []byte(`"mine"`), 0); !done {
		t.Fatal("CAS expecting an expired key absent did not set it")
	}
	wantTTL(t, s, "k", -1, true) // a CAS without a ttl leaves none, as Set does

	// The store keeps its own copy of what CAS set.
	v := []byte(`"copy"`)
	s.CAS("c", nil, v, 0)
	v[1] = 'X'
	wantValue(t, s, "c", `"copy"`)
}

// TestMemoryCASIsAtomic: writers incrementing one key with CAS loops end at the exact total.
func TestMemoryCASIsAtomic(t *testing.T) {
	s := store.NewMemory()
	const writers, each = 16, 500
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				for {
					cur, ok, _ := s.Get("n")
					n := 0
					if ok {
						n, _ = strconv.Atoi(string(cur))
					}
					var old []byte
					if ok {
						old = cur
					}
					if done, _ := s.CAS("n", old, []byte(strconv.Itoa(n+1)), 0); done {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	wantValue(t, s, "n", fmt.Sprint(writers*each))
}

// TestMemorySweep: keys with a ttl that nobody reads again are dropped by later writes
// with a ttl, so they do not pile up.
func TestMemorySweep(t *testing.T) {
	c := newClock()
	s := store.NewMemoryClock(c.Now)
	const n = 1000
	for i := range n {
		s.SetTTL(fmt.Sprint("old", i), []byte(`1`), time.Second)
	}
	c.advance(time.Second)
	for i := range n {
		s.SetTTL(fmt.Sprint("new", i), []byte(`1`), time.Hour)
	}
	keys, withTTL := s.Len()
	t.Logf("%d keys left of %d expired and %d live", keys, n, n)
	if keys != withTTL || keys > n+n/10 {
		t.Fatalf("%d keys (%d with a ttl) after %d expired and %d new ones; want at most %d left", keys, withTTL, n, n, n+n/10)
	}
}
