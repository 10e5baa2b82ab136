package redis_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/hub/redis"
	"github.com/luachan/luachan/internal/hubtest"
)

// presenceTestTTL makes the heartbeat and the janitor run every 100 ms or so.
const presenceTestTTL = 400 * time.Millisecond

// presenceNode is one node's Presence, recording what it broadcasts.
type presenceNode struct {
	*redis.Presence
	mu   sync.Mutex
	sent []*hub.Broadcast
}

func (n *presenceNode) broadcast(b *hub.Broadcast) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sent = append(n.sent, b)
	return nil
}

func (n *presenceNode) broadcasts() []*hub.Broadcast {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*hub.Broadcast(nil), n.sent...)
}

// startPresenceNode dials url and starts a Presence on it, stopped when the test ends.
func startPresenceNode(tb testing.TB, url string) *presenceNode {
	tb.Helper()
	ps, err := redis.Dial(context.Background(), redis.Config{URL: url, Logger: testLogger(tb)})
	if err != nil {
		tb.Fatalf("DialRedis: %v", err)
	}
	tb.Cleanup(func() { _ = ps.Close(context.Background()) })
	n := &presenceNode{}
	n.Presence = ps.Presence(presenceTestTTL, n.broadcast)
	n.Start(context.Background())
	tb.Cleanup(func() { _ = n.Close(context.Background()) }) // before ps.Close: cleanups run last first
	return n
}

func mustList(tb testing.TB, n *presenceNode, topic string) map[string][]string {
	tb.Helper()
	got, err := n.List(topic)
	if err != nil {
		tb.Fatalf("List(%q): %v", topic, err)
	}
	out := make(map[string][]string, len(got))
	for k, metas := range got {
		for _, m := range metas {
			out[k] = append(out[k], string(m))
		}
	}
	return out
}

func mustPut(tb testing.TB, n *presenceNode, topic, ref, key string) string {
	tb.Helper()
	meta := fmt.Sprintf(`{"phx_ref":%q,"k":%q}`, ref, key)
	if err := n.Put(topic, ref, key, []byte(meta)); err != nil {
		tb.Fatalf("Put: %v", err)
	}
	return meta
}

// presenceWait polls cond every 20 ms until it holds or hubtest.WaitTimeout passes.
func presenceWait(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(hubtest.WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v", what, hubtest.WaitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPresence: each node lists the others' entries and not its own; a node that
// dies has its entries removed by one survivor, which broadcasts their leaves once.
func TestRedisPresence(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	a, b, c := startPresenceNode(t, rs.url()), startPresenceNode(t, rs.url()), startPresenceNode(t, rs.url())

	a1 := mustPut(t, a, "room", "a1", "alice")
	a2 := mustPut(t, a, "room", "a2", "alice")
	mustPut(t, a, "other", "a3", "ann")
	b1 := mustPut(t, b, "room", "b1", "bob")

	if got, want := mustList(t, c, "room"), map[string][]string{"alice": {a1, a2}, "bob": {b1}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("c lists %v, want %v", got, want)
	}
	if got, want := mustList(t, a, "room"), map[string][]string{"bob": {b1}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("a lists %v, want %v (its own are not listed)", got, want)
	}
	if err := a.Del("room", "a2"); err != nil {
		t.Fatal(err)
	}
	if got, want := mustList(t, b, "room"), map[string][]string{"alice": {a1}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("b lists %v after a's Del, want %v", got, want)
	}

	// a dies (its heartbeat goes; the entries stay, as after a crash)
	_ = a.Close(context.Background())
	presenceWait(t, "a's entries removed", func() bool {
		return len(mustList(t, c, "room")["alice"]) == 0 && len(mustList(t, b, "other")) == 0
	})
	// let a few more janitor rounds run: the leaves are broadcast once, by one survivor
	time.Sleep(3 * presenceTestTTL / 4)
	leaves := append(b.broadcasts(), c.broadcasts()...)
	got := map[string]string{}
	for _, l := range leaves {
		if l.Event != "presence_diff" {
			t.Fatalf("broadcast %+v, want presence_diff", l)
		}
		if _, dup := got[l.Topic]; dup {
			t.Fatalf("two leave diffs on %q: %v", l.Topic, leaves)
		}
		got[l.Topic] = string(l.Payload)
	}
	want := map[string]string{
		"room":  `{"joins":{},"leaves":{"alice":{"metas":[` + a1 + `]}}}`,
		"other": `{"joins":{},"leaves":{"ann":{"metas":[{"phx_ref":"a3","k":"ann"}]}}}`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("leave diffs %v, want %v", got, want)
	}
	if got, want := mustList(t, c, "room"), map[string][]string{"bob": {b1}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("c lists %v, want bob only", got)
	}
}

// TestPresenceLapsed: a node whose heartbeat lapsed (Redis unreachable for longer
// than the TTL) is cleaned up by the others, then writes its entries again and
// broadcasts them as joins.
func TestRedisPresenceLapsed(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	a, b := startPresenceNode(t, rs.url()), startPresenceNode(t, rs.url())
	a1 := mustPut(t, a, "room", "a1", "alice")
	rc := rs.client(t)
	hb := "luachan:node:" + a.Node()
	if n, err := rc.Exists(context.Background(), hb).Result(); err != nil || n != 1 {
		t.Fatalf("a's heartbeat %s: %d (%v), want it there", hb, n, err)
	}
	// Take a's heartbeat away until b has reaped a: as if a were cut off from Redis.
	presenceWait(t, "b broadcasts a's leave", func() bool {
		if len(b.broadcasts()) > 0 {
			return true
		}
		rc.Del(context.Background(), hb)
		return false
	})
	if got, want := string(b.broadcasts()[0].Payload), `{"joins":{},"leaves":{"alice":{"metas":[`+a1+`]}}}`; got != want {
		t.Fatalf("b broadcast %s, want %s", got, want)
	}
	// a's next heartbeat finds it lapsed: a writes its entry again and broadcasts its join.
	presenceWait(t, "a's entry back", func() bool {
		return reflect.DeepEqual(mustList(t, b, "room"), map[string][]string{"alice": {a1}})
	})
	presenceWait(t, "a broadcasts the join", func() bool { return len(a.broadcasts()) > 0 })
	time.Sleep(presenceTestTTL / 2)
	if n, err := rc.Exists(context.Background(), hb).Result(); err != nil || n != 1 {
		t.Fatalf("a's heartbeat %s: %d (%v), want it back", hb, n, err)
	}
	// Each time b took a for dead (once, unless the last Del raced with the reap) b
	// broadcast the leave and a, back, the join.
	join := `{"joins":{"alice":{"metas":[` + a1 + `]}},"leaves":{}}`
	leave := `{"joins":{},"leaves":{"alice":{"metas":[` + a1 + `]}}}`
	presenceWait(t, "as many joins as leaves", func() bool { return len(a.broadcasts()) == len(b.broadcasts()) })
	for _, x := range a.broadcasts() {
		if string(x.Payload) != join {
			t.Fatalf("a broadcast %s, want %s", x.Payload, join)
		}
	}
	for _, x := range b.broadcasts() {
		if string(x.Payload) != leave {
			t.Fatalf("b broadcast %s, want %s", x.Payload, leave)
		}
	}
	if got := mustList(t, b, "room"); !reflect.DeepEqual(got, map[string][]string{"alice": {a1}}) {
		t.Fatalf("b lists %v at the end, want alice", got)
	}
}

// TestPresenceOutage: what a node tracks and untracks while Redis is down (or after
// it restarted empty) is in Redis once it is back, and the others are told.
func TestRedisPresenceOutage(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	a, b := startPresenceNode(t, rs.url()), startPresenceNode(t, rs.url())
	a1 := mustPut(t, a, "room", "a1", "alice")
	mustPut(t, a, "room", "a2", "alice")

	rs.kill(t)
	if err := a.Del("room", "a2"); err == nil {
		t.Fatal("Del with Redis down: no error")
	}
	a3 := `{"phx_ref":"a3","k":"ann"}`
	if err := a.Put("room", "a3", "ann", []byte(a3)); err == nil {
		t.Fatal("Put with Redis down: no error")
	}
	rs.start(t) // empty: no persistence

	want := map[string][]string{"alice": {a1}, "ann": {a3}}
	presenceWait(t, "a's entries back in Redis", func() bool {
		got, err := b.List("room")
		if err != nil {
			return false
		}
		l := map[string][]string{}
		for k, ms := range got {
			for _, m := range ms {
				l[k] = append(l[k], string(m))
			}
		}
		return reflect.DeepEqual(l, want)
	})
	presenceWait(t, "a broadcasts the joins", func() bool { return len(a.broadcasts()) > 0 })
	if got, want := string(a.broadcasts()[0].Payload), `{"joins":{"alice":{"metas":[`+a1+`]},"ann":{"metas":[`+a3+`]}},"leaves":{}}`; got != want {
		t.Fatalf("a broadcast %s, want %s", got, want)
	}
}
