package main

// The servers under test: luachan started from -server with the bench
// scripts, a luachan already running at -addr, or the in-tool ceiling
// server started as a child process, so /proc measures both the same way.

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// writeScripts copies the bench channel scripts into a new folder in dir. With
// history > 0, bench.lua's topics keep that many broadcasts (-history).
func writeScripts(dir string, history int) (string, error) {
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
		if history > 0 && filepath.Base(path) == "bench.lua" {
			field := fmt.Sprintf(`{ topic = "bench:*", history = { size = %d, ttl = 300 } }`, history)
			b = bytes.Replace(b, []byte(`{ topic = "bench:*" }`), []byte(field), 1)
		}
		return os.WriteFile(filepath.Join(out, filepath.Base(path)), b, 0o644)
	})
	return out, err
}

// server is one server under test. With -nodes, it is the first luachan
// node and peers are the others: the publisher uses this one, subscribers
// are spread over all of them, and their CPU is added up.
type server struct {
	name  string
	addr  string // host:port
	pid   int    // -1 when unknown: no CPU or RSS figures
	cmd   *exec.Cmd
	peers []*server // the other nodes of a multi-node target, stopped with this one

	mu        sync.Mutex // guards tail, warnings and firstWarn
	tail      []string
	warnings  int
	firstWarn []string
	exited    chan struct{} // closed when the log ends (the process is gone)
}

// spawn starts argv and reads its log (stderr, and stdout as well when
// logOnStdout is set: redis-server logs there) into a new server; addr gets
// the address of a "msg=listening addr=HOST:PORT" line.
func spawn(name string, argv []string, logOnStdout bool) (*server, <-chan string, error) {
	s := &server{name: name, exited: make(chan struct{})}
	s.cmd = exec.Command(argv[0], argv[1:]...)
	var log io.Reader
	var err error
	if logOnStdout {
		log, err = s.cmd.StdoutPipe()
		s.cmd.Stderr = s.cmd.Stdout
	} else {
		log, err = s.cmd.StderrPipe()
	}
	if err != nil {
		return nil, nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("bench: starting %s: %w", name, err)
	}
	s.pid = s.cmd.Process.Pid
	addr := make(chan string, 1)
	go s.readLog(log, addr)
	return s, addr, nil
}

// startServer runs argv (a luachan, or this tool's ceiling-server) and waits
// for its "msg=listening addr=HOST:PORT" log line.
func startServer(ctx context.Context, name string, argv []string) (*server, error) {
	s, addrCh, err := spawn(name, argv, false)
	if err != nil {
		return nil, err
	}
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
	s.stopProcess()
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

// nodes is the server and its peers, the first node first.
func (s *server) nodes() []*server {
	return append([]*server{s}, s.peers...)
}

// urls are the WebSocket endpoints of the nodes, the first node first.
func (s *server) urls() []string {
	var urls []string
	for _, n := range s.nodes() {
		urls = append(urls, wsURL(n.addr))
	}
	return urls
}

// startCPU starts measuring the CPU of every node.
func (s *server) startCPU() cpuMeters {
	var ms cpuMeters
	for _, n := range s.nodes() {
		ms = append(ms, startCPU(n.pid))
	}
	return ms
}

// metricsWait bounds one read of a node's /metrics.
const metricsWait = 2 * time.Second

// connsByNode is each node's own count of its open connections (the
// luachan_connections gauge of its /metrics): the spread of the clients as
// the servers see it. Nil when a node does not say.
func (s *server) connsByNode(ctx context.Context) []int {
	hc := &http.Client{Timeout: metricsWait}
	defer hc.CloseIdleConnections()
	var conns []int
	for _, n := range s.nodes() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.addr+"/metrics", nil)
		if err != nil {
			return nil
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil
		}
		v, ok := -1.0, false
		sc := bufio.NewScanner(io.LimitReader(resp.Body, 1<<20))
		for sc.Scan() && !ok {
			if rest, found := strings.CutPrefix(sc.Text(), "luachan_connections "); found {
				v, err = strconv.ParseFloat(strings.TrimSpace(rest), 64)
				ok = err == nil
			}
		}
		resp.Body.Close()
		if !ok {
			return nil
		}
		conns = append(conns, int(v))
	}
	return conns
}

// noteWarnings adds the count of warn and error lines the nodes logged, and
// the first few, to a report's extras.
func (s *server) noteWarnings(extra map[string]any) {
	warnings := 0
	var first []string
	for _, n := range s.nodes() {
		n.mu.Lock()
		warnings += n.warnings
		for _, line := range n.firstWarn {
			if len(first) < maxWarnLines {
				if len(s.peers) > 0 {
					line = n.name + ": " + line
				}
				first = append(first, line)
			}
		}
		n.mu.Unlock()
	}
	extra["server_warn"] = warnings
	if len(first) > 0 {
		extra["server_warn_first"] = first
	}
}

// stop stops every node at once (each may take up to stopWait to drain).
func (s *server) stop() error {
	if len(s.peers) == 0 {
		return s.stopProcess()
	}
	nodes := s.nodes()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.stopProcess()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stopProcess drains the server with SIGTERM, killing it if it takes too long.
func (s *server) stopProcess() error {
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

// launch starts (or, with -addr, adopts) the server for one target: with
// -nodes, that many luachans sharing the Redis at cfg.pubsub.
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
	argv := []string{cfg.server, "-addr", "127.0.0.1:0", "-scripts", cfg.scriptsDir, "-api-key", cfg.apiKey}
	if cfg.pubsub != "" {
		argv = append(argv, "-pubsub", cfg.pubsub)
	}
	argv = append(argv, cfg.serverArgs...)
	if cfg.nodes <= 1 {
		return startServer(ctx, target, argv)
	}
	var nodes []*server
	for i := range cfg.nodes {
		n, err := startServer(ctx, fmt.Sprintf("%s node %d", target, i+1), argv)
		if err != nil {
			if len(nodes) > 0 {
				nodes[0].peers = nodes[1:]
				nodes[0].stop()
			}
			return nil, err
		}
		nodes = append(nodes, n)
	}
	nodes[0].peers = nodes[1:]
	return nodes[0], nil
}
