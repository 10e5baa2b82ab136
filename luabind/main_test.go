package luabind_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if goroutines running luabind or gopher-lua code outlive the tests:
// luabind starts none that should. (Goroutines of the test framework, like the fuzzer's
// signal handler, are not ours to count.)
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		var leaked []string
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if leaked = ourGoroutines(); len(leaked) == 0 || time.Now().After(deadline) {
				break
			}
		}
		if len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "leaked %d goroutines:\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// ourGoroutines returns the stacks of goroutines in luabind or gopher-lua, except this one.
func ourGoroutines() []string {
	buf := make([]byte, 1<<20)
	var ours []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "TestMain") || strings.Contains(g, "ourGoroutines") {
			continue
		}
		if strings.Contains(g, "luachan/luabind") || strings.Contains(g, "yuin/gopher-lua") {
			ours = append(ours, g)
		}
	}
	return ours
}
