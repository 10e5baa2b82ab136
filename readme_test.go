package luachan_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// readmeBlock returns the fenced code block that follows the marker line
// `<!-- quickstart:NAME` in README.md.
func readmeBlock(tb testing.TB, name string) string {
	tb.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		tb.Fatal(err)
	}
	text := string(readme)
	i := strings.Index(text, "<!-- quickstart:"+name+" ")
	if i < 0 {
		tb.Fatalf("README.md has no <!-- quickstart:%s --> block", name)
	}
	rest := text[i:]
	open := strings.Index(rest, "```")
	body := rest[open:]
	body = body[strings.Index(body, "\n")+1:]
	end := strings.Index(body, "```")
	if open < 0 || end < 0 {
		tb.Fatalf("README.md: the quickstart:%s marker is not followed by a code block", name)
	}
	return body[:end]
}

// TestReadmeQuickStartNode runs the README's Node quick start as written, against the
// examples, with only the address changed: it must print the broadcast with the field
// the example's handle_out adds, over a WebSocket (not a LongPoll fallback).
func TestReadmeQuickStartNode(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required: %v", err)
	}
	installJSDeps(t)
	code := readmeBlock(t, "node")
	if !strings.Contains(code, `"ws://localhost:4000/socket"`) {
		t.Fatalf("the quick start no longer connects to ws://localhost:4000/socket:\n%s", code)
	}
	s := startServer(t, "scripts/examples")
	code = strings.ReplaceAll(code, "ws://localhost:4000/socket", "ws://"+s.addr+"/socket")

	// node resolves the imports from the file's folder: write it beside test/js's node_modules.
	path := filepath.Join(jsDir, "readme-quickstart.generated.mjs")
	if err := os.WriteFile(path, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(path)
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Base(path))
	cmd.Dir = jsDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	if want := "new:msg { uid: 'alice', body: 'hi', is_editable: true }"; !strings.Contains(string(out), want) {
		t.Errorf("the quick start printed %q, want a line with %q", out, want)
	}
	if n := s.metricValue(t, "luachan_longpoll_sessions_total"); n != 0 {
		t.Errorf("the quick start opened %v LongPoll sessions, want a WebSocket", n)
	}
}

// TestReadmeQuickStartGo runs the README's Go quick start (the nshafer/phx client) as
// written, against the examples, with only the address changed.
func TestReadmeQuickStartGo(t *testing.T) {
	t.Parallel()
	code := readmeBlock(t, "go")
	if !strings.Contains(code, `"ws://localhost:4000/socket"`) {
		t.Fatalf("the quick start no longer connects to ws://localhost:4000/socket:\n%s", code)
	}
	s := startServer(t, "scripts/examples")
	code = strings.ReplaceAll(code, "ws://localhost:4000/socket", "ws://"+s.addr+"/socket")

	// Inside the module, so go run finds nshafer/phx in go.mod; without -race, as the
	// client has data races of its own (see test/phxclient).
	dir, err := os.MkdirTemp("test", "readme-go-*.generated")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "run", "./"+filepath.ToSlash(dir)).CombinedOutput()
	if err != nil {
		t.Fatalf("go run: %v\n%s", err, out)
	}
	if want := "new:msg map[body:hi is_editable:true uid:alice]"; !strings.Contains(string(out), want) {
		t.Errorf("the quick start printed %q, want a line with %q", out, want)
	}
}
