package luachan_test

// The harness that builds the real luachan binary once and runs it, one process per
// test (or group of tests), on 127.0.0.1:0.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// startTimeout bounds how long the server may take to print its listening line.
	startTimeout = 20 * time.Second
	// stopTimeout bounds SIGTERM to exit; the SPEC promises 10 s, a little slack for -race.
	stopTimeout = 15 * time.Second
	// apiKey is the bearer key servers started with withAPI accept.
	apiKey = "test-api-key"
)

// binPath is the luachan binary TestMain built for this run.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "luachan-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "luachan")
	args := []string{"build", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/luachan")
	build := exec.Command("go", args...)
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go %s: %v\n%s", strings.Join(args, " "), err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// inputsOnce runs touchInputs once per test binary, from the first startServer: opens
// are only recorded for the test cache once m.Run has started.
var inputsOnce sync.Once

// touchInputs opens every file the server binary, the scripts and the JS tests are made
// of. go test caches a package's result keyed on the files its tests open; the binary
// is built by a child process the cache cannot see, so without this a changed server
// would be answered with a stale cached pass.
func touchInputs(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".lua", ".mjs", ".json", ".mod", ".sum", ".html", ".css":
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			return f.Close()
		}
		return nil
	})
}

// listeningRE matches the line slog's text handler prints once the server listens.
var listeningRE = regexp.MustCompile(`level=INFO msg=listening addr=(\S+)|"level":"INFO","msg":"listening","addr":"([^"]+)"`)

// server is one running luachan process.
type server struct {
	addr string   // host:port it listens on
	log  *logSink // everything it wrote to stderr and stdout
	cmd  *exec.Cmd
	done chan struct{}
	err  error // cmd.Wait's result, set before done is closed

	stopOnce sync.Once // stop checks the exit once, whoever calls it first
}

// startServer runs luachan on scriptsDir with -log-level debug plus extra flags, waits
// for its listening line, and stops it with SIGTERM when the test ends (expecting exit 0).
func startServer(tb testing.TB, scriptsDir string, extra ...string) *server {
	tb.Helper()
	return startServerEnv(tb, nil, scriptsDir, extra...)
}

// startServerEnv is startServer with env added to the test's own environment for the
// server (GOMEMLIMIT, LUACHAN_* variables).
func startServerEnv(tb testing.TB, env []string, scriptsDir string, extra ...string) *server {
	tb.Helper()
	inputsOnce.Do(func() {
		if err := touchInputs("."); err != nil {
			tb.Fatalf("reading the sources: %v", err)
		}
	})
	args := append([]string{"-addr", "127.0.0.1:0", "-scripts", scriptsDir, "-log-level", "debug"}, extra...)
	s := &server{log: newLogSink(), done: make(chan struct{})}
	s.cmd = exec.Command(binPath, args...)
	s.cmd.Env = append(os.Environ(), env...)
	if raceEnabled && os.Getenv("GORACE") == "" {
		// a race report still fails the test (exit status 66), without the race
		// runtime's default 1 s pause at every exit
		s.cmd.Env = append(s.cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		tb.Fatalf("start luachan: %v", err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	tb.Cleanup(func() {
		s.stop(tb)
		if tb.Failed() {
			tb.Logf("luachan output:\n%s", s.log)
		}
	})

	select {
	case addr := <-s.log.listening:
		s.addr = addr
	case <-s.done:
		tb.Fatalf("luachan %s exited before listening (%v); output:\n%s", strings.Join(args, " "), s.err, s.log)
	case <-time.After(startTimeout):
		tb.Fatalf("luachan did not print its listening line within %v; output:\n%s", startTimeout, s.log)
	}
	return s
}

// stop sends SIGTERM and expects a clean exit; it is safe to call more than once.
func (s *server) stop(tb testing.TB) {
	tb.Helper()
	s.stopOnce.Do(func() { s.terminate(tb) })
}

func (s *server) terminate(tb testing.TB) {
	tb.Helper()
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(stopTimeout):
			_ = s.cmd.Process.Kill()
			<-s.done
			tb.Errorf("luachan did not exit within %v of SIGTERM", stopTimeout)
		}
	}
	if s.err != nil {
		tb.Errorf("luachan exited with %v, want status 0", s.err)
	}
}

// url returns an http URL for path on this server.
func (s *server) url(path string) string { return "http://" + s.addr + path }

// post sends body to path with the given bearer key ("" for none) and returns the
// status code.
func (s *server) post(tb testing.TB, path, key, body string) int {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, s.url(path), strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		tb.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// httpClient is used for every plain HTTP request the tests make.
var httpClient = &http.Client{Timeout: 5 * time.Second}

// logSink collects a process's output and reports the listening address once.
type logSink struct {
	mu        sync.Mutex // guards buf and found
	buf       bytes.Buffer
	found     bool
	listening chan string // receives the listen address once
}

func newLogSink() *logSink { return &logSink{listening: make(chan string, 1)} }

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if !l.found {
		if m := listeningRE.FindSubmatch(l.buf.Bytes()); m != nil {
			l.found = true
			l.listening <- string(m[1]) + string(m[2]) // text or JSON: one of them matched
		}
	}
	return len(p), nil
}

// String returns everything written so far.
func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// count returns how many lines contain every one of subs.
func (l *logSink) count(subs ...string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		if containsAll(line, subs) {
			n++
		}
	}
	return n
}

// waitFor polls until some line contains every one of subs, or fails after timeout.
func (l *logSink) waitFor(tb testing.TB, timeout time.Duration, subs ...string) {
	tb.Helper()
	err := poll(timeout, func() error {
		if l.count(subs...) == 0 {
			return fmt.Errorf("no log line contains all of %q", subs)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// poll calls f every 10 ms until it returns nil or timeout passes, returning f's last
// error (nats-server's checkFor).
func poll(timeout time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-tick.C:
		}
	}
}
