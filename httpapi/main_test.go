package httpapi_test

import (
	"os"
	"testing"

	"github.com/luachan/luachan/internal/hubtest"
)

// TestMain fails the run if a connection goroutine of the hub outlives the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := hubtest.Leaked("luachan/hub.(*"); leaked != "" {
			os.Stderr.WriteString("leaked hub goroutines:\n" + leaked)
			code = 1
		}
	}
	os.Exit(code)
}
