package luachan_test

// SPEC sections 5 and 12: several luachan nodes on one broker (-pubsub redis:// or
// nats://), and luachan.store shared through it. Every broker test runs once per broker
// (subtests /redis and /nats), each with its own redis-server or nats-server on a free
// loopback port; without them on PATH the tests fail, saying what to install (.ci/run
// installs both).

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// multinodeLua serves "mn:*": join keeps payload.user in assigns; "msg" broadcasts,
// "from" broadcasts from, "global" broadcasts with luachan.broadcast to payload.topic,
// "shaped" broadcasts an intercepted event whose handle_out adds the receiving
// subscriber's user; "incr" and "get" use luachan.store's "hits".
const multinodeLua = `local mn = { topic = "mn:*", intercept = { "shaped" } }

function mn.join(topic, payload, socket)
  socket.assigns.user = payload.user
  return true
end

function mn.handle_in(event, payload, socket)
  if event == "msg" then
    socket:broadcast("msg", payload)
  elseif event == "from" then
    socket:broadcast_from("from", payload)
  elseif event == "global" then
    luachan.broadcast(payload.topic, "global", { by = socket.assigns.user })
  elseif event == "shaped" then
    socket:broadcast("shaped", payload)
  elseif event == "incr" then
    return "ok", { n = luachan.store.incr("hits") }
  elseif event == "get" then
    return "ok", { n = luachan.store.get("hits") }
  end
end

function mn.handle_out(event, payload, socket)
  payload.to = socket.assigns.user
  socket:push(event, payload)
end

return mn
`

// Log messages of the Redis adapter (slog text).
const (
	logRedisLost = `msg="lost Redis: local delivery carries on; reconnecting"`
	logRedisBack = `msg="Redis is back: resubscribed"`
)

// multinodeScripts writes multinodeLua to a fresh folder and returns it.
func multinodeScripts(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mn.lua"), []byte(multinodeLua), 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// startNodes starts n luachan nodes on dir, all with -pubsub url plus extra flags.
func startNodes(tb testing.TB, n int, dir, url string, extra ...string) []*server {
	tb.Helper()
	nodes := make([]*server, n)
	for i := range nodes {
		nodes[i] = startServer(tb, dir, append([]string{"-pubsub", url}, extra...)...)
	}
	return nodes
}

// joinAs connects to s and joins topic as user with join_ref jr.
func joinAs(tb testing.TB, s *server, topic, jr, user string) *wsClient {
	tb.Helper()
	c := s.dial(tb, "vsn=2.0.0")
	c.join(topic, jr, fmt.Sprintf(`{"user":%q}`, user), `{}`)
	return c
}

func TestMultinodeBroadcast(t *testing.T) {
	t.Parallel()
	forEachBroker(t, testMultinodeBroadcast)
}

func testMultinodeBroadcast(t *testing.T, rs testBroker) {
	nodes := startNodes(t, 2, multinodeScripts(t), rs.url(), "-api-key", apiKey)
	n1, n2 := nodes[0], nodes[1]
	const topic = "mn:room"
	ann := joinAs(t, n1, topic, "1", "ann")
	carl := joinAs(t, n1, topic, "1", "carl")
	bob := joinAs(t, n2, topic, "1", "bob")
	everyone := []*wsClient{ann, carl, bob}

	// Broadcasts from either side reach every subscriber exactly once, in order per sender.
	const each = 100
	for i := range each {
		ann.send(fmt.Sprintf(`["1",null,%q,"msg",{"by":"ann","i":%d}]`, topic, i))
		bob.send(fmt.Sprintf(`["1",null,%q,"msg",{"by":"bob","i":%d}]`, topic, i))
	}
	for _, c := range everyone {
		next := map[string]int{"ann": 0, "bob": 0}
		for range 2 * each {
			f := c.readArray()
			p, _ := f[4].(map[string]any)
			by, _ := p["by"].(string)
			want, ok := next[by]
			if !ok || f[0] != nil || f[3] != "msg" || fmt.Sprint(p["i"]) != fmt.Sprint(want) {
				t.Fatalf("got %v, want a msg from ann or bob, ann's #%d and bob's #%d next", f, next["ann"], next["bob"])
			}
			next[by]++
		}
		c.heartbeat("h1") // and nothing more
	}

	// broadcast_from excludes the sending socket, on every node.
	ann.send(`["1","2","mn:room","from",{"x":1}]`)
	carl.expect(`[null,null,"mn:room","from",{"x":1}]`)
	bob.expect(`[null,null,"mn:room","from",{"x":1}]`)
	ann.heartbeat("h2")

	// handle_out runs on the receiving node, with that subscriber's assigns.
	bob.send(`["1","3","mn:room","shaped",{"x":2}]`)
	ann.expect(`["1",null,"mn:room","shaped",{"x":2,"to":"ann"}]`)
	carl.expect(`["1",null,"mn:room","shaped",{"x":2,"to":"carl"}]`)
	bob.expect(`["1",null,"mn:room","shaped",{"x":2,"to":"bob"}]`)

	// luachan.broadcast to another topic, with subscribers on the other node only.
	dave := joinAs(t, n1, "mn:other", "1", "dave")
	bob.send(`["1","4","mn:room","global",{"topic":"mn:other"}]`)
	dave.expect(`[null,null,"mn:other","global",{"by":"bob"}]`)

	// POST /api/broadcast on one node.
	if code := n2.post(t, "/api/broadcast", apiKey, `{"topic":"mn:room","event":"news","payload":{"y":3}}`); code != 202 {
		t.Fatalf("POST /api/broadcast: %d, want 202", code)
	}
	for _, c := range everyone {
		c.expect(`[null,null,"mn:room","news",{"y":3}]`)
		c.heartbeat("h3")
	}
	dave.heartbeat("h3")
}

// TestMultinodeBrokerLostAndBack: the broker killed and started again mid-test; local
// delivery carries on meanwhile, and cross-node delivery resumes.
func TestMultinodeBrokerLostAndBack(t *testing.T) {
	t.Parallel()
	forEachBroker(t, testMultinodeBrokerLostAndBack)
}

func testMultinodeBrokerLostAndBack(t *testing.T, rs testBroker) {
	nodes := startNodes(t, 2, multinodeScripts(t), rs.url())
	n1, n2 := nodes[0], nodes[1]
	const topic = "mn:room"
	ann, carl := joinAs(t, n1, topic, "1", "ann"), joinAs(t, n1, topic, "1", "carl")
	bob, dave := joinAs(t, n2, topic, "1", "bob"), joinAs(t, n2, topic, "1", "dave")
	ann.send(`["1",null,"mn:room","msg",{"before":1}]`)
	for _, c := range []*wsClient{ann, carl, bob, dave} {
		c.expect(`[null,null,"mn:room","msg",{"before":1}]`)
	}

	rs.kill(t)
	n1.log.waitFor(t, readTimeout, rs.lostLog())
	n2.log.waitFor(t, readTimeout, rs.lostLog())

	// Local delivery carries on, on each node.
	ann.send(`["1",null,"mn:room","msg",{"during":"ann"}]`)
	bob.send(`["1",null,"mn:room","msg",{"during":"bob"}]`)
	ann.expect(`[null,null,"mn:room","msg",{"during":"ann"}]`)
	carl.expect(`[null,null,"mn:room","msg",{"during":"ann"}]`)
	bob.expect(`[null,null,"mn:room","msg",{"during":"bob"}]`)
	dave.expect(`[null,null,"mn:room","msg",{"during":"bob"}]`)
	// Joining a topic nobody on the node had does not wait for the broker.
	start := time.Now()
	eve := joinAs(t, n1, "mn:new", "1", "eve")
	fay := joinAs(t, n2, "mn:new", "1", "fay")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("two joins while the broker was down took %v", d)
	}

	rs.start(t)
	n1.log.waitFor(t, 3*readTimeout, rs.backLog())
	n2.log.waitFor(t, 3*readTimeout, rs.backLog())

	// Cross-node delivery resumes, on the old topic and the one joined during the
	// outage. A broadcast made during the outage may or may not arrive late: skipped.
	ann.send(`["1",null,"mn:room","msg",{"after":1}]`)
	eve.send(`["1",null,"mn:new","msg",{"after":2}]`)
	skipOutage := func(c *wsClient, want string) {
		t.Helper()
		for {
			f := c.readWaiting(want)
			if !bytes.Contains(f.data, []byte(`"during"`)) {
				if msg := mismatch(want, f); msg != "" {
					t.Fatalf("got %s, want %s", f, want)
				}
				return
			}
		}
	}
	for _, c := range []*wsClient{ann, carl, bob, dave} {
		skipOutage(c, `[null,null,"mn:room","msg",{"after":1}]`)
	}
	for _, c := range []*wsClient{eve, fay} {
		skipOutage(c, `[null,null,"mn:new","msg",{"after":2}]`)
	}
	fay.send(`["1",null,"mn:new","msg",{"after":3}]`)
	eve.expect(`[null,null,"mn:new","msg",{"after":3}]`)
	fay.expect(`[null,null,"mn:new","msg",{"after":3}]`)
}

// TestMultinodeStoreIncr: luachan.store.incr from 50 clients over two nodes, 100 times
// each, loses nothing, and hands out every sum once.
func TestMultinodeStoreIncr(t *testing.T) {
	t.Parallel()
	forEachBroker(t, testMultinodeStoreIncr)
}

func testMultinodeStoreIncr(t *testing.T, rs testBroker) {
	nodes := startNodes(t, 2, multinodeScripts(t), rs.url(), "-script-timeout", "10s")
	const clients, each = 50, 100
	var (
		mu   sync.Mutex
		sums []int
	)
	t.Run("clients", func(t *testing.T) {
		for i := range clients {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				c := joinAs(t, nodes[i%2], fmt.Sprintf("mn:c%d", i), "1", fmt.Sprint(i))
				for r := range each {
					c.send(fmt.Sprintf(`["1","%d","mn:c%d","incr",{}]`, r, i))
				}
				got := make([]int, 0, each)
				for range each {
					f := c.readArray()
					reply, _ := f[4].(map[string]any)
					resp, _ := reply["response"].(map[string]any)
					var n int
					if _, err := fmt.Sscan(fmt.Sprint(resp["n"]), &n); err != nil || reply["status"] != "ok" {
						t.Fatalf("incr reply %v", f)
					}
					got = append(got, n)
				}
				mu.Lock()
				sums = append(sums, got...)
				mu.Unlock()
			})
		}
	})
	if t.Failed() {
		return
	}
	sort.Ints(sums)
	for i, n := range sums {
		if n != i+1 {
			t.Fatalf("sums handed out: #%d is %d, want %d (every sum from 1 to %d once)", i, n, i+1, clients*each)
		}
	}
	c := joinAs(t, nodes[1], "mn:check", "1", "check")
	c.send(`["1","2","mn:check","get",{}]`)
	c.expect(fmt.Sprintf(`["1","2","mn:check","phx_reply",{"status":"ok","response":{"n":%d}}]`, clients*each))
}

// TestStoreInMemory: without -pubsub, luachan.store lives in the process and needs nothing.
func TestStoreInMemory(t *testing.T) {
	t.Parallel()
	s := startServer(t, multinodeScripts(t))
	a, b := joinAs(t, s, "mn:a", "1", "a"), joinAs(t, s, "mn:b", "1", "b")
	a.send(`["1","2","mn:a","incr",{}]`)
	a.expect(`["1","2","mn:a","phx_reply",{"status":"ok","response":{"n":1}}]`)
	b.send(`["1","2","mn:b","incr",{}]`)
	b.expect(`["1","2","mn:b","phx_reply",{"status":"ok","response":{"n":2}}]`)
}

// TestPubSubFlagRefused: a bad -pubsub, or a broker that does not answer at start, is one
// line on stderr and exit status 2.
func TestPubSubFlagRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // nothing listens there now
	tests := []struct{ name, url, want string }{
		{"not a URL scheme we know", "carrier://127.0.0.1:4222", "bad Redis URL"},
		{"bad database", "redis://127.0.0.1:6379/zero", "invalid database number"},
		{"unreachable", "redis://:hunter2@" + closed + "/0", "cannot reach Redis"},
		{"NATS with a path", "nats://127.0.0.1:4222/0", "bad NATS URL"},
		{"NATS unreachable", "nats://luachan:hunter2@" + closed, "cannot reach NATS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(binPath, "-addr", "127.0.0.1:0", "-scripts", multinodeScripts(t), "-pubsub", tc.url)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error // this subtest's own: the subtests run in parallel
			select {
			case err = <-done:
			case <-time.After(startTimeout):
				cmd.Process.Kill()
				<-done
				t.Fatalf("luachan -pubsub %s still running after %v; output:\n%s", tc.url, startTimeout, &out)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if cmd.ProcessState.ExitCode() != 2 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Fatalf("exit %v, output %q; want status 2 and one line containing %q", err, out.String(), tc.want)
			}
			if strings.Contains(lines[0], "hunter2") {
				t.Fatalf("the password is in %q", lines[0])
			}
		})
	}
}

// redisServer is a redis-server process of the test's own, on a free loopback port.
type redisServer struct {
	port string
	dir  string

	mu   sync.Mutex // guards cmd, done and out
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited
	out  bytes.Buffer
}

// startRedis runs redis-server on a free port of 127.0.0.1 (no persistence) and kills it
// when the test ends. Without redis-server on PATH the test is skipped.
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
	tb.Cleanup(func() {
		rs.kill(tb)
		if tb.Failed() {
			tb.Logf("redis-server output:\n%s", rs.output())
		}
	})
	return rs
}

// url returns the server's redis:// URL, database 0.
func (rs *redisServer) url() string { return "redis://127.0.0.1:" + rs.port + "/0" }

// start runs the server (again, on the same port) and waits until it answers PING.
func (rs *redisServer) start(tb testing.TB) {
	tb.Helper()
	rs.mu.Lock()
	cmd := exec.Command("redis-server", "--port", rs.port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", rs.dir)
	cmd.Stdout, cmd.Stderr = rs, rs
	if err := cmd.Start(); err != nil {
		rs.mu.Unlock()
		tb.Fatalf("redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	rs.cmd, rs.done = cmd, done
	rs.mu.Unlock()

	err := poll(startTimeout, func() error {
		select {
		case <-done:
			tb.Fatalf("redis-server exited:\n%s", rs.output())
		default:
		}
		return rs.ping()
	})
	if err != nil {
		tb.Fatalf("redis-server does not answer: %v\n%s", err, rs.output())
	}
}

// ping sends PING and expects PONG.
func (rs *redisServer) ping() error {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+rs.port, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", buf)
	}
	return nil
}

// kill stops the server abruptly (SIGKILL), as a crash would, and waits for it to exit.
func (rs *redisServer) kill(tb testing.TB) {
	tb.Helper()
	rs.mu.Lock()
	cmd, done := rs.cmd, rs.done
	rs.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(stopTimeout):
		tb.Errorf("redis-server did not exit after SIGKILL")
	}
}

// Write collects the server's output.
func (rs *redisServer) Write(p []byte) (int, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.out.Write(p)
}

func (rs *redisServer) output() string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.out.String()
}
