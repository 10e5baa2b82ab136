package store_test

import (
	"errors"
	"math"
	"testing"

	"github.com/luachan/luachan/store"
)

// The behaviour every store shares is tested against Redis too, in hub/redis.
func TestMemory(t *testing.T) {
	s := store.NewMemory()
	v := []byte(`{"a":1}`)
	if err := s.Set("k", v); err != nil {
		t.Fatal(err)
	}
	v[0] = 'x' // the store keeps its own copy
	got, ok, err := s.Get("k")
	if err != nil || !ok || string(got) != `{"a":1}` {
		t.Fatalf("Get = %s, %v, %v", got, ok, err)
	}
	got[0] = 'x' // and hands out copies
	if again, _, _ := s.Get("k"); string(again) != `{"a":1}` {
		t.Fatalf("Get after changing a result = %s", again)
	}
	if _, err := s.Incr("k", 1); !errors.Is(err, store.ErrNotInteger) {
		t.Fatalf("Incr on an object: %v, want ErrNotInteger", err)
	}
	if n, err := s.Incr("n", math.MaxInt64); n != math.MaxInt64 || err != nil {
		t.Fatalf("Incr = %d, %v", n, err)
	}
	if _, err := s.Incr("n", 1); !errors.Is(err, store.ErrNotInteger) {
		t.Fatalf("Incr past MaxInt64: %v, want ErrNotInteger", err)
	}
	if err := s.Del("n"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Get("n"); ok {
		t.Fatal("Get after Del found the key")
	}
}
