package luachan_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runLuachanTest runs `luachan test args...` and returns stdout, stderr and the exit code.
func runLuachanTest(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"test"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("luachan test: %v", err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// TestScriptTestsOfExamples runs the examples' *_test.lua through the real binary (SPEC
// section 8): this is how `go test ./...` runs the script tests.
func TestScriptTestsOfExamples(t *testing.T) {
	out, errOut, code := runLuachanTest(t, examplesDir)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if last := lines[len(lines)-1]; !regexp.MustCompile(`^[1-9][0-9]* passed, 0 failed$`).MatchString(last) {
		t.Errorf("last line %q, want \"N passed, 0 failed\"\n%s", last, out)
	}
	for _, l := range lines[:len(lines)-1] {
		if !strings.HasPrefix(l, "ok   ") {
			t.Errorf("line %q is no ok", l)
		}
	}
}

// brokenTest expects what rooms.lua does not do.
const brokenTest = `local t = require("luachan.test")
return {
  test_typing_reaches_the_typist = function()
    local ch = t.join(t.connect(), "rooms:1", { user = "alice" })
    t.push(ch, "typing", { uid = "alice" })
    t.assert_push(ch, "typing", { uid = "alice" })
  end,
  test_errors = function() error("boom") end,
  test_spins = function() while true do end end,
}
`

// TestScriptTestsFail: failing tests exit 1, naming file:line and expected against got;
// an error and an endless loop are failures, not hangs.
func TestScriptTestsFail(t *testing.T) {
	dir := examplesPlus(t, map[string]string{"broken_test.lua": brokenTest})
	out, errOut, code := runLuachanTest(t, dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"FAIL broken_test.lua test_typing_reaches_the_typist\n" +
			`broken_test.lua:6: assert_push: expected "typing" {"uid":"alice"} on rooms:1, got "user:joined" {"user_id":"alice"}` + "\n",
		"FAIL broken_test.lua test_errors\nbroken_test.lua:8: boom\n",
		"FAIL broken_test.lua test_spins\nbroken_test.lua:9: test_spins ran out of time",
		" passed, 3 failed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestScriptTestsNoFolder: a folder that is not there is a usage error, said in one line.
func TestScriptTestsNoFolder(t *testing.T) {
	out, errOut, code := runLuachanTest(t, filepath.Join(t.TempDir(), "missing"))
	if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "missing") {
		t.Errorf("exit %d, stdout %q, stderr %q; want 2 and one line naming the folder", code, out, errOut)
	}
}

// TestScriptTestsArguments: the folder is DIR, or -scripts (as the server's flag), and flags
// may come after DIR.
func TestScriptTestsArguments(t *testing.T) {
	for _, args := range [][]string{
		{"-scripts", examplesDir},
		{examplesDir, "-log-level", "error"},
	} {
		out, errOut, code := runLuachanTest(t, args...)
		if code != 0 || !regexp.MustCompile(`\n[1-9][0-9]* passed, 0 failed\n$`).MatchString(out) {
			t.Errorf("luachan test %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
}
