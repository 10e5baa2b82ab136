package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/luachan/luachan/store"
)

// BenchmarkMemory: the calls every script makes, on keys without a ttl, with a few keys
// that have one (which should not slow the others).
func BenchmarkMemory(b *testing.B) {
	for _, withTTL := range []int{0, 1000} {
		s := store.NewMemory()
		for i := range withTTL {
			s.SetTTL(fmt.Sprint("ttl", i), []byte(`1`), time.Hour)
		}
		val := []byte(`{"n":1}`)
		s.Set("k", val)
		b.Run("get/ttls="+fmt.Sprint(withTTL), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Get("k")
			}
		})
		b.Run("set/ttls="+fmt.Sprint(withTTL), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Set("k", val)
			}
		})
		b.Run("incr/ttls="+fmt.Sprint(withTTL), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Incr("n", 1)
			}
		})
	}
}
