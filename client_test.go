package luachan_test

// The official `phoenix` npm client against the real server: test/js/*.test.mjs run
// under `node --test` against two servers on the example scripts:
//
//   - LUACHAN_URL: the examples plus testLua, without socket.lua, so every socket
//     connects whatever authToken it brings (client.test.mjs checks how the token
//     travels, not what it is worth).
//   - LUACHAN_URL_SECRET: the examples as shipped, socket.lua included, plus whoamiLua,
//     with -secret LUACHAN_SECRET, so the tests can mint tokens the example socket.lua
//     accepts (connect.test.mjs).

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
	// npmTimeout bounds `npm ci` (it downloads phoenix, ws and @supabase/realtime-js).
	npmTimeout = 3 * time.Minute
	// nodeTimeout bounds the whole node --test run.
	nodeTimeout = 2 * time.Minute
	// jsSecret is the -secret of the LUACHAN_URL_SECRET server.
	jsSecret = "js-test-secret-0123456789"
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

	open := examplesPlus(t, map[string]string{"test.lua": testLua})
	if err := os.Remove(filepath.Join(open, "socket.lua")); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	s := startServer(t, open)
	secret := startServer(t, examplesPlus(t, map[string]string{"whoami.lua": whoamiLua}), "-secret", jsSecret)
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = jsDir
	cmd.Env = append(os.Environ(),
		"LUACHAN_URL=ws://"+s.addr+"/socket",
		"LUACHAN_URL_SECRET=ws://"+secret.addr+"/socket",
		"LUACHAN_SECRET="+jsSecret,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %v in %s: %v\n%s", args, jsDir, err, out)
	}
	t.Logf("node --test output:\n%s", out)
}

// jsPackages are the packages the tests import; installJSDeps checks they are there.
var jsPackages = []string{"phoenix", "ws", "@supabase/realtime-js"}

// installJSDeps runs `npm ci` in jsDir unless every package of jsPackages is installed.
func installJSDeps(tb testing.TB) {
	tb.Helper()
	installed := true
	for _, p := range jsPackages {
		if _, err := os.Stat(filepath.Join(jsDir, "node_modules", filepath.FromSlash(p), "package.json")); err != nil {
			installed = false
		}
	}
	if installed {
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
