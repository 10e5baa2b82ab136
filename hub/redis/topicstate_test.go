package redis_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/luachan/luachan/hub/redis"
	"github.com/luachan/luachan/internal/hubtest"
)

// fakeOwner is a topic's state on one test node: a call's msg becomes the state, and
// its reply names the node.
type fakeOwner struct {
	ts    *redis.TopicStates
	topic string
	name  string

	atOwned func() // if set, called as Owned begins

	mu    sync.Mutex
	lease string
	state []byte
	taken int
}

func (f *fakeOwner) Owned(lease string, state []byte) {
	if f.atOwned != nil {
		f.atOwned()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lease, f.state = lease, state
	f.taken++
}

func (f *fakeOwner) Lost(lease string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lease == lease {
		f.lease = ""
	}
}

func (f *fakeOwner) Call(lease, id string, msg []byte, _ time.Duration, done func([]byte, bool, error)) {
	go func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if lease != f.lease {
			done(nil, true, nil)
			return
		}
		reply := []byte(`{"by":"` + f.name + `"}`)
		ok, err := f.ts.Save(context.Background(), f.topic, lease, msg, id, reply)
		if err != nil || !ok {
			done(nil, false, err)
			return
		}
		f.state = msg
		done(reply, false, nil)
	}()
}

func (f *fakeOwner) held() (string, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lease, f.state
}

// startTopicStates dials url and starts topic states on it, closed when the test ends.
func startTopicStates(tb testing.TB, url string) *redis.TopicStates {
	tb.Helper()
	ps, err := redis.Dial(context.Background(), redis.Config{URL: url, Logger: testLogger(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ps.Close(context.Background()) })
	ts := ps.TopicStates(0)
	ts.Start(context.Background())
	tb.Cleanup(func() { _ = ts.Close(context.Background()) })
	return ts
}

func TestTopicStatesOwnerAndForward(t *testing.T) {
	rs := startRedis(t)
	const topic = "g:1"
	a, b := startTopicStates(t, rs.url()), startTopicStates(t, rs.url())
	fa := &fakeOwner{ts: a, topic: topic, name: "a"}
	fb := &fakeOwner{ts: b, topic: topic, name: "b"}
	a.Want(topic, fa)
	b.Want(topic, fb)
	var own, other *fakeOwner
	hubtest.WaitFor(t, "one node to take the lease", func() bool {
		la, _ := fa.held()
		lb, _ := fb.held()
		switch {
		case la != "" && lb != "":
			t.Fatalf("both nodes hold the lease: %s and %s", la, lb)
		case la != "":
			own, other = fa, fb
		case lb != "":
			own, other = fb, fa
		}
		return own != nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The owner runs its own calls.
	if _, here, err := own.ts.Forward(ctx, topic, []byte(`{}`)); !here || err != nil {
		t.Fatalf("Forward on the owner: here %v, err %v; want here", here, err)
	}
	// The other node's call is run by the owner, and answered with its reply.
	reply, here, err := other.ts.Forward(ctx, topic, []byte(`{"x":1}`))
	if err != nil || here || string(reply) != `{"by":"`+own.name+`"}` {
		t.Fatalf("Forward from the other node: %s, here %v, err %v; want the owner's reply", reply, here, err)
	}
	if _, st := own.held(); string(st) != `{"x":1}` {
		t.Fatalf("the owner's state is %s, want the forwarded call's", st)
	}
	// A lease that is not the holder's saves nothing.
	if ok, err := other.ts.Save(ctx, topic, "not-a-lease", []byte(`{"x":2}`), "", nil); ok || err != nil {
		t.Fatalf("Save with a stale lease: ok %v, err %v; want refused", ok, err)
	}

	// The owner stops: the other node takes the topic over from the saved state.
	if err := own.ts.Close(ctx); err != nil {
		t.Fatal(err)
	}
	hubtest.WaitFor(t, "the other node to take the lease over", func() bool {
		l, _ := other.held()
		return l != ""
	})
	if _, st := other.held(); string(st) != `{"x":1}` {
		t.Fatalf("the new owner starts from %s, want the saved {\"x\":1}", st)
	}
}

func TestTopicStatesUnwant(t *testing.T) {
	rs := startRedis(t)
	const topic = "g:2"
	a, b := startTopicStates(t, rs.url()), startTopicStates(t, rs.url())
	fa := &fakeOwner{ts: a, topic: topic, name: "a"}
	a.Want(topic, fa)
	hubtest.WaitFor(t, "the lease", func() bool { l, _ := fa.held(); return l != "" })
	lease, _ := fa.held()
	ctx := context.Background()
	if ok, err := a.Save(ctx, topic, lease, []byte(`{"n":1}`), "", nil); !ok || err != nil {
		t.Fatalf("Save: %v %v", ok, err)
	}

	// With another node wanting the topic, Unwant hands the lease and state over.
	fb := &fakeOwner{ts: b, topic: topic, name: "b"}
	b.Want(topic, fb)
	rc := rs.client(t)
	hubtest.WaitFor(t, "b's lease step (its interest in the topic)", func() bool {
		return rc.ZCard(ctx, "luachan:ts:{"+topic+"}:nodes").Val() == 2
	})
	if last, _, err := a.Unwant(ctx, topic, fa); last || err != nil {
		t.Fatalf("Unwant with b interested: last %v, err %v; want a hand-over", last, err)
	}
	hubtest.WaitFor(t, "b to take the lease", func() bool { l, _ := fb.held(); return l != "" })
	if _, st := fb.held(); string(st) != `{"n":1}` {
		t.Fatalf("b starts from %s, want {\"n\":1}", st)
	}
	// The last node's Unwant ends the topic: the saved state goes.
	if last, saved, err := b.Unwant(ctx, topic, fb); !last || string(saved) != `{"n":1}` || err != nil {
		t.Fatalf("the last Unwant: last %v, saved %s, err %v; want last, with the state it deleted", last, saved, err)
	}
	fa2 := &fakeOwner{ts: a, topic: topic, name: "a"}
	a.Want(topic, fa2)
	hubtest.WaitFor(t, "the lease again", func() bool { l, _ := fa2.held(); return l != "" })
	if _, st := fa2.held(); st != nil {
		t.Fatalf("after the topic ended, the state is %s; want none", st)
	}
}

// TestTopicStatesUnwantInGrace: the owner lets the lease go while another node still wants
// the topic, but only within its own grace, and that node ends before its lease loop takes
// it. That node is then the last to want the topic: its Unwant ends it, deleting the saved
// state and giving it back for terminate, instead of leaving it to come back at the next
// join.
func TestTopicStatesUnwantInGrace(t *testing.T) {
	rs := startRedis(t)
	const topic = "g:grace"
	ctx := context.Background()
	a := startTopicStates(t, rs.url())
	fa := ownWithState(t, a, topic, `{"best":10}`)
	// b wants the topic, and its lease loop never runs (not started): it cannot take the
	// lease a lets go. Its interest is what its loop would have recorded.
	ps, err := redis.Dial(ctx, redis.Config{URL: rs.url(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ps.Close(ctx) })
	b := ps.TopicStates(0)
	fb := &fakeOwner{ts: b, topic: topic, name: "b"}
	b.Want(topic, fb)
	rc := rs.client(t)
	nodes := "luachan:ts:{" + topic + "}:nodes"
	if err := rc.ZAdd(ctx, nodes, goredis.Z{Score: float64(time.Now().Add(time.Minute).UnixMilli()), Member: b.Node()}).Err(); err != nil {
		t.Fatal(err)
	}
	if last, _, err := a.Unwant(ctx, topic, fa); last || err != nil {
		t.Fatalf("the owner's Unwant with b interested: last %v, err %v; want the lease let go to b", last, err)
	}
	last, saved, err := b.Unwant(ctx, topic, fb)
	if !last || string(saved) != `{"best":10}` || err != nil {
		t.Fatalf("b's Unwant, the last node: last %v, saved %s, err %v; want last with the saved state", last, saved, err)
	}
	if n := rc.Exists(ctx, "luachan:ts:{"+topic+"}:state").Val(); n != 0 {
		t.Fatal("the saved state outlived the topic's end")
	}
}

// TestTopicStatesCloseLeavesInterest: a node that shuts down without holding a topic's
// lease leaves its interest set, so that the owner, ending the topic later, is the last to
// want it and ends it, rather than handing the lease to a node that is gone.
func TestTopicStatesCloseLeavesInterest(t *testing.T) {
	rs := startRedis(t)
	const topic = "g:close"
	ctx := context.Background()
	a, b := startTopicStates(t, rs.url()), startTopicStates(t, rs.url())
	fa := ownWithState(t, a, topic, `{"n":2}`)
	b.Want(topic, &fakeOwner{ts: b, topic: topic, name: "b"})
	rc := rs.client(t)
	nodes := "luachan:ts:{" + topic + "}:nodes"
	hubtest.WaitFor(t, "b's interest", func() bool { return rc.ZCard(ctx, nodes).Val() == 2 })
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := rc.ZCard(ctx, nodes).Val(); n != 1 {
		t.Fatalf("%d nodes want the topic after b shut down, want 1 (a)", n)
	}
	if last, saved, err := a.Unwant(ctx, topic, fa); !last || string(saved) != `{"n":2}` || err != nil {
		t.Fatalf("a's Unwant after b shut down: last %v, saved %s, err %v; want last", last, saved, err)
	}
}

// ownWithState has ts take topic's lease, as node "a", and save state under it.
func ownWithState(t *testing.T, ts *redis.TopicStates, topic, state string) *fakeOwner {
	t.Helper()
	f := &fakeOwner{ts: ts, topic: topic, name: "a"}
	ts.Want(topic, f)
	hubtest.WaitFor(t, "the lease", func() bool { l, _ := f.held(); return l != "" })
	lease, _ := f.held()
	if ok, err := ts.Save(context.Background(), topic, lease, []byte(state), "", nil); !ok || err != nil {
		t.Fatalf("Save: %v %v", ok, err)
	}
	return f
}

// replyGate is a TCP proxy to a Redis whose replies can be dropped (muted): a command
// goes through and runs, and its sender never hears back.
type replyGate struct {
	addr    string
	muted   atomic.Bool
	dropped atomic.Int64 // reply bytes dropped
}

// startReplyGate proxies a listener of its own on 127.0.0.1 to target until the test ends.
func startReplyGate(tb testing.TB, target string) *replyGate {
	g := &replyGate{}
	g.addr = startProxy(tb, target, func(c, r net.Conn) {
		go func() { _, _ = io.Copy(r, c); r.Close() }()
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 && g.muted.Load() {
				g.dropped.Add(int64(n))
			} else if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		c.Close()
	})
	return g
}

// startProxy accepts connections on 127.0.0.1 until the test ends, dials target for
// each, and runs pipe on the two in a goroutine of its own. It returns the address.
func startProxy(tb testing.TB, target string, pipe func(client, server net.Conn)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			tb.Cleanup(func() { c.Close(); r.Close() })
			go pipe(c, r)
		}
	}()
	return ln.Addr().String()
}

// holdGate is a TCP proxy to a Redis that can hold back what Redis sends the
// connections that subscribe to one channel (marked: their commands name it), and let
// it through later, in order. It counts the sync PINGs those connections send.
type holdGate struct {
	addr  string
	mark  []byte
	pings atomic.Int64 // sync PINGs sent on marked connections

	mu    sync.Mutex
	hold  bool
	conns map[net.Conn][]byte // marked connections' client sides, with what is held for each
}

// startHoldGate proxies to target, marking the connections whose commands hold mark.
func startHoldGate(tb testing.TB, target, mark string) *holdGate {
	g := &holdGate{mark: []byte(mark), conns: make(map[net.Conn][]byte)}
	g.addr = startProxy(tb, target, func(c, r net.Conn) {
		go g.fromClient(c, r)
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 && !g.pass(c, buf[:n]) {
				break
			}
			if err != nil {
				break
			}
		}
		c.Close()
	})
	return g
}

// fromClient copies c's commands to r, marking c when they name g's channel and
// counting its sync PINGs. A needle split between two reads is found in the carried tail.
func (g *holdGate) fromClient(c, r net.Conn) {
	defer r.Close()
	buf := make([]byte, 32<<10)
	var tail []byte
	for {
		n, err := c.Read(buf)
		if n > 0 {
			seen := append(tail, buf[:n]...)
			g.mu.Lock()
			if _, ok := g.conns[c]; !ok && bytes.Contains(seen, g.mark) {
				g.conns[c] = nil
			}
			_, marked := g.conns[c]
			g.mu.Unlock()
			if marked {
				g.pings.Add(int64(bytes.Count(seen, []byte("sync:")) - bytes.Count(tail, []byte("sync:"))))
			}
			tail = append([]byte(nil), seen[max(0, len(seen)-len(g.mark)):]...)
			if _, werr := r.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// pass writes b to c, or keeps it when c is marked and g holds; false when c failed.
func (g *holdGate) pass(c net.Conn, b []byte) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if held, marked := g.conns[c]; marked && g.hold {
		g.conns[c] = append(held, b...)
		return true
	}
	_, err := c.Write(b) // what was held went out first, in setHold
	return err == nil
}

// held is how many bytes g holds.
func (g *holdGate) held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, b := range g.conns {
		n += len(b)
	}
	return n
}

// setHold starts holding, or stops and lets what was held through.
func (g *holdGate) setHold(on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold = on
	if on {
		return
	}
	for c, b := range g.conns {
		if len(b) > 0 {
			_, _ = c.Write(b)
			g.conns[c] = nil
		}
	}
}

// TestTopicStatesSaveStoredWithoutReply: a save that Redis stored, but whose reply was
// lost, is a save (ok), even once another node holds the lease: that node started from
// the state it stored, so a call it carried was applied and its caller must hear so.
// One that Redis refused, its reply lost too, is an error that says it was not stored.
func TestTopicStatesSaveStoredWithoutReply(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	gate := startReplyGate(t, "127.0.0.1:"+rs.port)
	ctx := context.Background()
	ps, err := redis.Dial(ctx, redis.Config{URL: "redis://" + gate.addr + "/0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ps.Close(ctx) })
	ts := ps.TopicStates(0) // not started: no lease loop; the test holds the lease itself
	direct := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + rs.port})
	t.Cleanup(func() { direct.Close() })
	const topic, lease = "g:lost", "the test's lease"
	key := func(what string) string { return redis.DefaultPrefix + "ts:{" + topic + "}:" + what }
	if err := direct.Set(ctx, key("lease"), lease, 0).Err(); err != nil {
		t.Fatal(err)
	}

	type result struct {
		ok  bool
		err error
	}
	// saveUnheard saves state with Redis's reply dropped, and returns the result once
	// the reply has been dropped and the gate opened again (for the read-back).
	saveUnheard := func(state string, meanwhile func()) result {
		t.Helper()
		gate.muted.Store(true)
		before := gate.dropped.Load()
		done := make(chan result, 1)
		go func() {
			ok, err := ts.Save(ctx, topic, lease, []byte(state), "", nil)
			done <- result{ok, err}
		}()
		hubtest.WaitFor(t, "Redis's reply to be dropped", func() bool { return gate.dropped.Load() > before })
		meanwhile()
		gate.muted.Store(false)
		return <-done
	}

	if ok, err := ts.Save(ctx, topic, lease, []byte(`{"x":0}`), "", nil); !ok || err != nil {
		t.Fatalf("a save: ok %v, err %v", ok, err)
	}
	r := saveUnheard(`{"x":1}`, func() { // another node takes the lease
		if err := direct.Set(ctx, key("lease"), "another node's", 0).Err(); err != nil {
			t.Fatal(err)
		}
	})
	if v, _ := direct.Get(ctx, key("state")).Result(); v != `{"x":1}` {
		t.Fatalf("state %s, want {\"x\":1} stored", v)
	}
	if !r.ok || r.err != nil {
		t.Fatalf("a save stored, its reply lost, the lease gone since: ok %v, err %v; want ok", r.ok, r.err)
	}

	r = saveUnheard(`{"x":2}`, func() {}) // refused: the lease is another node's
	if r.ok || r.err == nil || !strings.Contains(r.err.Error(), "not stored") {
		t.Fatalf("a save refused, its reply lost: ok %v, err %v; want an error saying it was not stored", r.ok, r.err)
	}
	if v, _ := direct.Get(ctx, key("state")).Result(); v != `{"x":1}` {
		t.Fatalf("state %s after the refused save, want {\"x\":1}", v)
	}
}

// TestTopicStatesUnwantAfterQueuedBroadcasts: a node lets a lease go only once what it
// queued for Redis has gone out, so that the next owner's first tick cannot overtake
// the last one's. (Without the wait, Unwant's one round trip is back long before
// 20,000 queued broadcasts are.)
func TestTopicStatesUnwantAfterQueuedBroadcasts(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	const n = 20000
	a := startRedisNode(t, rs.url(), redis.Config{QueueLen: n})
	ts := a.ps.TopicStates(0)
	ts.Start(context.Background())
	t.Cleanup(func() { _ = ts.Close(context.Background()) })
	const topic = "g:handover"
	f := &fakeOwner{ts: ts, topic: topic, name: "a"}
	ts.Want(topic, f)
	hubtest.WaitFor(t, "the lease", func() bool { l, _ := f.held(); return l != "" })
	for i := range n {
		a.Hub.Broadcast(bcast(topic, "tick", i))
	}
	if _, _, err := ts.Unwant(context.Background(), topic, f); err != nil {
		t.Fatal(err)
	}
	if st := a.ps.Stats(); st.Published != n {
		t.Fatalf("stats once the lease was let go: %+v; want all %d published first", st, n)
	}
}

// TestTopicStatesTakeOverAfterLastBroadcasts: a node that takes a lease over delivers
// what the last owner broadcast before it let the lease go, before its owner starts (and
// ticks, delivering to the node's subscribers directly). The gate holds the broadcast on
// b's subscriber connection: without the wait, b's owner starts with it undelivered.
func TestTopicStatesTakeOverAfterLastBroadcasts(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	const topic = "g:takeover"
	ctx := context.Background()
	a := startRedisNode(t, rs.url(), redis.Config{})
	gate := startHoldGate(t, "127.0.0.1:"+rs.port, "topic:"+topic)
	b := startRedisNode(t, "redis://"+gate.addr+"/0", redis.Config{})
	if err := b.ps.Subscribe(topic); err != nil {
		t.Fatal(err)
	}
	tsA, tsB := a.ps.TopicStates(0), b.ps.TopicStates(0)
	for _, ts := range []*redis.TopicStates{tsA, tsB} {
		ts.Start(ctx)
		t.Cleanup(func() { _ = ts.Close(ctx) })
	}
	fa := &fakeOwner{ts: tsA, topic: topic, name: "a"}
	tsA.Want(topic, fa)
	hubtest.WaitFor(t, "a's lease", func() bool { l, _ := fa.held(); return l != "" })
	receivedAtOwned := make(chan uint64, 1)
	fb := &fakeOwner{ts: tsB, topic: topic, name: "b", atOwned: func() { receivedAtOwned <- b.ps.Stats().Received }}
	tsB.Want(topic, fb)
	rc := rs.client(t)
	hubtest.WaitFor(t, "b's lease step (its interest in the topic)", func() bool {
		return rc.ZCard(ctx, "luachan:ts:{"+topic+"}:nodes").Val() == 2
	})

	gate.setHold(true)
	pings := gate.pings.Load()
	a.Hub.Broadcast(bcast(topic, "tick", 1))
	hubtest.WaitFor(t, "Redis to send b the broadcast (held)", func() bool { return gate.held() > 0 })
	if _, _, err := tsA.Unwant(ctx, topic, fa); err != nil {
		t.Fatal(err)
	}
	hubtest.WaitFor(t, "b to take the lease and catch up, or start its owner", func() bool {
		l, _ := fb.held()
		return l != "" || gate.pings.Load() > pings
	})
	gate.setHold(false)
	if got := hubtest.Recv(t, receivedAtOwned, "b's owner to start"); got != 1 {
		t.Fatalf("b's owner started with %d of a's broadcasts delivered on b, want 1: a's last broadcast must come first", got)
	}
}
