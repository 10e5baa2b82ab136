// Package natstest runs a real nats-server, with JetStream, for tests: on a free
// loopback port, its store in the test's temporary folder, killed when the test ends.
// Tests need nats-server on PATH (Debian's nats-server package; .ci/run installs it).
package natstest

import (
	"bytes"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds of the helper's waits.
const (
	readyTimeout = 10 * time.Second // for nats-server to say it is ready
	exitTimeout  = 5 * time.Second  // for nats-server to exit after SIGKILL
	pollEvery    = 10 * time.Millisecond
)

// Server is a nats-server process of the test's own.
type Server struct {
	port string
	dir  string // JetStream's store, kept across Kill and Start
	core bool   // no JetStream

	mu   sync.Mutex // guards cmd, done and out
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited
	out  bytes.Buffer
}

// Start runs nats-server -js on a free port of 127.0.0.1 and kills it when the test ends.
// Without nats-server on PATH the test fails, saying how to install it.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, false)
}

// StartCore is Start without JetStream: core NATS only.
func StartCore(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, true)
}

func start(tb testing.TB, core bool) *Server {
	tb.Helper()
	if _, err := exec.LookPath("nats-server"); err != nil {
		tb.Fatal("nats-server is not installed: the NATS tests need a real one (apt-get install nats-server; .ci/run installs it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	s := &Server{port: port, dir: tb.TempDir(), core: core}
	s.Restart(tb)
	tb.Cleanup(func() {
		s.Kill(tb)
		if tb.Failed() {
			tb.Logf("nats-server output:\n%s", s.Output())
		}
	})
	return s
}

// URL returns the server's nats:// URL.
func (s *Server) URL() string { return "nats://127.0.0.1:" + s.port }

// Restart runs the server (again, on the same port and store) and waits until it is ready.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	s.out.WriteString("--- start\n")
	args := []string{"-a", "127.0.0.1", "-p", s.port}
	if !s.core {
		args = append(args, "-js", "-sd", s.dir)
	}
	cmd := exec.Command("nats-server", args...)
	cmd.Stdout, cmd.Stderr = s, s
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		tb.Fatalf("nats-server: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	start := s.out.Len()
	s.mu.Unlock()

	deadline := time.Now().Add(readyTimeout)
	for {
		s.mu.Lock()
		ready := strings.Contains(s.out.String()[start:], "Server is ready")
		s.mu.Unlock()
		if ready {
			return
		}
		select {
		case <-done:
			tb.Fatalf("nats-server exited:\n%s", s.Output())
		case <-time.After(pollEvery):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("nats-server not ready after %v:\n%s", readyTimeout, s.Output())
		}
	}
}

// Kill stops the server abruptly (SIGKILL), as a crash would, and waits for it to exit.
func (s *Server) Kill(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(exitTimeout):
		tb.Errorf("nats-server did not exit after SIGKILL")
	}
}

// Signal sends sig to the server's process: SIGSTOP makes it hang (it answers nothing),
// SIGCONT lets it go on.
func (s *Server) Signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd.Process.Signal(sig)
}

// Write collects the server's output.
func (s *Server) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.Write(p)
}

// Output is what the server has written so far.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}
