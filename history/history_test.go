package history_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/luachan/luachan/history"
)

func TestParsePosition(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"abc:0", true}, {"abc:12", true}, {"a:b:3", true},
		{"", false}, {":3", false}, {"abc", false}, {"abc:-1", false}, {"abc:x", false},
		{"abc:9007199254740993", false}, {"abc:99999999999999999999999", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			p, ok := history.ParsePosition(tc.in)
			if ok != tc.ok {
				t.Fatalf("ParsePosition(%q) ok = %v, want %v", tc.in, ok, tc.ok)
			}
			if ok && p.String() != tc.in {
				t.Fatalf("String() = %q, want %q", p.String(), tc.in)
			}
		})
	}
}

// clock is a settable time for the TTL tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func appendN(m *history.Memory[string], topic string, lim history.Limits, n int) {
	for range n {
		m.Append(topic, lim, func(p history.Position) string { return "v" + fmt.Sprint(p.N) })
	}
}

func TestReadSince(t *testing.T) {
	lim := history.Limits{Size: 3, TTL: time.Minute}
	m := history.NewMemory[string](nil)
	appendN(m, "t", lim, 5) // keeps 3, 4, 5
	cur := m.Current("t", lim)
	if cur.N != 5 {
		t.Fatalf("current = %v, want n 5", cur)
	}
	at := func(n int) string { return history.Position{Epoch: cur.Epoch, N: uint64(n)}.String() }
	for _, tc := range []struct {
		since     string
		limit     int
		want      []string
		recovered bool
	}{
		{at(2), 0, []string{"v3", "v4", "v5"}, true},
		{at(3), 0, []string{"v4", "v5"}, true},
		{at(5), 0, nil, true},
		{at(2), 2, []string{"v3", "v4"}, true},
		{at(1), 0, nil, false}, // too old
		{at(6), 0, nil, false}, // ahead
		{"other:3", 0, nil, false},
		{"junk", 0, nil, false},
		{"", 2, []string{"v4", "v5"}, true},
	} {
		t.Run(tc.since, func(t *testing.T) {
			entries, _, recovered := m.Read("t", lim, tc.since, tc.limit)
			var got []string
			for _, e := range entries {
				got = append(got, e.Value)
			}
			if recovered != tc.recovered || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("Read(%q, %d) = %v, %v; want %v, %v", tc.since, tc.limit, got, recovered, tc.want, tc.recovered)
			}
		})
	}
}

func TestTTL(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	lim := history.Limits{Size: 10, TTL: 10 * time.Second}
	m := history.NewMemory[string](c.now)
	appendN(m, "t", lim, 2)
	first := m.Current("t", lim)
	c.add(6 * time.Second)
	appendN(m, "t", lim, 1)
	c.add(6 * time.Second) // the first two expired, the third not
	since := history.Position{Epoch: first.Epoch, N: 2}.String()
	if entries, _, ok := m.Read("t", lim, since, 0); !ok || len(entries) != 1 {
		t.Fatalf("after expiry: %v entries, recovered %v; want 1, true", len(entries), ok)
	}
	if _, _, ok := m.Read("t", lim, history.Position{Epoch: first.Epoch, N: 0}.String(), 0); ok {
		t.Fatal("a position before expired entries recovered")
	}
	appendN(m, "idle", lim, 1)
	c.add(20 * time.Second)
	m.Current("other", lim) // sweeps
	if n := m.Topics(); n != 1 {
		t.Fatalf("topics after idle sweep = %d, want 1", n)
	}
	if cur := m.Current("t", lim); cur.Epoch == first.Epoch {
		t.Fatalf("a dropped topic kept its epoch %q", cur.Epoch)
	}
}

func TestSizeChange(t *testing.T) {
	m := history.NewMemory[string](nil)
	appendN(m, "t", history.Limits{Size: 4, TTL: time.Minute}, 4)
	small := history.Limits{Size: 2, TTL: time.Minute}
	appendN(m, "t", small, 1)
	entries, _, _ := m.Read("t", small, "", 0)
	if len(entries) != 2 || entries[0].Value != "v4" || entries[1].Value != "v5" {
		t.Fatalf("entries after shrinking = %v", entries)
	}
}

// TestForget: a forgotten topic starts a new epoch, so a position read before is not
// recovered; other topics keep theirs.
func TestForget(t *testing.T) {
	lim := history.Limits{Size: 10, TTL: time.Minute}
	m := history.NewMemory[string](nil)
	appendN(m, "t", lim, 2)
	appendN(m, "u", lim, 2)
	before, other := m.Current("t", lim), m.Current("u", lim)
	m.Forget("t")
	if _, cur, ok := m.Read("t", lim, before.String(), 0); ok || cur.Epoch == before.Epoch {
		t.Fatalf("after Forget: recovered %v, epoch %s (before %s); want not recovered, a new epoch", ok, cur.Epoch, before.Epoch)
	}
	if _, _, ok := m.Read("u", lim, other.String(), 0); !ok {
		t.Fatal("Forget of one topic lost another's history")
	}
}
