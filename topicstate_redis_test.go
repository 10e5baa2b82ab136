package luachan_test

// SPEC section 11 across nodes: with Redis, one node at a time owns a topic's state;
// socket:call from another node is forwarded to it and answered; ticks run on the owner
// only; when the owner is killed, another node takes the topic over from the state last
// saved, and no call is lost without its caller hearing of it, or applied twice.

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// sharedStateLua serves "sh:*": "add" adds one to the topic's counter and records, per
// caller c, the last call s it applied; "get" reads both; "tell" pushes the count to
// the caller and broadcasts it, from handle_call.
const sharedStateLua = `local sh = { topic = "sh:*" }

function sh.init(topic, params) return { n = 0, last = {} } end
function sh.join(topic, payload, socket) return true end

function sh.handle_in(event, payload, socket)
  local r, err = socket:call({ op = event, c = payload.c, s = payload.s })
  if r == nil then return "error", { reason = err } end
  return "ok", r
end

function sh.handle_call(msg, state, socket)
  if msg.op == "add" then
    state.n = state.n + 1
    state.last[msg.c] = msg.s
    return { n = state.n }, state
  elseif msg.op == "tell" then
    socket:push("told", { n = state.n })
    socket:broadcast("heard", { n = state.n })
  end
  return { n = state.n, last = state.last }, state
end

return sh
`

// sharedTickLua serves "st:*": a tick every 100 ms broadcasts the tick count.
const sharedTickLua = `local st = { topic = "st:*", tick = 100 }

function st.init(topic, params) return { ticks = 0 } end
function st.join(topic, payload, socket) return true end

function st.handle_tick(state, topic)
  state.ticks = state.ticks + 1
  luachan.broadcast(topic, "tick", { n = state.ticks })
  return state
end

return st
`

// sharedEndLua serves "se:*": a tick every 50 ms broadcasts the tick count; terminate
// counts its runs in the store, which any event reads for "se:x".
const sharedEndLua = `local se = { topic = "se:*", tick = 50 }

function se.init(topic, params) return { ticks = 0 } end
function se.join(topic, payload, socket) return true end

function se.handle_in(event, payload, socket)
  return "ok", { terms = luachan.store.get("terms:se:x"), last = luachan.store.get("last:se:x") }
end

function se.handle_tick(state, topic)
  state.ticks = state.ticks + 1
  luachan.broadcast(topic, "tick", { n = state.ticks })
  return state
end

function se.terminate(state, topic)
  luachan.store.incr("terms:" .. topic)
  luachan.store.set("last:" .. topic, state.ticks)
end

return se
`

// Log lines of the topic-state lease.
const logLeaseTaken = `msg="topic-state lease taken: this node owns the topic"`

// sharedCallWait bounds how long a test client waits for a call's reply: the server's
// 5 s call timeout and slack.
const sharedCallWait = 10 * time.Second

// sharedCall sends event with payload on topic and returns the reply's status and
// response, waiting up to sharedCallWait; err is a broken or silent connection.
func sharedCall(conn *websocket.Conn, topic, ref, event, payload string) (string, map[string]any, error) {
	return callWithin(conn, topic, ref, event, payload, sharedCallWait)
}

// owner returns the index of the node that took topic's lease, waiting for one.
func owner(tb testing.TB, nodes []*server, topic string) int {
	tb.Helper()
	who := -1
	err := poll(readTimeout, func() error {
		for i, n := range nodes {
			if n.log.count(logLeaseTaken, "topic="+topic) > 0 {
				who = i
				return nil
			}
		}
		return fmt.Errorf("no node took the lease of %s", topic)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return who
}

// TestTopicStateRedisForwarded: two nodes share one state per topic; the calls of the
// node that does not own it are forwarded and answered with the owner's replies; an
// owner that stops hands the topic over, and the state carries on.
func TestTopicStateRedisForwarded(t *testing.T) {
	t.Parallel()
	forwardedAcrossNodes(t, startRedis(t).url())
}

// forwardedAcrossNodes is TestTopicStateRedisForwarded on the Redis at url (one Redis,
// or a Cluster).
func forwardedAcrossNodes(t *testing.T, url string) {
	t.Helper()
	nodes := startNodes(t, 2, writeScripts(t, map[string]string{"sh.lua": sharedStateLua}), url)
	const topic = "sh:fwd"
	clients := []*wsClient{nodes[0].dial(t, "vsn=2.0.0"), nodes[1].dial(t, "vsn=2.0.0")}
	for _, c := range clients {
		c.join(topic, "1", `{}`, `{}`)
	}
	own := owner(t, nodes, topic)
	const each = 50
	for i := 1; i <= 2*each; i++ {
		c := clients[i%2]
		status, r, err := sharedCall(c.conn, topic, fmt.Sprint(i), "add", fmt.Sprintf(`{"c":"c%d","s":%d}`, i%2, i))
		if err != nil || status != "ok" || r["n"] != float64(i) {
			t.Fatalf("add #%d on node %d (owner: node %d): %s %v %v; want ok n=%d", i, i%2, own, status, r, err, i)
		}
	}
	other := 1 - own
	if n := nodes[other].log.count(logLeaseTaken, "topic="+topic); n != 0 {
		t.Fatalf("node %d took the lease of %s too (%d times): two owners", other, topic, n)
	}
	// /metrics: the owner holds the one lease; the other node forwarded its calls.
	mo, mf := scrapeMetrics(t, nodes[own]), scrapeMetrics(t, nodes[other])
	if mo["luachan_topic_states_owned"] != 1 || mf["luachan_topic_states_owned"] != 0 ||
		mf["luachan_calls_forwarded_total"] < each || mo["luachan_calls_forwarded_total"] != 0 ||
		mo["luachan_topic_state_save_failures_total"] != 0 || mf["luachan_call_errors_total"] != 0 {
		t.Fatalf("metrics: owner owned %v forwarded %v save failures %v; other owned %v forwarded %v (want >= %d) call errors %v",
			mo["luachan_topic_states_owned"], mo["luachan_calls_forwarded_total"], mo["luachan_topic_state_save_failures_total"],
			mf["luachan_topic_states_owned"], mf["luachan_calls_forwarded_total"], each, mf["luachan_call_errors_total"])
	}

	// handle_call's socket, for a forwarded call, pushes to the caller and broadcasts
	// as its channel would.
	clients[other].send(fmt.Sprintf(`["1","tell",%q,"tell",{}]`, topic))
	want := map[string]bool{"phx_reply": true, "told": true, "heard": true}
	for len(want) > 0 {
		f := readFrameOf(t, clients[other])
		if f.Event != "phx_reply" && f.N != 2*each {
			t.Fatalf("the caller got %+v, want n %d", f, 2*each)
		}
		delete(want, f.Event)
	}
	if f := readFrameOf(t, clients[own]); f.Event != "heard" || f.N != 2*each {
		t.Fatalf("the owner's client got %+v, want the broadcast heard n=%d", f, 2*each)
	}

	// The owner stops (SIGTERM): it hands the lease over, and the other node carries on
	// from the saved state.
	nodes[own].stop(t)
	nodes[own].log.waitFor(t, readTimeout, `msg="topic-state leases handed over at shutdown`)
	status, r, err := sharedCall(clients[other].conn, topic, "after", "add", `{"c":"x","s":1}`)
	if err != nil || status != "ok" || r["n"] != float64(2*each+1) {
		t.Fatalf("add after the owner stopped: %s %v %v; want ok n=%d", status, r, err, 2*each+1)
	}
	nodes[other].log.waitFor(t, readTimeout, logLeaseTaken, "topic="+topic, "from_saved_state=true")
}

// TestTopicStateRedisTicks: with subscribers on both nodes, only the owner ticks: the
// counts broadcast come one at a time, at the script's rate, not twice as fast.
func TestTopicStateRedisTicks(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2, writeScripts(t, map[string]string{"st.lua": sharedTickLua}), startRedis(t).url())
	const topic = "st:clock"
	a := nodes[0].dial(t, "vsn=2.0.0")
	a.join(topic, "1", `{}`, `{}`)
	b := nodes[1].dial(t, "vsn=2.0.0")
	b.join(topic, "1", `{}`, `{}`)
	owner(t, nodes, topic)
	readTick := func() int {
		t.Helper()
		for {
			f := readFrameOf(t, b)
			if f.Event == "tick" {
				return f.N
			}
		}
	}
	first := readTick()
	start := time.Now()
	const ticks = 20
	for i := 1; i <= ticks; i++ {
		if n := readTick(); n != first+i {
			t.Fatalf("tick %d after %d: got count %d, want %d (two nodes ticking?)", i, first, n, first+i)
		}
	}
	// 20 ticks of 100 ms take 2 s; two tickers would take 1 s.
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Fatalf("%d ticks of 100 ms came in %v: more than one node ticks", ticks, took)
	}
}

// TestTopicStateRedisOwnerFails: clients on both nodes call steadily; mid-stream the
// owner is killed (SIGKILL), or paused (SIGSTOP) until the other node has taken the
// topic over and then resumed, a zombie that still thinks it owns the topic. Either
// way, every call of a live node's clients gets an ok or an error reply, no count is
// replied twice, and the final count is exactly the ok replies plus the calls of a dead
// node's clients that were applied (as the state records) before their replies were lost.
// A killed node that comes back joins as one more node, and the count goes on.
func TestTopicStateRedisOwnerFails(t *testing.T) {
	t.Parallel()
	t.Run("killed", func(t *testing.T) { t.Parallel(); testOwnerFails(t, false) })
	t.Run("paused", func(t *testing.T) { t.Parallel(); testOwnerFails(t, true) })
}

func testOwnerFails(t *testing.T, pause bool) {
	dir, url := writeScripts(t, map[string]string{"sh.lua": sharedStateLua}), startRedis(t).url()
	nodes := startNodes(t, 2, dir, url)
	const topic, perNode, after = "sh:fail", 4, 30
	type caller struct {
		id      string
		node    int
		conn    *wsClient
		oks     []float64
		errs    []string // the reasons of the error replies
		lastSeq int      // the last call sent
		lost    bool     // its last call got no reply (its node died)
	}
	var callers []*caller
	for n := range nodes {
		for i := range perNode {
			c := &caller{id: fmt.Sprintf("n%dc%d", n, i), node: n, conn: nodes[n].dial(t, "vsn=2.0.0")}
			c.conn.join(topic, "1", `{}`, `{}`)
			callers = append(callers, c)
		}
	}
	own := owner(t, nodes, topic)
	survivor := 1 - own

	var mu sync.Mutex
	total := 0 // ok replies so far
	failed := make(chan struct{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			since := 0 // calls answered since the owner failed
			for s := 1; ; s++ {
				select {
				case <-stop:
					return
				default:
				}
				c.lastSeq = s
				status, r, err := sharedCall(c.conn.conn, topic, fmt.Sprint(s), "add", fmt.Sprintf(`{"c":%q,"s":%d}`, c.id, s))
				if err != nil {
					c.lost = true
					return // its node died; or a silent call, checked below
				}
				mu.Lock()
				if status == "ok" {
					c.oks = append(c.oks, r["n"].(float64))
					total++
				} else {
					c.errs = append(c.errs, fmt.Sprint(r["reason"]))
				}
				mu.Unlock()
				select {
				case <-failed:
					if since++; since >= after {
						return
					}
				default:
				}
			}
		}()
	}
	// fail the owner once the stream runs
	if err := poll(sharedCallWait, func() error {
		mu.Lock()
		defer mu.Unlock()
		if total < 200 {
			return fmt.Errorf("%d calls answered", total)
		}
		return nil
	}); err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	failing := nodes[own]
	if pause {
		_ = failing.cmd.Process.Signal(syscall.SIGSTOP)
		nodes[survivor].log.waitFor(t, 2*readTimeout, logLeaseTaken, "topic="+topic)
		_ = failing.cmd.Process.Signal(syscall.SIGCONT)
	} else {
		failing.stopOnce.Do(func() {
			_ = failing.cmd.Process.Signal(syscall.SIGKILL)
			select {
			case <-failing.done:
			case <-time.After(stopTimeout):
				t.Fatalf("luachan did not exit after SIGKILL")
			}
		})
	}
	close(failed)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		close(stop)
		<-done
		t.Fatalf("the live nodes' clients did not make %d calls each within 60 s", after)
	}

	nodes[survivor].log.waitFor(t, readTimeout, logLeaseTaken, "topic="+topic)
	status, r, err := sharedCall(callers[survivor*perNode].conn.conn, topic, "final", "get", `{}`)
	if err != nil || status != "ok" {
		t.Fatalf("get: %s %v %v", status, r, err)
	}
	final := int(r["n"].(float64))
	last, _ := r["last"].(map[string]any)

	seen := map[float64]string{}
	oks, errs, appliedLost := 0, 0, 0
	var reasons []string
	for _, c := range callers {
		for _, n := range c.oks {
			if by, dup := seen[n]; dup {
				t.Errorf("count %v replied to %s and to %s: a call applied twice", n, by, c.id)
			}
			seen[n] = c.id
			if n < 1 || int(n) > final {
				t.Errorf("%s got count %v, outside 1..%d", c.id, n, final)
			}
		}
		oks += len(c.oks)
		errs += len(c.errs)
		reasons = append(reasons, c.errs...)
		if c.lost {
			if c.node == survivor || pause {
				t.Errorf("%s, on a live node, got no reply to call %d", c.id, c.lastSeq)
				continue
			}
			if s, _ := last[c.id].(float64); int(s) == c.lastSeq {
				appliedLost++ // applied and saved, its reply lost with its node
			}
		}
	}
	if final != oks+appliedLost {
		t.Errorf("final count %d, want the %d ok replies plus the %d calls applied whose replies died with their node", final, oks, appliedLost)
	}
	t.Logf("%d ok replies, %d error replies %q, %d calls applied whose replies died with their node; final count %d",
		oks, errs, reasons, appliedLost, final)

	if !pause {
		// The dead node comes back: its calls go to the new owner, and the count goes on.
		back := startServer(t, dir, "-pubsub", url)
		c := back.dial(t, "vsn=2.0.0")
		c.join(topic, "1", `{}`, `{}`)
		status, r, err := sharedCall(c.conn, topic, "back", "add", `{"c":"back","s":1}`)
		if err != nil || status != "ok" || r["n"] != float64(final+1) {
			t.Fatalf("add on the restarted node: %s %v %v; want ok n=%d", status, r, err, final+1)
		}
	}
}

// TestTopicStateRedisEnd: when the owner's last subscriber leaves, it hands the topic
// over after the grace to the node that still has subscribers, which goes on ticking
// from the saved state; terminate runs once, on the last node to let go, with the state.
func TestTopicStateRedisEnd(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2, writeScripts(t, map[string]string{"se.lua": sharedEndLua}), startRedis(t).url())
	const topic = "se:x"
	a := nodes[0].dial(t, "vsn=2.0.0")
	a.join(topic, "1", `{}`, `{}`)
	if owner(t, nodes, topic) != 0 {
		t.Fatal("the first node to join did not take the lease")
	}
	b := nodes[1].dial(t, "vsn=2.0.0")
	b.join(topic, "1", `{}`, `{}`)
	a.send(`["1","2","se:x","phx_leave",{}]`)

	// b's ticks go on, one count after the other, through the hand-over.
	readTick := func() int {
		t.Helper()
		for {
			if f := readFrameOf(t, b); f.Event == "tick" {
				return f.N
			}
		}
	}
	prev := readTick()
	handOver := time.Now().Add(terminateWait)
	for nodes[1].log.count(logLeaseTaken, "topic="+topic) == 0 {
		if time.Now().After(handOver) {
			t.Fatalf("node 1 did not take the topic over within %v of node 0's last subscriber leaving", terminateWait)
		}
		if n := readTick(); n != prev+1 {
			t.Fatalf("tick %d after %d, before the hand-over", n, prev)
		} else {
			prev = n
		}
	}
	nodes[1].log.waitFor(t, readTimeout, logLeaseTaken, "topic="+topic, "from_saved_state=true")
	for range 5 {
		if n := readTick(); n != prev+1 {
			t.Fatalf("tick %d after %d, across the hand-over", n, prev)
		} else {
			prev = n
		}
	}

	// b leaves: after the grace, terminate runs on node 1, once.
	b.send(`["1","2","se:x","phx_leave",{}]`)
	nodes[1].log.waitFor(t, terminateWait, `msg="topic state ended: no node has subscribers left; saved state deleted"`, "topic="+topic)
	checker := nodes[0].dial(t, "vsn=2.0.0")
	checker.join("se:check", "1", `{}`, `{}`)
	var r map[string]any
	err := poll(readTimeout, func() error {
		var status string
		var err error
		if status, r, err = sharedCall(checker.conn, "se:check", "t", "terms", `{}`); err != nil || status != "ok" {
			return fmt.Errorf("terms: %s %v %v", status, r, err)
		}
		if r["terms"] == nil {
			return fmt.Errorf("terminate has not run")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r["terms"] != float64(1) {
		t.Fatalf("terminate ran %v times, want once", r["terms"])
	}
	if last, _ := r["last"].(float64); int(last) < prev {
		t.Fatalf("terminate saw %v ticks, want at least %d", r["last"], prev)
	}
}
