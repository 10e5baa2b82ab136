package scripttest_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/luachan/luachan/scripttest"
)

// examplesDir is the repository's example scripts and their tests.
const examplesDir = "../scripts/examples"

// folder copies the examples' channel scripts (not their tests) into a temp folder and
// adds files.
func folder(tb testing.TB, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	err := filepath.WalkDir(examplesDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.lua") {
			return err
		}
		rel, _ := filepath.Rel(examplesDir, path)
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), src, 0o644)
	})
	if err != nil {
		tb.Fatal(err)
	}
	for name, src := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// run runs the tests in dir and returns the result and the report.
func run(tb testing.TB, dir string) (scripttest.Result, string) {
	tb.Helper()
	var out bytes.Buffer
	res, err := scripttest.Run(context.Background(), scripttest.Config{
		Dir: dir, Out: &out, ScriptTimeout: 50 * time.Millisecond,
	})
	if err != nil {
		tb.Fatalf("Run: %v", err)
	}
	return res, out.String()
}

// TestExamples runs the examples' own script tests: all pass.
func TestExamples(t *testing.T) {
	var out bytes.Buffer
	res, err := scripttest.Run(context.Background(), scripttest.Config{Dir: examplesDir, Out: &out})
	if err != nil || res.Failed != 0 || res.Passed < 19 {
		t.Fatalf("Run: %+v, %v\n%s", res, err, out.String())
	}
	if !strings.HasSuffix(out.String(), fmt.Sprintf("\n%d passed, 0 failed\n", res.Passed)) {
		t.Errorf("report does not end with the count:\n%s", out.String())
	}
}

// failing is a test file whose tests fail each in its own way.
const failing = `local t = require("luachan.test")
local tests = {}
function tests.test_wrong_payload()
  local ch = t.join(t.connect(), "rooms:1", { user = "alice" })
  t.push(ch, "new:msg", { uid = "alice", body = "hi" })
  t.assert_push(ch, "new:msg", { body = "bye" })
end
function tests.test_raises()
  local x = nil
  return x.field
end
function tests.test_spins()
  while true do end
end
function tests.test_channel_spins()
  local ch = t.join(t.connect(), "spin:1")
  t.push(ch, "spin")
end
function tests.test_passes()
  assert(t.join(t.connect(), "rooms:lobby"))
end
return tests
`

// spin is a channel whose handle_in never returns.
const spin = `return {
  topic = "spin:*",
  join = function() return true end,
  handle_in = function() while true do end end,
}`

// TestFailures checks that every way a test can fail is a FAIL line naming the file and
// line and what went wrong, and that none hangs.
func TestFailures(t *testing.T) {
	dir := folder(t, map[string]string{"sub/failing_test.lua": failing, "spin.lua": spin})
	start := time.Now()
	res, out := run(t, dir)
	if res.Passed != 1 || res.Failed != 4 {
		t.Errorf("got %+v, want 1 passed, 4 failed", res)
	}
	for _, want := range []string{
		"ok   sub/failing_test.lua test_passes\n",
		"FAIL sub/failing_test.lua test_wrong_payload\n" +
			`sub/failing_test.lua:6: assert_push: expected "new:msg" {"body":"bye"} on rooms:1, got "user:joined" {"user_id":"alice"}, "new:msg" {`,
		"FAIL sub/failing_test.lua test_raises\nsub/failing_test.lua:10: attempt to index",
		"FAIL sub/failing_test.lua test_spins\nsub/failing_test.lua:13: test_spins ran out of time (CPU budget 50ms)",
		"FAIL sub/failing_test.lua test_channel_spins\nsub/failing_test.lua:17: push \"spin\" on spin:1: the channel crashed",
		"\n1 passed, 4 failed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
}

// TestLoadErrors: a test file that does not compile, returns no tests or misspells the test
// module's functions is one failure naming the file (and line); a function that looks meant
// as a test but is not named test_* is one failure naming it.
func TestLoadErrors(t *testing.T) {
	dir := folder(t, map[string]string{
		"syntax_test.lua": "local t = require('luachan.test')\nreturn { test_x = function() end",
		"empty_test.lua":  "return {}",
		"chan_test.lua":   "require('luachan.test').join()\nreturn {}",
		"typo_test.lua":   "require('luachan.test').assert_pushh()\nreturn {}",
		"names_test.lua": `return { test_runs = function() end, tset_swapped = function() end,
			Test_cased = function() end, TEST_loud = function() end, rest_api = function() end,
			testUser = function() end, tests = function() end, sett_up = function() end }`,
	})
	res, out := run(t, dir)
	if res.Failed != 7 || res.Passed != 1 {
		t.Errorf("got %+v, want 1 passed, 7 failed", res)
	}
	for _, want := range []string{
		"FAIL syntax_test.lua\nsyntax_test.lua:", "FAIL empty_test.lua\nempty_test.lua: no test_* functions",
		"FAIL chan_test.lua\nchan_test.lua:1: luachan.test.join can only be called inside a test_* function",
		"FAIL typo_test.lua\ntypo_test.lua:1: luachan.test.assert_pushh does not exist (did you mean luachan.test.assert_push?)",
		// a function meant as a test but not named test_* would never run: a failure, not silence
		"FAIL names_test.lua Test_cased\nnames_test.lua: Test_cased is not run: tests are the functions named test_*\n",
		"FAIL names_test.lua TEST_loud\n", "FAIL names_test.lua tset_swapped\n", "ok   names_test.lua test_runs\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestTestFilesAreNoChannels: a *_test.lua beside the channels is never loaded as one.
func TestTestFilesAreNoChannels(t *testing.T) {
	dir := folder(t, map[string]string{"x_test.lua": `local t = require("luachan.test")
return { test_not_routed = function()
  local ch, reply = t.join(t.connect(), "x:1")
  assert(ch == nil and reply.reason == "unmatched topic", luachan.json.encode(reply))
end, topic = "x:*", join = function() return true end }`})
	if res, out := run(t, dir); res.Failed != 0 {
		t.Error(out)
	}
}

// TestMissingDir is an error, not a report.
func TestMissingDir(t *testing.T) {
	_, err := scripttest.Run(context.Background(), scripttest.Config{Dir: filepath.Join(t.TempDir(), "nope")})
	if err == nil {
		t.Fatal("no error")
	}
}

// TestTwentyTests times a file of 20 tests (each: connect, join, push, assert); the figure
// is logged, not asserted.
func TestTwentyTests(t *testing.T) {
	var b strings.Builder
	b.WriteString("local t = require('luachan.test')\nlocal tests = {}\n")
	for i := range 20 {
		fmt.Fprintf(&b, `function tests.test_%02d()
  local ch = t.join(t.connect(), "rooms:%d", { user = "u%d" })
  assert(t.push(ch, "new:msg", { uid = "u%d", body = "hi" }) == "ok")
  t.assert_push(ch, "new:msg", { is_editable = true })
end
`, i, i, i, i)
	}
	b.WriteString("return tests\n")
	dir := folder(t, map[string]string{"twenty_test.lua": b.String()})
	start := time.Now()
	res, out := run(t, dir)
	elapsed := time.Since(start)
	if res.Passed != 20 {
		t.Fatalf("got %+v\n%s", res, out)
	}
	t.Logf("20 tests in %v (%v a test)", elapsed, elapsed/20)
}

// TestStoreTTLOnVirtualClock: in `luachan test`, luachan.store's ttls run on the test's
// virtual clock, as socket:after does, so a test moves past an expiry without waiting.
func TestStoreTTLOnVirtualClock(t *testing.T) {
	dir := folder(t, map[string]string{"ttl_test.lua": `local t = require("luachan.test")
return { test_expiry = function()
  local store = luachan.store
  store.set("k", "v", { ttl = 2 })
  assert(store.ttl("k") == 2, tostring(store.ttl("k")))
  t.advance(1500)
  assert(store.get("k") == "v" and store.ttl("k") == 0.5, tostring(store.ttl("k")))
  t.advance(500)
  assert(store.get("k") == nil and store.ttl("k") == nil)
  assert(store.cas("k", nil, "mine", { ttl = 1 }))
  t.advance(1000)
  assert(store.cas("k", nil, "yours"))
  assert(store.ttl("k") == false)
end }`})
	if res, out := run(t, dir); res.Passed != 1 || res.Failed != 0 {
		t.Fatalf("got %+v\n%s", res, out)
	}
}
