package main

// The servers under test: luachan started from -server with the bench
// scripts, a luachan already running at -addr, or the in-tool ceiling
// server started as a child process, so /proc measures both the same way.

import (
	"bufio"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// startWait bounds how long a server may take to print its address.
	startWait = 15 * time.Second
	// stopWait bounds a server's drain after SIGTERM before it is killed.
	stopWait = 12 * time.Second
	// logTail is how many of a server's last log lines an error quotes.
	logTail = 12
	// maxWarnLines is how many warn lines a report quotes.
	maxWarnLines = 3
)

//go:embed scripts/*.lua
var benchScripts embed.FS

// writeScripts copies the bench channel scripts into a new folder in dir.
func writeScripts(dir string) (string, error) {
	out, err := os.MkdirTemp(dir, "luachan-bench-scripts-")
	if err != nil {
		return "", err
	}
	err = fs.WalkDir(benchScripts, "scripts", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := benchScripts.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(out, filepath.Base(path)), b, 0o644)
	})
	return out, err
}

// server is one server under test.
type server struct {
	name string
	addr string // host:port
	pid  int    // -1 when unknown: no CPU or RSS figures
	cmd  *exec.Cmd

	mu        sync.Mutex // guards tail, warnings and firstWarn
	tail      []string
	warnings  int
	firstWarn []string
	exited    chan struct{} // closed when the log ends (the process is gone)
}

// startServer runs argv (a luachan, or this tool's ceiling-server) and waits
// for its "msg=listening addr=HOST:PORT" log line.
func startServer(ctx context.Context, name string, argv []string) (*server, error) {
	s := &server{name: name, exited: make(chan struct{})}
	s.cmd = exec.Command(argv[0], argv[1:]...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: starting %s: %w", name, err)
	}
	s.pid = s.cmd.Process.Pid
	addrCh := make(chan string, 1)
	go s.readLog(stderr, addrCh)
	t := time.NewTimer(startWait)
	defer t.Stop()
	select {
	case s.addr = <-addrCh:
		return s, nil
	case <-s.exited:
		s.cmd.Wait()
		return nil, fmt.Errorf("bench: %s exited at start:\n%s", name, s.logTail())
	case <-t.C:
	case <-ctx.Done():
	}
	s.stop()
	return nil, fmt.Errorf("bench: %s printed no listening address within %v:\n%s", name, startWait, s.logTail())
}

// readLog drains the server's log, finds its address and keeps the tail.
func (s *server) readLog(r io.Reader, addr chan<- string) {
	defer close(s.exited)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "msg=listening") {
			for _, f := range strings.Fields(line) {
				if a, ok := strings.CutPrefix(f, "addr="); ok {
					select {
					case addr <- a:
					default:
					}
				}
			}
		}
		s.mu.Lock()
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			s.warnings++
			if len(s.firstWarn) < maxWarnLines {
				s.firstWarn = append(s.firstWarn, line)
			}
		}
		s.tail = append(s.tail, line)
		if len(s.tail) > logTail {
			s.tail = s.tail[1:]
		}
		s.mu.Unlock()
	}
}

func (s *server) logTail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "  " + strings.Join(s.tail, "\n  ")
}

// noteWarnings adds the count of warn and error lines the server logged,
// and the first few, to a report's extras.
func (s *server) noteWarnings(extra map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	extra["server_warn"] = s.warnings
	if len(s.firstWarn) > 0 {
		extra["server_warn_first"] = append([]string(nil), s.firstWarn...)
	}
}

// stop drains the server with SIGTERM, killing it if it takes too long.
func (s *server) stop() error {
	if s.cmd == nil {
		return nil
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() {
		<-s.exited
		done <- s.cmd.Wait()
	}()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("bench: %s: %v:\n%s", s.name, err, s.logTail())
		}
		return err
	case <-time.After(stopWait):
		s.cmd.Process.Kill()
		<-done
		return fmt.Errorf("bench: %s did not stop within %v after SIGTERM; killed", s.name, stopWait)
	}
}

// targetKinds are the servers a run may measure.
var targetKinds = []string{"ceiling", "luachan", "intercept"}

// topicFor is the topic a mode's clients join on a target.
func topicFor(target, mode string) string {
	if target == "intercept" {
		return "bench_edit:" + mode
	}
	return "bench:" + mode
}

// launch starts (or, with -addr, adopts) the server for one target.
func launch(ctx context.Context, cfg *config, target string) (*server, error) {
	if target == "ceiling" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("bench: cannot find own executable for the ceiling server: %w", err)
		}
		return startServer(ctx, "ceiling", []string{exe, "ceiling-server", "-addr", "127.0.0.1:0"})
	}
	if cfg.addr != "" {
		return &server{name: target, addr: cfg.addr, pid: cfg.pid, exited: make(chan struct{})}, nil
	}
	argv := append([]string{cfg.server, "-addr", "127.0.0.1:0", "-scripts", cfg.scriptsDir, "-api-key", cfg.apiKey}, cfg.serverArgs...)
	return startServer(ctx, target, argv)
}
