package nats_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/hub/nats"
	"github.com/luachan/luachan/internal/hubtest"
	"github.com/luachan/luachan/internal/natstest"
)

const testPresenceTTL = time.Second

// diffs collects the presence_diffs a replica broadcasts.
type diffs chan *hub.Broadcast

func (d diffs) broadcast(b *hub.Broadcast) error { d <- b; return nil }

// next returns the next diff as {"joins": {key: n metas}, "leaves": {...}} counts.
func (d diffs) next(tb testing.TB) (topic string, joins, leaves map[string]int) {
	tb.Helper()
	select {
	case b := <-d:
		var p struct {
			Joins, Leaves map[string]struct{ Metas []json.RawMessage }
		}
		if b.Event != "presence_diff" || json.Unmarshal(b.Payload, &p) != nil {
			tb.Fatalf("broadcast %q %s, want a presence_diff", b.Event, b.Payload)
		}
		joins, leaves = map[string]int{}, map[string]int{}
		for k, v := range p.Joins {
			joins[k] = len(v.Metas)
		}
		for k, v := range p.Leaves {
			leaves[k] = len(v.Metas)
		}
		return b.Topic, joins, leaves
	case <-time.After(10 * testPresenceTTL):
		tb.Fatal("no presence_diff")
		return "", nil, nil
	}
}

// startPresence starts a node's PubSub and presence replica on url, with diffs
// collecting its broadcasts; both are closed when the test ends (the presence first).
func startPresence(tb testing.TB, url string, d diffs) (*nats.PubSub, *nats.Presence) {
	tb.Helper()
	ps, _, _ := startNode(tb, url)
	p := ps.Presence(testPresenceTTL, d.broadcast)
	p.Start(context.Background())
	tb.Cleanup(func() { _ = p.Close(context.Background()) })
	return ps, p
}

// TestNATSPresenceDeadNodeLeavesOnce: a node that goes away has its entries removed by
// the survivors, each leave broadcast by one of them only.
func TestNATSPresenceDeadNodeLeavesOnce(t *testing.T) {
	ns := natstest.Start(t)
	survivors := make(diffs, 16)
	_, b := startPresence(t, ns.URL(), survivors)
	_, c := startPresence(t, ns.URL(), survivors)
	psA, err := nats.Dial(context.Background(), nats.Config{URL: ns.URL()})
	if err != nil {
		t.Fatal(err)
	}
	a := psA.Presence(testPresenceTTL, nil)
	a.Start(context.Background())
	if err := a.Put("room:a.b", "r1", "alice", []byte(`{"phx_ref":"r1"}`)); err != nil {
		t.Fatal(err)
	}
	if err := a.Put("room:a.b", "r2", "alice", []byte(`{"phx_ref":"r2"}`)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*nats.Presence{b, c} {
		st, err := p.List("room:a.b")
		if err != nil || len(st["alice"]) != 2 {
			t.Fatalf("List on another node: %v, %v; want alice's two metas", st, err)
		}
	}
	// a goes away without removing its entries (its heartbeat goes with Close; a crash
	// lets it lapse, which TestMultinodePresence covers).
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	psA.Close(context.Background())
	topic, joins, leaves := survivors.next(t)
	if topic != "room:a.b" || len(joins) != 0 || !reflect.DeepEqual(leaves, map[string]int{"alice": 2}) {
		t.Fatalf("diff on %q: joins %v leaves %v; want alice's two leaves on room:a.b", topic, joins, leaves)
	}
	// Two more sweeps of each survivor: no second leave.
	select {
	case extra := <-survivors:
		t.Fatalf("a second diff: %s", extra.Payload)
	case <-time.After(testPresenceTTL / 2):
	}
	for _, p := range []*nats.Presence{b, c} {
		if st, err := p.List("room:a.b"); err != nil || len(st) != 0 {
			t.Fatalf("List after the node went: %v, %v; want empty", st, err)
		}
	}
}

// TestNATSPresenceResyncAfterLapse: a node whose heartbeat lapsed and whose entries a
// survivor removed writes them again, and broadcasts them as joins.
func TestNATSPresenceResyncAfterLapse(t *testing.T) {
	ns := natstest.Start(t)
	mine := make(diffs, 16)
	_, a := startPresence(t, ns.URL(), mine)
	_, b := startPresence(t, ns.URL(), make(diffs, 16))
	if err := a.Put("room", "r1", "alice", []byte(`{"phx_ref":"r1"}`)); err != nil {
		t.Fatal(err)
	}
	// What a survivor does when a's heartbeat is gone: both keys removed behind a's back.
	nc, err := natsgo.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	nodes, err := js.KeyValue(ctx, nats.NodesBucket)
	if err != nil {
		t.Fatal(err)
	}
	pres, err := js.KeyValue(ctx, nats.PresenceBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := nodes.Purge(ctx, a.Node()); err != nil {
		t.Fatal(err)
	}
	if err := pres.Delete(ctx, "t."+a.Node()+".room.r1"); err != nil {
		t.Fatal(err)
	}
	if st, _ := b.List("room"); len(st) != 0 {
		t.Fatalf("List with alice removed: %v", st)
	}
	topic, joins, leaves := mine.next(t)
	if topic != "room" || !reflect.DeepEqual(joins, map[string]int{"alice": 1}) || len(leaves) != 0 {
		t.Fatalf("diff on %q: joins %v leaves %v; want alice's join again", topic, joins, leaves)
	}
	if st, err := b.List("room"); err != nil || len(st["alice"]) != 1 {
		t.Fatalf("List after the resync: %v, %v; want alice back", st, err)
	}
}

// TestNATSWhileDown: with NATS away, presence and store calls fail at once (a script
// gets an error, not a wait); a presence tracked meanwhile reaches NATS once it is back.
func TestNATSWhileDown(t *testing.T) {
	ns := natstest.Start(t)
	mine := make(diffs, 16)
	psA, a := startPresence(t, ns.URL(), mine)
	_, b := startPresence(t, ns.URL(), make(diffs, 16))
	ns.Kill(t)
	hubtest.WaitFor(t, "a to notice NATS is gone", func() bool { return !psA.Stats().Connected })
	if err := a.Put("room", "r1", "alice", []byte(`{"phx_ref":"r1"}`)); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("Put with NATS down: %v, want unreachable", err)
	}
	if _, err := a.List("room"); err == nil {
		t.Fatal("List with NATS down succeeded")
	}
	if _, _, err := psA.Store().Get("k"); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("store Get with NATS down: %v, want unreachable", err)
	}
	ns.Restart(t)
	hubtest.WaitFor(t, "a to reconnect", func() bool { return psA.Stats().Connected })
	topic, joins, _ := mine.next(t)
	if topic != "room" || !reflect.DeepEqual(joins, map[string]int{"alice": 1}) {
		t.Fatalf("diff on %q joins %v, want alice's join once NATS is back", topic, joins)
	}
	if st, err := b.List("room"); err != nil || len(st["alice"]) != 1 {
		t.Fatalf("List on another node after NATS came back: %v, %v; want alice", st, err)
	}
}
