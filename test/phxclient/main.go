// Command phxclient drives github.com/nshafer/phx, the Go Phoenix client, for the
// end-to-end test TestPhxClient (phxclient_test.go at the repository root), which runs
// it as a child process: the client has data races of its own that would fail a test
// binary built with -race, so it runs in a binary built without.
//
// It connects to -url at once, then reads one JSON command a line on stdin:
//
//	{"cmd":"join","topic":T,"on":[E,...]}   join T without params, reporting events E
//	{"cmd":"push","topic":T,"event":E,"payload":P}
//	{"cmd":"leave","topic":T}
//
// and writes one JSON event a line on stdout, as the client reports them:
//
//	{"kind":"open"}  {"kind":"heartbeat"}  {"kind":"joined","topic":T,"payload":P}
//	{"kind":"message","topic":T,"event":E,"payload":P}
//	{"kind":"reply","topic":T,"event":E,"status":S,"payload":P}
//	{"kind":"close","topic":T,"payload":P}  {"kind":"error","error":msg}
//
// At the end of stdin it disconnects and exits. The client's own log goes to stderr.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nshafer/phx"
)

// heartbeatAnswered is what the client logs when the server answers its heartbeat,
// the only trace a heartbeat leaves.
const heartbeatAnswered = "Got heartbeat message"

// event is one line of output.
type event struct {
	Kind    string `json:"kind"`
	Topic   string `json:"topic,omitempty"`
	Event   string `json:"event,omitempty"`
	Status  string `json:"status,omitempty"`
	Payload any    `json:"payload,omitempty"`
	Error   string `json:"error,omitempty"`
}

// command is one line of input.
type command struct {
	Cmd     string   `json:"cmd"`
	Topic   string   `json:"topic"`
	Event   string   `json:"event"`
	Payload any      `json:"payload"`
	On      []string `json:"on"`
}

// output writes events, one JSON line each, from any goroutine.
type output struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (o *output) emit(e event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.enc.Encode(e); err != nil {
		log.Fatalf("phxclient: writing stdout: %v", err)
	}
}

// logWatch passes the client's log to stderr and reports each answered heartbeat.
type logWatch struct{ out *output }

func (w logWatch) Write(p []byte) (int, error) {
	for range strings.Count(string(p), heartbeatAnswered) {
		w.out.emit(event{Kind: "heartbeat"})
	}
	return os.Stderr.Write(p)
}

func main() {
	endpoint := flag.String("url", "", "the server's socket URL, ws://host:port/socket")
	heartbeat := flag.Duration("heartbeat", 30*time.Second, "heartbeat interval")
	reconnect := flag.Duration("reconnect", time.Second, "delay between reconnection attempts")
	timeout := flag.Duration("timeout", 5*time.Second, "how long a push waits for its reply")
	flag.Parse()
	u, err := url.Parse(*endpoint)
	if err != nil || *endpoint == "" {
		log.Fatalf("phxclient: -url %q: give the server's ws://host:port/socket URL (%v)", *endpoint, err)
	}

	out := &output{enc: json.NewEncoder(os.Stdout)}
	socket := phx.NewSocket(u)
	socket.HeartbeatInterval = *heartbeat
	socket.ReconnectAfterFunc = func(int) time.Duration { return *reconnect }
	socket.Logger = phx.NewCustomLogger(phx.LogDebug, log.New(logWatch{out}, "phx ", log.Lmicroseconds))
	socket.OnOpen(func() { out.emit(event{Kind: "open"}) })
	if err := socket.Connect(); err != nil {
		log.Fatalf("phxclient: connect: %v", err)
	}
	run(socket, *timeout, os.Stdin, out)
	if err := socket.Disconnect(); err != nil {
		log.Fatalf("phxclient: disconnect: %v", err)
	}
}

const (
	// joinTimeout is how long a join waits for its reply before the client retries.
	joinTimeout = time.Second
	// rejoinAfter is the client's delay before it retries a join.
	rejoinAfter = 50 * time.Millisecond
)

// run carries out the commands read from in until its end.
func run(socket *phx.Socket, timeout time.Duration, in io.Reader, out *output) {
	channels := map[string]*phx.Channel{}
	lines := bufio.NewScanner(in)
	for lines.Scan() {
		var c command
		if err := json.Unmarshal(lines.Bytes(), &c); err != nil {
			out.emit(event{Kind: "error", Error: fmt.Sprintf("bad command %q: %v", lines.Text(), err)})
			continue
		}
		if err := do(socket, channels, timeout, c, out); err != nil {
			out.emit(event{Kind: "error", Error: fmt.Sprintf("%s %s: %v", c.Cmd, c.Topic, err)})
		}
	}
}

// do carries out one command.
func do(socket *phx.Socket, channels map[string]*phx.Channel, timeout time.Duration, c command, out *output) error {
	if c.Cmd == "join" {
		ch := socket.Channel(c.Topic, nil) // no params: the join's payload is null
		// The client binds a push's reply handler after sending it (Push.Send in
		// v0.2.5): a reply that comes back first is dropped, and the join is only
		// retried when its push times out. That takes 10 s by default, more than the
		// test waits; a short timeout and rejoin delay let the client recover from its
		// own race as it would, only sooner. Pushes bind first (see "push" below).
		ch.PushTimeout = joinTimeout
		ch.RejoinAfterFunc = func(int) time.Duration { return rejoinAfter }
		channels[c.Topic] = ch
		ch.OnJoin(func(p any) { out.emit(event{Kind: "joined", Topic: c.Topic, Payload: p}) })
		ch.OnClose(func(p any) { out.emit(event{Kind: "close", Topic: c.Topic, Payload: p}) })
		for _, name := range c.On {
			ch.On(name, func(p any) { out.emit(event{Kind: "message", Topic: c.Topic, Event: name, Payload: p}) })
		}
		_, err := ch.Join()
		return err
	}
	ch := channels[c.Topic]
	if ch == nil {
		return fmt.Errorf("not joined")
	}
	switch c.Cmd {
	case "push":
		// Receive before Send: the client does not synchronise a reply that comes first.
		push := phx.NewPush(ch, c.Event, c.Payload, timeout)
		for _, status := range []string{"ok", "error", "timeout"} {
			push.Receive(status, func(r any) {
				out.emit(event{Kind: "reply", Topic: c.Topic, Event: c.Event, Status: status, Payload: r})
			})
		}
		return push.Send()
	case "leave":
		_, err := ch.Leave()
		return err
	}
	return fmt.Errorf("unknown command (join, push, leave)")
}
