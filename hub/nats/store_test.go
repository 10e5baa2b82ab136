package nats_test

import (
	"errors"
	"math"
	"sort"
	"sync"
	"testing"

	"github.com/luachan/luachan/internal/natstest"
	"github.com/luachan/luachan/store"
)

// TestNATSStore: luachan.store in JetStream KV, seen alike by two nodes, with any key.
func TestNATSStore(t *testing.T) {
	ns := natstest.Start(t)
	pa, _, _ := startNode(t, ns.URL())
	pb, _, _ := startNode(t, ns.URL())
	a, b := pa.Store(), pb.Store()
	for _, key := range []string{"k", "a.b", "*", ">", "with space", ""} {
		if _, ok, err := a.Get(key); ok || err != nil {
			t.Fatalf("Get(%q) before Set = ok %v, err %v", key, ok, err)
		}
		if err := a.Set(key, []byte(`{"x":[1,"two"]}`)); err != nil {
			t.Fatal(err)
		}
		if v, ok, err := b.Get(key); !ok || err != nil || string(v) != `{"x":[1,"two"]}` {
			t.Fatalf("Get(%q) on the other node = %q, %v, %v", key, v, ok, err)
		}
		if err := b.Del(key); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := a.Get(key); ok {
			t.Fatalf("Get(%q) after Del found it", key)
		}
	}
	if err := a.Del("never-set"); err != nil {
		t.Fatalf("Del(never-set): %v", err)
	}
	for _, tc := range []struct{ by, want int64 }{{1, 1}, {5, 6}, {-10, -4}, {0, -4}} {
		if n, err := a.Incr("n", tc.by); n != tc.want || err != nil {
			t.Fatalf("Incr(n, %d) = %d, %v; want %d", tc.by, n, err, tc.want)
		}
	}
	a.Set("text", []byte(`"hello"`))
	if _, err := b.Incr("text", 1); !errors.Is(err, store.ErrNotInteger) {
		t.Fatalf("Incr on text: %v, want ErrNotInteger", err)
	}
	a.Set("big", []byte("9223372036854775807"))
	if _, err := b.Incr("big", 1); !errors.Is(err, store.ErrNotInteger) {
		t.Fatalf("Incr past MaxInt64: %v, want ErrNotInteger", err)
	}
	if n, err := b.Incr("big", math.MinInt64); n != -1 || err != nil {
		t.Fatalf("Incr(big, MinInt64) = %d, %v; want -1", n, err)
	}
	if err := b.Del("n"); err != nil {
		t.Fatal(err)
	}
	if n, err := a.Incr("n", 2); n != 2 || err != nil {
		t.Fatalf("Incr after Del = %d, %v; want 2 (a deleted key counts as 0)", n, err)
	}
}

// TestNATSStoreIncrAcrossNodes: concurrent Incr from two nodes hands out every sum once.
func TestNATSStoreIncrAcrossNodes(t *testing.T) {
	ns := natstest.Start(t)
	pa, _, _ := startNode(t, ns.URL())
	pb, _, _ := startNode(t, ns.URL())
	stores := []interface {
		Incr(string, int64) (int64, error)
	}{pa.Store(), pb.Store()}
	const workers, each = 8, 50
	var (
		mu   sync.Mutex
		sums []int64
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for range each {
				n, err := stores[w%2].Incr("hits", 1)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				sums = append(sums, n)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	sort.Slice(sums, func(i, j int) bool { return sums[i] < sums[j] })
	for i, n := range sums {
		if n != int64(i+1) {
			t.Fatalf("sum #%d is %d, want %d: every sum from 1 to %d once", i, n, i+1, workers*each)
		}
	}
	if len(sums) != workers*each {
		t.Fatalf("%d sums, want %d", len(sums), workers*each)
	}
}
