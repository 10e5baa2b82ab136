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
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
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
	// jsSecret is the -secret of the LUACHAN_URL_SECRET server.
	jsSecret = "js-test-secret-0123456789"
	// jsAPIKey is the HTTP API key of the JS tests' server (history.test.mjs broadcasts through it).
	jsAPIKey = "js-test-api-key"
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
	s := startServer(t, open, "-api-key", jsAPIKey)
	secret := startServer(t, examplesPlus(t, map[string]string{"whoami.lua": whoamiLua}), "-secret", jsSecret)
	// Two nodes sharing a Redis, for history across nodes (history.test.mjs).
	pair := startNodes(t, 2, open, startRedis(t).url(), "-api-key", jsAPIKey)
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = jsDir
	cmd.Env = append(os.Environ(),
		"LUACHAN_URL=ws://"+s.addr+"/socket",
		"LUACHAN_HTTP=http://"+s.addr,
		"LUACHAN_API_KEY="+jsAPIKey,
		"LUACHAN_URL_SECRET=ws://"+secret.addr+"/socket",
		"LUACHAN_SECRET="+jsSecret,
		"LUACHAN_NODES=ws://"+pair[0].addr+"/socket ws://"+pair[1].addr+"/socket",
		"LUACHAN_NODES_HTTP=http://"+pair[0].addr+" http://"+pair[1].addr,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %v in %s: %v\n%s", args, jsDir, err, out)
	}
	t.Logf("node --test output:\n%s", out)
}

// installJSDeps runs `npm ci` in jsDir once per test binary, unless node_modules was
// installed from the same package-lock.json (a stamp in node_modules records its hash),
// so a lock file that gained a package is never answered by a stale node_modules.
func installJSDeps(tb testing.TB) {
	tb.Helper()
	jsDepsOnce.Do(func() { jsDepsErr = npmCI() })
	if jsDepsErr != nil {
		tb.Fatal(jsDepsErr)
	}
}

var (
	jsDepsOnce sync.Once
	jsDepsErr  error
)

// npmCI is installJSDeps' work.
func npmCI() error {
	lock, err := os.ReadFile(filepath.Join(jsDir, "package-lock.json"))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(jsDir, "node_modules", ".luachan-lock-sha256")
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("npm is required to install the JS clients into %s: %v", jsDir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), npmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = jsDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s: %v\n%s", jsDir, err, out)
	}
	return os.WriteFile(stamp, []byte(want), 0o644)
}
