package nats_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/luachan/luachan/hub/nats"
	"github.com/luachan/luachan/internal/hubtest"
	"github.com/luachan/luachan/internal/natstest"
)

// twoStores returns two nodes' views of luachan.store on one fresh nats-server.
func twoStores(t *testing.T) (a, b *nats.Store) {
	t.Helper()
	ns := natstest.Start(t)
	pa, _, _ := startNode(t, ns.URL())
	pb, _, _ := startNode(t, ns.URL())
	return pa.Store(), pb.Store()
}

// TestNATSStoreCAS: compare-and-set on the key's revision, seen alike by two nodes,
// byte for byte, with nil for an absent key (old) and for a delete (value).
func TestNATSStoreCAS(t *testing.T) {
	a, b := twoStores(t)
	steps := []struct {
		name       string
		s          *nats.Store
		old, value []byte
		want       bool
		after      string // "" absent
	}{
		{"absent, expected present", a, []byte(`1`), []byte(`2`), false, ""},
		{"absent, expected absent", a, nil, []byte(`{"a":1}`), true, `{"a":1}`},
		{"present, expected absent", b, nil, []byte(`3`), false, `{"a":1}`},
		{"other value", b, []byte(`{"a":2}`), []byte(`3`), false, `{"a":1}`},
		{"same value, other node", b, []byte(`{"a":1}`), []byte(`"x"`), true, `"x"`},
		{"delete on match", a, []byte(`"x"`), nil, true, ""},
		{"delete what is absent", b, nil, nil, true, ""},
		{"create again after a delete", b, nil, []byte(`5`), true, `5`},
	}
	for _, st := range steps {
		done, err := st.s.CAS("k.*", st.old, st.value, 0)
		if err != nil || done != st.want {
			t.Fatalf("%s: CAS(%s, %s) = %v, %v; want %v", st.name, st.old, st.value, done, err, st.want)
		}
		v, ok, err := a.Get("k.*")
		if err != nil || ok != (st.after != "") || string(v) != st.after {
			t.Fatalf("%s: then Get = %q, %v, %v; want %q", st.name, v, ok, err, st.after)
		}
	}
}

// TestNATSStoreCASAcrossNodes: CAS-increment loops from two nodes end at exactly the total.
func TestNATSStoreCASAcrossNodes(t *testing.T) {
	a, b := twoStores(t)
	stores := []*nats.Store{a, b}
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			s := stores[w%2]
			for range each {
				for {
					cur, ok, err := s.Get("count")
					if err != nil {
						errs <- err
						return
					}
					next := 1
					if ok {
						n, _ := strconv.Atoi(string(cur))
						next = n + 1
					} else {
						cur = nil
					}
					done, err := s.CAS("count", cur, []byte(strconv.Itoa(next)), 0)
					if err != nil {
						errs <- err
						return
					}
					if done {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v, _, _ := a.Get("count"); string(v) != fmt.Sprint(workers*each) {
		t.Fatalf("count = %s, want %d", v, workers*each)
	}
}

// TestNATSStoreTTL: a value with a ttl reads as absent after it on every node, though
// the server has no per-key TTL; a plain Set clears the ttl, Incr keeps it.
func TestNATSStoreTTL(t *testing.T) {
	a, b := twoStores(t)
	if _, ok, err := a.TTL("absent"); ok || err != nil {
		t.Fatalf("TTL(absent) = ok %v, %v", ok, err)
	}
	a.Set("plain", []byte(`1`))
	if d, ok, err := b.TTL("plain"); d >= 0 || !ok || err != nil {
		t.Fatalf("TTL(plain) = %v, %v, %v; want < 0 (no expiry)", d, ok, err)
	}
	if err := a.SetTTL("k", []byte(`{"v":1}`), time.Hour); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := b.Get("k"); string(v) != `{"v":1}` || !ok || err != nil {
		t.Fatalf("Get(k) = %q, %v, %v: the value as set, without its expiry", v, ok, err)
	}
	if d, ok, err := b.TTL("k"); !ok || err != nil || d <= 59*time.Minute || d > time.Hour {
		t.Fatalf("TTL(k) = %v, %v, %v; want just under 1h", d, ok, err)
	}
	if done, err := b.CAS("k", []byte(`{"v":1}`), []byte(`{"v":2}`), 0); !done || err != nil {
		t.Fatalf("CAS on a key with a ttl = %v, %v", done, err)
	}
	if d, ok, _ := a.TTL("k"); d >= 0 || !ok {
		t.Fatalf("TTL after a CAS without ttl = %v, %v; want no expiry", d, ok)
	}

	a.SetTTL("n", []byte(`1`), time.Hour)
	if n, err := b.Incr("n", 1); n != 2 || err != nil {
		t.Fatalf("Incr = %d, %v", n, err)
	}
	if v, _, _ := a.Get("n"); string(v) != "2" {
		t.Fatalf("Get(n) = %q, want 2", v)
	}
	if d, ok, _ := a.TTL("n"); d <= 59*time.Minute || !ok {
		t.Fatalf("TTL after Incr = %v, %v; want the ttl kept", d, ok)
	}
	a.Set("n", []byte(`5`))
	if d, ok, _ := a.TTL("n"); d >= 0 || !ok {
		t.Fatalf("TTL after a plain Set = %v, %v; want no expiry", d, ok)
	}

	for _, key := range []string{"e1", "e2", "e3"} {
		if err := a.SetTTL(key, []byte(`7`), 150*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	hubtest.WaitFor(t, "e3, set last, to expire", func() bool {
		_, ok, err := b.Get("e3")
		return err == nil && !ok
	})
	if _, ok, err := b.Get("e3"); ok || err != nil { // read again once dropped
		t.Fatalf("Get of an expired key after its tidy-up = ok %v, %v", ok, err)
	}
	if _, ok, err := b.TTL("e1"); ok || err != nil {
		t.Fatalf("TTL of an expired key = ok %v, %v; want absent", ok, err)
	}
	if done, _ := b.CAS("e2", []byte(`7`), []byte(`8`), 0); done {
		t.Fatal("CAS matched an expired value")
	}
	if done, err := b.CAS("e2", nil, []byte(`8`), time.Hour); !done || err != nil {
		t.Fatalf("CAS expecting an expired key absent = %v, %v", done, err)
	}
	if n, err := a.Incr("e1", 1); n != 1 || err != nil {
		t.Fatalf("Incr on an expired key = %d, %v; want 1", n, err)
	}
	if d, ok, _ := b.TTL("e1"); d >= 0 || !ok {
		t.Fatalf("TTL after Incr on an expired key = %v, %v; want no expiry", d, ok)
	}
}
