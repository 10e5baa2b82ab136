package luachan_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestTypesCommand runs `luachan types`: LuaLS annotations of the script API on stdout,
// exit 0; an argument is a usage error (exit 2).
func TestTypesCommand(t *testing.T) {
	out, err := exec.Command(binPath, "types").Output()
	if err != nil {
		t.Fatalf("luachan types: %v", err)
	}
	text := string(out)
	for _, want := range []string{"---@meta", "function luachan.broadcast(", "function Socket:push(", "---@class luachan.Channel"} {
		if !strings.Contains(text, want) {
			t.Errorf("luachan types output lacks %q", want)
		}
	}
	cmd := exec.Command(binPath, "types", "extra")
	msg, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 2 {
		t.Errorf("luachan types extra: exit %d, want 2 (err %v)", code, err)
	}
	if !strings.Contains(string(msg), "takes no arguments") {
		t.Errorf("luachan types extra said %q, want it to say it takes no arguments", msg)
	}
}

// TestHelpNamesSubcommands: luachan -h names the test and types commands.
func TestHelpNamesSubcommands(t *testing.T) {
	out, _ := exec.Command(binPath, "-h").CombinedOutput()
	for _, want := range []string{"luachan test [flags] [DIR]", "luachan types"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("luachan -h does not name %q:\n%s", want, out)
		}
	}
}

// TestBadFlagIsOneLine: a bad flag, for the server and for `luachan test`, is exit status 2
// and one line on stderr naming it (the README's promise), not the whole usage.
func TestBadFlagIsOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"-bogus"},
		{"-max-rate", "abc"},
		{"test", "-bogus"},
		{"test", "a", "b"},
	} {
		cmd := exec.Command(binPath, args...)
		msg, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 2 || strings.Count(string(msg), "\n") != 1 {
			t.Errorf("luachan %s: exit %d, output %q; want 2 and one line", strings.Join(args, " "), code, msg)
		}
	}
}
