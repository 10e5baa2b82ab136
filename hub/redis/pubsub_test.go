package redis_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	goredis "github.com/redis/go-redis/v9"

	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/hub/redis"
	"github.com/luachan/luachan/internal/hubtest"
)

// redisServer is a redis-server process of the test's own, on a free loopback port.
type redisServer struct {
	port string
	dir  string

	mu   sync.Mutex // guards cmd, done and out
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	out  bytes.Buffer
}

// startRedis runs redis-server on a free port of 127.0.0.1 (no persistence) and stops
// it when the test ends. Without redis-server on PATH the test is skipped.
func startRedis(tb testing.TB) *redisServer {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		tb.Fatal("redis-server is not installed: the multi-node tests need a real one (apt-get install redis-server; .ci/run installs it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	rs := &redisServer{port: port, dir: tb.TempDir()}
	rs.start(tb)
	tb.Cleanup(func() { rs.kill(tb) })
	return rs
}

// pause stops the server (SIGSTOP: connections stay up, and nothing is answered) until
// resume, or the test's end.
func (rs *redisServer) pause(tb testing.TB) (resume func()) {
	tb.Helper()
	if err := rs.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		tb.Fatal(err)
	}
	resume = func() { _ = rs.cmd.Process.Signal(syscall.SIGCONT) }
	tb.Cleanup(resume)
	return resume
}

// waitsOut requires f, given a context that ends in 100 ms, to wait it out and return its
// deadline.
func waitsOut(tb testing.TB, what string, f func(context.Context) error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := f(ctx); !errors.Is(err, context.DeadlineExceeded) {
		tb.Fatalf("%s: %v; want its context's deadline", what, err)
	}
}

// url returns the server's redis:// URL, database 0.
func (rs *redisServer) url() string { return "redis://127.0.0.1:" + rs.port + "/0" }

// start runs the server (again, on the same port) and waits until it answers PING.
func (rs *redisServer) start(tb testing.TB) {
	tb.Helper()
	rs.mu.Lock()
	cmd := exec.Command("redis-server", "--port", rs.port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", rs.dir)
	cmd.Stdout, cmd.Stderr = &lockedWriter{mu: &rs.mu, w: &rs.out}, &lockedWriter{mu: &rs.mu, w: &rs.out}
	if err := cmd.Start(); err != nil {
		rs.mu.Unlock()
		tb.Fatalf("redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	rs.cmd, rs.done = cmd, done
	rs.mu.Unlock()

	deadline := time.Now().Add(hubtest.WaitTimeout)
	for !rs.answers() {
		select {
		case <-done:
			tb.Fatalf("redis-server exited:\n%s", rs.output())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redis-server did not answer PING within %v:\n%s", hubtest.WaitTimeout, rs.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// answers reports whether the server answers PING.
func (rs *redisServer) answers() bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+rs.port, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return false
	}
	buf := make([]byte, 7)
	_, err = io.ReadFull(c, buf)
	return err == nil && string(buf) == "+PONG\r\n"
}

// kill stops the server abruptly (SIGKILL), as a crash would, and waits for it to exit.
func (rs *redisServer) kill(tb testing.TB) {
	tb.Helper()
	rs.mu.Lock()
	cmd, done := rs.cmd, rs.done
	rs.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(hubtest.WaitTimeout):
		tb.Errorf("redis-server did not exit after SIGKILL")
	}
}

func (rs *redisServer) output() string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.out.String()
}

// client returns a plain client of the server, closed when the test ends.
func (rs *redisServer) client(tb testing.TB) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + rs.port, MaxRetries: -1, DialerRetries: 1})
	tb.Cleanup(func() { c.Close() })
	return c
}

// lockedWriter serialises writes to w with mu.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// redisNode is one luachan node of a test: a Hub behind a real HTTP server, with a
// redis.PubSub.
type redisNode struct {
	*hubtest.Server
	ps *redis.PubSub
}

// startRedisNode dials url, starts a Hub on it and stops both when the test ends.
func startRedisNode(tb testing.TB, url string, cfg redis.Config) *redisNode {
	tb.Helper()
	cfg.URL = url
	if cfg.Logger == nil {
		cfg.Logger = testLogger(tb)
	}
	ps, err := redis.Dial(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("DialRedis: %v", err)
	}
	tb.Cleanup(func() { _ = ps.Close(context.Background()) }) // after the Hub's Close: cleanups run last first
	ts := hubtest.StartServer(tb, hub.Config{PubSub: ps, Logger: cfg.Logger})
	ps.Start(context.Background(), ts.Hub)
	return &redisNode{Server: ts, ps: ps}
}

// testLogger logs to the test's output when -v is given, and nowhere otherwise.
func testLogger(tb testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// bcast returns a broadcast of event on topic with payload {"n": n}.
func bcast(topic, event string, n int) *hub.Broadcast {
	return &hub.Broadcast{Topic: topic, Event: event, Payload: []byte(`{"n":` + strconv.Itoa(n) + `}`)}
}

// expectBroadcast reads c's next frame and requires it to be the broadcast bcast(topic, event, n).
func expectBroadcast(c *hubtest.Client, topic, event string, n int) {
	c.TB.Helper()
	_, data := c.Read()
	want := fmt.Sprintf(`[null,null,%q,%q,{"n":%d}]`, topic, event, n)
	if string(data) != want {
		c.TB.Fatalf("got %s\nwant %s", data, want)
	}
}

// expectQuiet sends a heartbeat and requires its reply to be the next frame: nothing
// else was on its way.
func expectQuiet(c *hubtest.Client, ref string) {
	c.TB.Helper()
	c.SendText(`[null,"` + ref + `","phoenix","heartbeat",{}]`)
	_, data := c.Read()
	want := `[null,"` + ref + `","phoenix","phx_reply",{"status":"ok","response":{}}]`
	if string(data) != want {
		c.TB.Fatalf("got %s\nwant the heartbeat reply %s", data, want)
	}
}

func TestRedisBroadcastReachesEveryNodeOnce(t *testing.T) {
	rs := startRedis(t)
	a := startRedisNode(t, rs.url(), redis.Config{})
	b := startRedisNode(t, rs.url(), redis.Config{})
	const topic = "rooms:lobby"
	ca, cb := a.Dial(t, "vsn=2.0.0"), b.Dial(t, "vsn=2.0.0")
	subA, subB := hubtest.NewSub(ca.Conn), hubtest.NewSub(cb.Conn)
	a.Hub.Subscribe(topic, subA) // waits for Redis to confirm
	b.Hub.Subscribe(topic, subB)

	// Both ways, exactly once, in order per sender: a client reads its own node's
	// broadcasts as they are made, the other node's as Redis brings them, interleaved.
	const n = 300
	for i := range n {
		a.Hub.Broadcast(bcast(topic, "from_a", i))
		b.Hub.Broadcast(bcast(topic, "from_b", i))
	}
	for _, c := range []*hubtest.Client{ca, cb} {
		next := map[string]int{"from_a": 0, "from_b": 0}
		for range 2 * n {
			arr := c.ReadV2()
			event, _ := arr[3].(string)
			want, ok := next[event]
			if !ok || arr[2] != topic || fmt.Sprint(arr[4]) != fmt.Sprintf("map[n:%d]", want) {
				t.Fatalf("got %v, want %s %d next", arr, event, want)
			}
			next[event]++
		}
	}
	expectQuiet(ca, "1")
	expectQuiet(cb, "1")

	// broadcast_from skips the sender on its node only.
	from := bcast(topic, "typing", 1)
	from.From = ca.Conn.Key()
	a.Hub.Broadcast(from)
	expectBroadcast(cb, topic, "typing", 1)
	expectQuiet(ca, "2")
	expectQuiet(cb, "2")

	// Intercepted events go through Deliver on the receiving node, with From 0 there.
	c2 := b.Dial(t, "vsn=2.0.0")
	sub := hubtest.NewSub(c2.Conn, "shaped")
	b.Hub.Subscribe(topic, sub)
	from = bcast(topic, "shaped", 7)
	from.From = ca.Conn.Key()
	a.Hub.Broadcast(from)
	got := hubtest.Recv(t, sub.Delivered, "Deliver on node b")
	if got.Topic != topic || got.Event != "shaped" || string(got.Payload) != `{"n":7}` || got.From != 0 || got.Binary {
		t.Fatalf("delivered %+v", got)
	}
	expectBroadcast(cb, topic, "shaped", 7) // the fast lane for the others
	expectQuiet(c2, "3")
	expectQuiet(ca, "3")
	b.Hub.Unsubscribe(topic, sub)

	// Binary payloads cross as they are.
	payload := []byte{0, 1, 2, 255}
	a.Hub.Broadcast(&hub.Broadcast{Topic: topic, Event: "bin", Payload: payload, Binary: true})
	for _, c := range []*hubtest.Client{ca, cb} {
		typ, data := c.Read()
		want := append([]byte{2, byte(len(topic)), 3}, topic+"bin"...)
		want = append(want, payload...)
		if typ != websocket.BinaryMessage || !bytes.Equal(data, want) {
			t.Fatalf("got %d %q, want binary %q", typ, data, want)
		}
	}

	st := a.ps.Stats()
	if st.Own == 0 || st.Received == 0 || st.Published == 0 || st.Dropped != 0 || !st.Connected || st.Topics != 1 {
		t.Errorf("node a stats: %+v", st)
	}
}

func TestRedisSubscribesWhileTopicHasLocalSubscribers(t *testing.T) {
	rs := startRedis(t)
	rc := rs.client(t)
	a := startRedisNode(t, rs.url(), redis.Config{Prefix: "test:"})
	numsub := func(topic string) int64 {
		n, err := rc.PubSubNumSub(context.Background(), "test:topic:"+topic).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n["test:topic:"+topic]
	}
	c1, c2 := a.Dial(t, "vsn=2.0.0"), a.Dial(t, "vsn=2.0.0")
	s1, s2 := hubtest.NewSub(c1.Conn), hubtest.NewSub(c2.Conn)

	a.Hub.Subscribe("t:1", s1)
	if n := numsub("t:1"); n != 1 { // Subscribe waited for Redis's confirmation
		t.Fatalf("after the first subscriber: %d Redis subscribers, want 1", n)
	}
	a.Hub.Subscribe("t:1", s2)
	a.Hub.Unsubscribe("t:1", s1)
	if n := numsub("t:1"); n != 1 {
		t.Fatalf("with one subscriber left: %d Redis subscribers, want 1", n)
	}
	a.Hub.Unsubscribe("t:1", s2)
	hubtest.WaitFor(t, "the node to leave the topic's channel", func() bool { return numsub("t:1") == 0 })
	if numsub("t:2") != 0 {
		t.Fatal("subscribed to a topic nobody joined")
	}

	// a quick leave and rejoin ends subscribed
	a.Hub.Subscribe("t:3", s1)
	a.Hub.Unsubscribe("t:3", s1)
	a.Hub.Subscribe("t:3", s1)
	if n := numsub("t:3"); n != 1 {
		t.Fatalf("after leave and rejoin: %d Redis subscribers, want 1", n)
	}
	if st := a.ps.Stats(); st.Topics != 1 {
		t.Fatalf("Stats().Topics = %d, want 1", st.Topics)
	}
}

func TestRedisLostAndBack(t *testing.T) {
	rs := startRedis(t)
	a := startRedisNode(t, rs.url(), redis.Config{})
	b := startRedisNode(t, rs.url(), redis.Config{})
	ca, cb := a.Dial(t, "vsn=2.0.0"), b.Dial(t, "vsn=2.0.0")
	a.Hub.Subscribe("t:old", hubtest.NewSub(ca.Conn))
	b.Hub.Subscribe("t:old", hubtest.NewSub(cb.Conn))
	a.Hub.Broadcast(bcast("t:old", "e", 0))
	expectBroadcast(ca, "t:old", "e", 0)
	expectBroadcast(cb, "t:old", "e", 0)

	rs.kill(t)
	hubtest.WaitFor(t, "both nodes to notice", func() bool { return !a.ps.Stats().Connected && !b.ps.Stats().Connected })

	// Local delivery carries on; joining a new topic does not wait for Redis.
	start := time.Now()
	a.Hub.Subscribe("t:new", hubtest.NewSub(ca.Conn))
	b.Hub.Subscribe("t:new", hubtest.NewSub(cb.Conn))
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("subscribing while Redis is down took %v", d)
	}
	start = time.Now()
	for i := range 1000 {
		a.Hub.Broadcast(bcast("t:old", "local", i))
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("1000 broadcasts while Redis is down took %v", d)
	}
	for i := range 1000 {
		expectBroadcast(ca, "t:old", "local", i)
	}
	expectQuiet(cb, "1")

	rs.start(t)
	hubtest.WaitFor(t, "both nodes to resubscribe", func() bool { return a.ps.Stats().Connected && b.ps.Stats().Connected })
	if a.ps.Stats().Reconnects != 1 {
		t.Errorf("Reconnects = %d, want 1", a.ps.Stats().Reconnects)
	}
	// Broadcasts queued during the outage may arrive now, or may have been lost; drain them.
	a.Hub.Broadcast(bcast("t:old", "marker", 0))
	expectBroadcast(ca, "t:old", "marker", 0)
	for {
		_, data := cb.Read()
		if string(data) == `[null,null,"t:old","marker",{"n":0}]` {
			break
		}
	}
	for _, topic := range []string{"t:old", "t:new"} {
		b.Hub.Broadcast(bcast(topic, "again", 1))
		expectBroadcast(ca, topic, "again", 1)
		expectBroadcast(cb, topic, "again", 1)
	}
}

func TestRedisPublishNeverBlocks(t *testing.T) {
	rs := startRedis(t)
	a := startRedisNode(t, rs.url(), redis.Config{QueueLen: 16})
	rs.kill(t)
	hubtest.WaitFor(t, "the node to notice", func() bool { return !a.ps.Stats().Connected })
	start := time.Now()
	const n = 100000
	for i := range n {
		a.Hub.Broadcast(bcast("t", "e", i))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("%d broadcasts with Redis down took %v", n, d)
	}
	st := a.ps.Stats()
	if st.Dropped < n-100 || st.Published != 0 {
		t.Errorf("stats after %d broadcasts with Redis down: %+v", n, st)
	}
}

func TestRedisIgnoresForeignMessages(t *testing.T) {
	rs := startRedis(t)
	a := startRedisNode(t, rs.url(), redis.Config{})
	c := a.Dial(t, "vsn=2.0.0")
	a.Hub.Subscribe("t", hubtest.NewSub(c.Conn))
	rc := rs.client(t)
	for _, junk := range []string{"", "x", "\x01short", "\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\xff"} {
		if err := rc.Publish(context.Background(), "luachan:topic:t", junk).Err(); err != nil {
			t.Fatal(err)
		}
	}
	b := startRedisNode(t, rs.url(), redis.Config{})
	b.Hub.Broadcast(bcast("t", "real", 1))
	expectBroadcast(c, "t", "real", 1)
}

func TestRedisClosePublishesWhatIsQueued(t *testing.T) {
	rs := startRedis(t)
	rc := rs.client(t)
	sub := rc.Subscribe(context.Background(), "luachan:topic:t")
	defer sub.Close()
	if _, err := sub.Receive(context.Background()); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	ps, err := redis.Dial(context.Background(), redis.Config{URL: rs.url(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(hub.Config{Handler: hubtest.NewHandler(), PubSub: ps, Logger: testLogger(t)})
	ps.Start(context.Background(), h)
	const n = 2000
	for i := range n {
		h.Broadcast(bcast("t", "e", i))
	}
	if err := ps.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		m, err := sub.ReceiveMessage(context.Background())
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.HasSuffix([]byte(m.Payload), []byte(`{"n":`+strconv.Itoa(i)+`}`)) {
			t.Fatalf("message %d: %q", i, m.Payload)
		}
	}
	h.Broadcast(bcast("t", "after", 0)) // no panic, no block after Close
	if st := ps.Stats(); st.Published != n || st.Dropped != 1 {
		t.Fatalf("stats: %+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hubtest.WaitTimeout)
	defer cancel()
	h.Close(ctx)
}

// TestRedisFlush: Flush returns once everything queued before it has been published (a
// topic-state lease is let go after it, so that the next owner's broadcasts do not
// overtake this node's); while a broadcast is still on its way, it waits, up to its
// context.
func TestRedisFlush(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	const n = 20000
	a := startRedisNode(t, rs.url(), redis.Config{QueueLen: n})
	ctx := context.Background()
	if err := a.ps.Flush(ctx); err != nil { // nothing queued
		t.Fatal(err)
	}
	for i := range n {
		a.Hub.Broadcast(bcast("t", "e", i))
	}
	if err := a.ps.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := a.ps.Stats(); st.Published != n || st.Dropped != 0 {
		t.Fatalf("stats once Flush returned: %+v; want %d published", st, n)
	}

	// Redis stopped (not gone: the PUBLISH waits for its answer).
	resume := rs.pause(t)
	a.Hub.Broadcast(bcast("t", "e", n))
	waitsOut(t, "Flush with a broadcast waiting for Redis", a.ps.Flush)
	resume()
	if err := a.ps.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := a.ps.Stats(); st.Published != n+1 {
		t.Fatalf("stats once Redis is back and Flush returned: %+v; want %d published", st, n+1)
	}
}

// TestRedisCatchUp: CatchUp returns once Redis has answered a PING on the subscriber
// connection, waits while Redis does not answer, and fails at once when the connection
// is down (nothing sent meanwhile will be delivered).
func TestRedisCatchUp(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	a := startRedisNode(t, rs.url(), redis.Config{})
	ctx := context.Background()
	if err := a.ps.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	// A PubSub never started receives nothing: nothing to wait for, nothing to report.
	idle, err := redis.Dial(ctx, redis.Config{URL: rs.url(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idle.Close(ctx) })
	if err := idle.CatchUp(ctx); err != nil {
		t.Fatalf("CatchUp before Start: %v; want nil", err)
	}

	resume := rs.pause(t)
	waitsOut(t, "CatchUp with Redis stopped", a.ps.CatchUp)
	resume()
	if err := a.ps.CatchUp(ctx); err != nil {
		t.Fatalf("CatchUp once Redis runs again: %v", err)
	}

	rs.kill(t)
	hubtest.WaitFor(t, "the subscriber connection to be down", func() bool { return !a.ps.Stats().Connected })
	if err := a.ps.CatchUp(ctx); err == nil || !strings.Contains(err.Error(), "down") {
		t.Fatalf("CatchUp with the connection down: %v; want an error saying so", err)
	}
}

func TestCheckRedisURL(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"redis://127.0.0.1:6379/0", true},
		{"redis://:secret@redis.internal:6379/2", true},
		{"redis://user:secret@redis.internal/1", true},
		{"rediss://redis.internal:6380/0", true},
		{"redis://localhost", true},
		{"memory", false},
		{"", false},
		{"http://localhost:6379/0", false},
		{"unix:///run/redis.sock", false},
		{"redis:///0", false},
		{"redis://localhost:6379/db", false},
		{"redis://localhost:6379/0?dial_timeout=soon", false},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			err := redis.CheckURL(tc.url)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckRedisURL(%q) = %v, want ok=%v", tc.url, err, tc.ok)
			}
			if err != nil && !errors.Is(err, redis.ErrURL) {
				t.Fatalf("error %v is not ErrRedisURL", err)
			}
		})
	}
	err := redis.CheckURL("redis://:hunter2@localhost:6379/x")
	if err == nil || bytes.Contains([]byte(err.Error()), []byte("hunter2")) {
		t.Fatalf("error %v shows the password", err)
	}
}

func TestDialRedisUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	start := time.Now()
	_, err = redis.Dial(context.Background(), redis.Config{URL: "redis://:hunter2@" + addr + "/0"})
	if err == nil {
		t.Fatal("DialRedis succeeded with nothing listening")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("DialRedis took %v to fail", d)
	}
	if bytes.Contains([]byte(err.Error()), []byte("hunter2")) {
		t.Errorf("error %v shows the password", err)
	}
}

// BenchmarkRedisFanout measures one broadcast to subs subscribers, all on one node
// (nodes=1, no Redis), or split evenly over two nodes on one Redis (nodes=2, published on
// the first), including the writers draining it. subs=2 shows what the trip through
// Redis costs per broadcast. The publisher stays at most
// fanoutWindow broadcasts ahead of the other node, so the queue never overflows and what
// is measured is the sustained rate. Besides ns/op: ns/delivery, the CPU time of this
// process (both nodes) and of redis-server per broadcast.
func BenchmarkRedisFanout(b *testing.B) {
	rs := startRedis(b)
	for _, subs := range []int{2, 100, 10000} {
		for _, nodes := range []int{1, 2} {
			b.Run(fmt.Sprintf("subs=%d/nodes=%d", subs, nodes), func(b *testing.B) {
				benchFanout(b, rs, subs, nodes)
			})
		}
	}
}

// benchPayload is a typical chat message, as in hub's benchmarks.
var benchPayload = []byte(`{"uid":"user:42","body":"hello, everyone in the lobby!"}`)

// fanoutWindow is how far the publisher of BenchmarkRedisFanout may run ahead.
const fanoutWindow = 2048

func benchFanout(b *testing.B, rs *redisServer, subs, nodes int) {
	hubs := make([]*hub.Hub, nodes)
	handlers := make([]hub.Handler, nodes)
	for i := range hubs {
		handlers[i] = hubtest.NewHandler()
		cfg := hub.Config{
			Handler:       handlers[i],
			Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
			MaxQueueBytes: 1 << 30,
		}
		var ps *redis.PubSub
		if nodes > 1 {
			var err error
			ps, err = redis.Dial(context.Background(), redis.Config{URL: rs.url(), Logger: cfg.Logger})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = ps.Close(context.Background()) })
			cfg.PubSub = ps
		}
		h := hub.New(cfg)
		if ps != nil {
			ps.Start(context.Background(), h)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), hubtest.WaitTimeout)
			defer cancel()
			h.Close(ctx)
		})
		hubs[i] = h
	}
	sinks := make([]*hubtest.Sink, subs)
	for i := range sinks {
		h := hubs[i%nodes]
		var c *hub.Conn
		c, sinks[i] = hubtest.AttachSink(b, h, handlers[i%nodes])
		b.Cleanup(func() { c.Close(hub.CloseNormal, "") })
		h.Subscribe("rooms:lobby", hubtest.NewSub(c))
	}
	newB := func() *hub.Broadcast {
		return &hub.Broadcast{Topic: "rooms:lobby", Event: "new:msg", Payload: benchPayload}
	}
	frame, _ := newB().Frame(hub.V2)
	perConn := int64(len(frame) + 2) // + the 2-byte WebSocket header
	// progress is how many broadcasts the slowest subscriber of the last node has had.
	progress := func() int {
		low := int64(-1)
		for i := nodes - 1; i < subs; i += nodes {
			if w := sinks[i].Written(); low < 0 || w < low {
				low = w
			}
		}
		return int(low / perConn)
	}
	drained := func(n int) func() bool {
		return func() bool {
			for _, s := range sinks {
				if s.Written() < perConn*int64(n) {
					return false
				}
			}
			return true
		}
	}
	send := func(sent int) {
		if sent%256 == 0 {
			hubtest.WaitFor(b, "the other node to keep up", func() bool { return progress() >= sent-fanoutWindow })
		}
		hubs[0].Broadcast(newB())
	}
	const warmup = 500
	for i := range warmup {
		send(i)
	}
	hubtest.WaitFor(b, "writers to drain the warm-up", drained(warmup))

	cpu0, redis0 := processCPU(), procCPU(rs)
	b.ReportAllocs()
	b.ResetTimer()
	sent := warmup
	for b.Loop() {
		send(sent)
		sent++
	}
	hubtest.WaitFor(b, "writers to drain", drained(sent))
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	if nodes > 1 {
		b.ReportMetric(float64((procCPU(rs)-redis0).Nanoseconds())/float64(b.N), "redis-cpu-ns/op")
	}
}

// processCPU returns the CPU time this process has used (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU returns the CPU time redis-server has used, from /proc (10 ms ticks).
func procCPU(rs *redisServer) time.Duration {
	rs.mu.Lock()
	pid := rs.cmd.Process.Pid
	rs.mu.Unlock()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// the fields after the command name (in parentheses): utime and stime are 14 and 15
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	if len(fields) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
