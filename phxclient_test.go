package luachan_test

// github.com/nshafer/phx v0.2.5, the Go Phoenix client, unmodified, against the real
// server on the example scripts. It sends what the official JS client does not: null
// payloads (its heartbeat, and phx_join/phx_leave of a channel made without params) and
// "" for a null join_ref. The client runs in test/phxclient, a child process built
// without -race: the client's own data races would fail this test binary under -race.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// phxHeartbeat is the client's heartbeat interval here, instead of its 30 s default.
	phxHeartbeat = 100 * time.Millisecond
	// phxHeartbeats is how many answered heartbeats the test waits for.
	phxHeartbeats = 3
	// phxReconnect is the client's delay between reconnection attempts.
	phxReconnect = 20 * time.Millisecond
	// phxBuildTimeout bounds building test/phxclient.
	phxBuildTimeout = 3 * time.Minute
	// phxExitTimeout bounds the client's disconnect and exit at the end of its input.
	phxExitTimeout = 10 * time.Second
)

func TestPhxClient(t *testing.T) {
	t.Parallel()
	dir := examplesPlus(t, nil)
	s := startServer(t, dir, "-api-key", apiKey)
	c := startPhxClient(t, "ws://"+s.addr+"/socket")
	c.await("the socket to open", phxEvent{Kind: "open"})

	// heartbeat: ["", ref, "phoenix", "heartbeat", null], answered each time
	c.awaitHeartbeats(phxHeartbeats)

	// join without params: phx_join with a null payload
	c.do(`{"cmd":"join","topic":"rooms:lobby","on":["new:msg"]}`)
	c.await("the join reply", phxEvent{Kind: "joined", Topic: "rooms:lobby", Payload: map[string]any{}})

	// push with a reply, and receive the broadcast it makes
	c.do(`{"cmd":"push","topic":"rooms:lobby","event":"new:msg","payload":{"uid":"gopher","body":"hi"}}`)
	c.await("the push's reply", phxEvent{Kind: "reply", Topic: "rooms:lobby", Event: "new:msg", Status: "ok", Payload: map[string]any{}})
	c.await("the push's broadcast", phxEvent{Kind: "message", Topic: "rooms:lobby", Event: "new:msg",
		Payload: map[string]any{"uid": "gopher", "body": "hi", "is_editable": false}})

	// a broadcast from outside
	if code := s.post(t, "/api/broadcast", apiKey, `{"topic":"rooms:lobby","event":"new:msg","payload":{"uid":"api","body":"hello"}}`); code != 202 {
		t.Fatalf("POST /api/broadcast: %d, want 202", code)
	}
	c.await("the API's broadcast", phxEvent{Kind: "message", Topic: "rooms:lobby", Event: "new:msg",
		Payload: map[string]any{"uid": "api", "body": "hello", "is_editable": false}})

	// restart: the server goes (closing the socket with 1012) and comes back on the
	// same address; the client reconnects and rejoins by itself
	s.stop(t)
	s = startServer(t, dir, "-api-key", apiKey, "-addr", s.addr)
	t.Cleanup(c.stop) // the client goes before this server: cleanups run last first
	c.await("the socket to reopen", phxEvent{Kind: "open"})
	c.await("the rejoin reply", phxEvent{Kind: "joined", Topic: "rooms:lobby", Payload: map[string]any{}})
	c.do(`{"cmd":"push","topic":"rooms:lobby","event":"new:msg","payload":{"uid":"gopher","body":"again"}}`)
	c.await("the reply after the restart", phxEvent{Kind: "reply", Topic: "rooms:lobby", Event: "new:msg", Status: "ok", Payload: map[string]any{}})
	c.await("the broadcast after the restart", phxEvent{Kind: "message", Topic: "rooms:lobby", Event: "new:msg",
		Payload: map[string]any{"uid": "gopher", "body": "again", "is_editable": false}})
	c.awaitHeartbeats(phxHeartbeats)

	// leave: phx_leave with a null payload, answered with phx_reply ok, then phx_close.
	// The client reports the phx_close; it reports a close of its own on the ok reply
	// only when it handles the reply first (it handles frames on goroutines of their
	// own, and a channel the phx_close removed drops the reply), so the reply is checked
	// in its log, which records every frame it reads.
	replies := func() int { return strings.Count(c.stderr.String(), "Topic:rooms:lobby Event:phx_reply") }
	before := replies()
	c.do(`{"cmd":"leave","topic":"rooms:lobby"}`)
	c.await("the server's phx_close", phxEvent{Kind: "close", Topic: "rooms:lobby", Payload: map[string]any{}})
	if err := poll(readTimeout, func() error {
		if replies() == before {
			return errors.New("no phx_reply to the leave in the client's log")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}

	c.stop()
	for _, e := range c.pending {
		if reflect.DeepEqual(e, phxEvent{Kind: "close", Topic: "rooms:lobby", Payload: "leave"}) {
			continue // the client's own close on the leave's reply (see above)
		}
		t.Errorf("unexpected event from the client: %+v", e)
	}
	if n := s.log.count("bad frame"); n != 0 {
		t.Fatalf("the server refused %d frames of the client", n)
	}
}

// phxEvent is one line test/phxclient writes.
type phxEvent struct {
	Kind    string `json:"kind"`
	Topic   string `json:"topic"`
	Event   string `json:"event"`
	Status  string `json:"status"`
	Payload any    `json:"payload"`
	Error   string `json:"error"`
}

// phxClient is a running test/phxclient.
type phxClient struct {
	tb         testing.TB
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	stderr     *logSink
	events     chan phxEvent // closed when its stdout ends
	pending    []phxEvent    // read, not yet awaited; heartbeats are only counted
	heartbeats int
	stopOnce   sync.Once
}

// startPhxClient builds test/phxclient without -race and runs it against url, with a
// quick heartbeat and reconnect. It stops when the test ends.
func startPhxClient(tb testing.TB, url string) *phxClient {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "phxclient")
	ctx, cancel := context.WithTimeout(context.Background(), phxBuildTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./test/phxclient").CombinedOutput(); err != nil {
		tb.Fatalf("go build ./test/phxclient: %v\n%s", err, out)
	}
	c := &phxClient{tb: tb, stderr: newLogSink(), events: make(chan phxEvent, 64)}
	c.cmd = exec.Command(bin, "-url", url, "-heartbeat", phxHeartbeat.String(), "-reconnect", phxReconnect.String())
	c.cmd.Stderr = c.stderr
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		tb.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		tb.Fatalf("start phxclient: %v", err)
	}
	go func() {
		defer close(c.events)
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			var e phxEvent
			if err := json.Unmarshal(lines.Bytes(), &e); err != nil {
				e = phxEvent{Kind: "error", Error: fmt.Sprintf("unreadable line %q: %v", lines.Text(), err)}
			}
			c.events <- e
		}
	}()
	tb.Cleanup(func() {
		c.stop()
		if tb.Failed() {
			tb.Logf("phxclient log:\n%s", c.stderr)
		}
	})
	return c
}

// do sends the client one command (JSON text).
func (c *phxClient) do(command string) {
	c.tb.Helper()
	if _, err := io.WriteString(c.stdin, command+"\n"); err != nil {
		c.tb.Fatalf("phxclient %s: %v", command, err)
	}
}

// await waits for an event equal to want, keeping the others it reads for later awaits:
// the client calls its callbacks in goroutines of their own, in no set order.
func (c *phxClient) await(what string, want phxEvent) {
	c.tb.Helper()
	for i, e := range c.pending {
		if reflect.DeepEqual(e, want) {
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			return
		}
	}
	timeout := time.After(readTimeout)
	for {
		select {
		case e, ok := <-c.events:
			switch {
			case !ok:
				c.tb.Fatalf("phxclient exited while the test waited for %s", what)
			case reflect.DeepEqual(e, want):
				return
			case e.Kind == "error":
				c.tb.Fatalf("phxclient: %s (waiting for %s)", e.Error, what)
			case e.Kind == "heartbeat":
				c.heartbeats++
			default:
				c.pending = append(c.pending, e)
			}
		case <-timeout:
			c.tb.Fatalf("timed out after %v waiting for %s: %+v; seen meanwhile: %+v", readTimeout, what, want, c.pending)
		}
	}
}

// awaitHeartbeats waits until n more heartbeats than so far have been answered.
func (c *phxClient) awaitHeartbeats(n int) {
	c.tb.Helper()
	for want := c.heartbeats + n; c.heartbeats < want; {
		c.await(fmt.Sprintf("%d answered heartbeats (%d so far)", want, c.heartbeats), phxEvent{Kind: "heartbeat"})
		c.heartbeats++
	}
}

// stop ends the client's input, so it disconnects and exits, and reads what it wrote
// until then into pending. It must run while the server is up: the client's
// Disconnect blocks while it tries to reconnect.
func (c *phxClient) stop() {
	c.stopOnce.Do(func() {
		_ = c.stdin.Close()
		timeout := time.After(phxExitTimeout)
		for {
			select {
			case e, ok := <-c.events:
				if !ok {
					if err := c.cmd.Wait(); err != nil {
						c.tb.Errorf("phxclient exited with %v", err)
					}
					return
				}
				if e.Kind != "heartbeat" {
					c.pending = append(c.pending, e)
				}
			case <-timeout:
				_ = c.cmd.Process.Kill()
				_ = c.cmd.Wait()
				c.tb.Errorf("phxclient did not exit within %v of the end of its input", phxExitTimeout)
				return
			}
		}
	})
}
