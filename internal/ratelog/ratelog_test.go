package ratelog_test

import (
	"testing"

	"github.com/luachan/luachan/internal/ratelog"
)

func TestLimiter(t *testing.T) {
	var l ratelog.Limiter
	if ok, n := l.Allow(2); !ok || n != 2 {
		t.Fatalf("first Allow(2) = %v, %d; want true, 2", ok, n)
	}
	for range 3 {
		if ok, _ := l.Allow(1); ok {
			t.Fatal("Allow within Every let a second line through")
		}
	}
	l.Reset()
	if ok, n := l.Allow(1); !ok || n != 1 {
		t.Fatalf("Allow after Reset = %v, %d; want true, 1 (Reset forgets what was counted)", ok, n)
	}
}
