package luachan_test

// The official `phoenix` npm client against the real server: test/js/*.test.mjs run
// under `node --test` with LUACHAN_URL pointing at a server on the example scripts
// plus testLua.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

const (
	// jsDir holds package.json, the lock file and the *.test.mjs files.
	jsDir = "test/js"
	// npmTimeout bounds `npm ci` (it downloads the phoenix and ws packages).
	npmTimeout = 3 * time.Minute
	// nodeTimeout bounds the whole node --test run.
	nodeTimeout = 2 * time.Minute
)

func TestJSClient(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node (Node.js 20 or later) is required to run the phoenix JS client tests in %s: %v", jsDir, err)
	}
	installJSDeps(t)

	files, err := filepath.Glob(filepath.Join(jsDir, "*.test.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.test.mjs files in %s (%v)", jsDir, err)
	}
	args := []string{"--test"}
	for _, f := range files {
		args = append(args, filepath.Base(f))
	}

	s := startServer(t, examplesPlus(t, map[string]string{"test.lua": testLua}))
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = jsDir
	cmd.Env = append(os.Environ(), "LUACHAN_URL=ws://"+s.addr+"/socket")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %v in %s: %v\n%s", args, jsDir, err, out)
	}
	t.Logf("node --test output:\n%s", out)
}

// installJSDeps runs `npm ci` in jsDir unless the phoenix package is already installed.
func installJSDeps(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "phoenix", "package.json")); err == nil {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		tb.Fatalf("npm is required to install the phoenix JS client into %s: %v", jsDir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), npmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = jsDir
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("npm ci in %s: %v\n%s", jsDir, err, out)
	}
}
