package redis_test

import (
	"os"
	"testing"

	"github.com/luachan/luachan/internal/hubtest"
)

// TestMain fails the run if a goroutine of the hub or of the adapter outlives the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := hubtest.Leaked("luachan/hub.(*", "luachan/hub/redis.(*"); leaked != "" {
			os.Stderr.WriteString("leaked goroutines:\n" + leaked)
			code = 1
		}
	}
	os.Exit(code)
}
