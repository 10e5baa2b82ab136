package engine

import (
	"fmt"
	"os"
	"testing"

	"github.com/luachan/luachan/internal/hubtest"
)

// TestMain fails the package's tests when a goroutine of the engine, or of
// the hub, luabind or presence under it, outlives them: every goroutine has
// an owner that must stop it.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := hubtest.Leaked("luachan/engine.", "luachan/hub.", "luachan/luabind.", "luachan/presence."); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked by the engine's tests:\n\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}
