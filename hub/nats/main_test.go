package nats_test

import (
	"os"
	"testing"

	"github.com/luachan/luachan/internal/hubtest"
)

// TestMain fails the run if a goroutine of the adapter or of nats.go outlives the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := hubtest.Leaked("luachan/hub/nats.(*", "nats-io/nats.go"); leaked != "" {
			os.Stderr.WriteString("leaked goroutines:\n" + leaked)
			code = 1
		}
	}
	os.Exit(code)
}
