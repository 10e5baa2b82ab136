package redis_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/luachan/luachan/history"
	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/hub/redis"
)

// collector is a redis.Deliverer that keeps what it is given.
type collector struct {
	mu  sync.Mutex
	got []*hub.Broadcast
}

func (c *collector) DeliverLocal(b *hub.Broadcast) {
	c.mu.Lock()
	c.got = append(c.got, b)
	c.mu.Unlock()
}

func (c *collector) all() []*hub.Broadcast {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*hub.Broadcast(nil), c.got...)
}

// historyNode is a PubSub and its History, started, delivering to a collector; both
// are closed when the test ends.
type historyNode struct {
	ps  *redis.PubSub
	h   *redis.History
	got *collector
}

func startHistoryNode(tb testing.TB, url string) *historyNode {
	tb.Helper()
	ps, err := redis.Dial(context.Background(), redis.Config{URL: url, Logger: testLogger(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	n := &historyNode{ps: ps, h: ps.History(), got: &collector{}}
	ps.Start(context.Background(), n.got)
	n.h.Start(context.Background())
	tb.Cleanup(func() {
		_ = n.h.Close(context.Background())
		_ = ps.Close(context.Background())
	})
	return n
}

// read is History.Read that fails the test on an error.
func (n *historyNode) read(tb testing.TB, topic string, lim history.Limits, since string, limit int) ([]history.Entry[*hub.Broadcast], history.Position, bool) {
	tb.Helper()
	entries, cur, ok, err := n.h.Read(context.Background(), topic, lim, since, limit)
	if err != nil {
		tb.Fatalf("Read(%q, since %q): %v", topic, since, err)
	}
	return entries, cur, ok
}

// publish appends count broadcasts n from..from+count-1 and waits until the history's
// position is at least want.
func (n *historyNode) publish(tb testing.TB, topic string, lim history.Limits, from, count int, want uint64) {
	tb.Helper()
	for i := range count {
		if err := n.h.Publish(bcast(topic, "msg", from+i), lim); err != nil {
			tb.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, cur, _ := n.read(tb, topic, lim, "", -1); cur.N >= want {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the history of %q did not reach %d", topic, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// positions lists the entries' n and payloads.
func positions(entries []history.Entry[*hub.Broadcast]) string {
	var s []string
	for _, e := range entries {
		s = append(s, fmt.Sprintf("%d=%s", e.Position.N, e.Value.Payload))
	}
	return strings.Join(s, " ")
}

var lim = history.Limits{Size: 100, TTL: time.Minute}

func TestHistoryReadMalformedSince(t *testing.T) {
	n := startHistoryNode(t, startRedis(t).url())
	n.publish(t, "t", lim, 1, 2, 2)
	_, cur, _ := n.read(t, "t", lim, "", -1)
	for _, since := range []string{
		"nope", ":1", cur.Epoch + ":", cur.Epoch + ":-1", cur.Epoch + ":x", cur.Epoch + ":99999999999999999999",
		"other:1", cur.Epoch + ":3", cur.Epoch + "1:1", "{}", "\n" + cur.Epoch + ":1",
	} {
		entries, got, ok := n.read(t, "t", lim, since, 0)
		if ok || len(entries) != 0 || got != cur {
			t.Errorf("since %q: recovered %v, %d entries, position %v; want not recovered, none, %v", since, ok, len(entries), got, cur)
		}
	}
	entries, got, ok := n.read(t, "t", lim, cur.Epoch+":0", 0)
	if !ok || got != cur || positions(entries) != `1={"n":1} 2={"n":2}` {
		t.Fatalf("since n 0: %v %v %s", ok, got, positions(entries))
	}
	if entries, _, ok := n.read(t, "t", lim, cur.Epoch+":0", 1); !ok || positions(entries) != `1={"n":1}` {
		t.Fatalf("since n 0, limit 1: %v %s", ok, positions(entries))
	}
}

func TestHistoryTrimsBySize(t *testing.T) {
	n := startHistoryNode(t, startRedis(t).url())
	small := history.Limits{Size: 3, TTL: time.Minute}
	n.publish(t, "t", small, 1, 5, 5)
	_, cur, _ := n.read(t, "t", small, "", -1)
	for since, want := range map[uint64]string{
		0: "", 1: "", // trimmed
		2: `3={"n":3} 4={"n":4} 5={"n":5}`,
		4: `5={"n":5}`,
		5: "",
	} {
		entries, _, ok := n.read(t, "t", small, history.Position{Epoch: cur.Epoch, N: since}.String(), 0)
		if ok != (since >= 2) || positions(entries) != want {
			t.Errorf("since %d: recovered %v, %s; want %q", since, ok, positions(entries), want)
		}
	}
	if entries, _, ok := n.read(t, "t", small, "", 0); !ok || positions(entries) != `3={"n":3} 4={"n":4} 5={"n":5}` {
		t.Errorf("the latest: %v %s", ok, positions(entries))
	}
}

func TestHistoryTrimsByTTL(t *testing.T) {
	rs := startRedis(t)
	n := startHistoryNode(t, rs.url())
	short := history.Limits{Size: 10, TTL: 300 * time.Millisecond}
	n.publish(t, "t", short, 1, 2, 2)
	_, cur, _ := n.read(t, "t", short, "", -1)
	if _, _, ok := n.read(t, "t", short, cur.Epoch+":0", 0); !ok {
		t.Fatal("not recovered within the ttl")
	}
	// Past the ttl the entries are not replayed and the stream goes; the epoch and
	// the counter stay, so a client that saw the last broadcast missed nothing.
	if err := pollFor(2*time.Second, func() bool {
		entries, _, ok := n.read(t, "t", short, cur.Epoch+":0", 0)
		return !ok && len(entries) == 0
	}); err != nil {
		t.Fatal("still recovered past the ttl")
	}
	if err := pollFor(2*time.Second, func() bool { return rs.client(t).Exists(context.Background(), "luachan:h:{t}:s").Val() == 0 }); err != nil {
		t.Fatal("the stream outlived its ttl")
	}
	if entries, _, _ := n.read(t, "t", short, "", 0); len(entries) != 0 {
		t.Fatalf("past the ttl, the latest: %s", positions(entries))
	}
	if entries, now, ok := n.read(t, "t", short, cur.String(), 0); !ok || len(entries) != 0 || now != cur {
		t.Fatalf("since the last position, past the ttl: recovered %v, %s at %v; want recovered, nothing, at %v", ok, positions(entries), now, cur)
	}
	n.publish(t, "t", short, 3, 1, 3)
	if _, now, _ := n.read(t, "t", short, "", -1); now != (history.Position{Epoch: cur.Epoch, N: 3}) {
		t.Fatalf("after the ttl: %v, want the same epoch at 3 (was %v)", now, cur)
	}
	// Once the meta hash goes too, the next append starts a new epoch.
	if err := rs.client(t).Del(context.Background(), "luachan:h:{t}:meta").Err(); err != nil {
		t.Fatal(err)
	}
	n.publish(t, "t", short, 4, 1, 1)
	if _, now, _ := n.read(t, "t", short, "", -1); now.Epoch == cur.Epoch || now.N != 1 {
		t.Fatalf("after the meta went: %v, want a new epoch at 1", now)
	}
}

func TestHistoryEpochKeptAcrossNodes(t *testing.T) {
	rs := startRedis(t)
	a := startHistoryNode(t, rs.url())
	a.publish(t, "t", lim, 1, 3, 3)
	_, cur, _ := a.read(t, "t", lim, "", -1)
	_ = a.h.Close(context.Background())
	_ = a.ps.Close(context.Background())

	b := startHistoryNode(t, rs.url()) // a node started later: same epoch, same entries
	entries, got, ok := b.read(t, "t", lim, cur.Epoch+":1", 0)
	if !ok || got != cur || positions(entries) != `2={"n":2} 3={"n":3}` {
		t.Fatalf("on a new node: %v %v %s; want %v", ok, got, positions(entries), cur)
	}
	b.publish(t, "t", lim, 4, 1, 4)
	if _, now, _ := b.read(t, "t", lim, "", -1); now != (history.Position{Epoch: cur.Epoch, N: 4}) {
		t.Fatalf("after an append on the new node: %v", now)
	}
}

// TestHistoryDelivers: an append reaches every subscribed node once, the sender
// included, at its position; a sender's own keeps its From (broadcast_from), the
// others' do not. Redis forgetting its scripts (a restart) is survived.
func TestHistoryDelivers(t *testing.T) {
	rs := startRedis(t)
	a, b := startHistoryNode(t, rs.url()), startHistoryNode(t, rs.url())
	for _, n := range []*historyNode{a, b} {
		_ = n.ps.Subscribe("t")
		if !n.h.Subscribed("t") {
			t.Fatal("Subscribed false after Subscribe")
		}
	}
	if a.h.Subscribed("other") {
		t.Fatal("Subscribed true for a topic never subscribed to")
	}
	if err := rs.client(t).ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	from := bcast("t", "msg", 1)
	from.From = 42
	if err := a.h.Publish(from, lim); err != nil {
		t.Fatal(err)
	}
	if err := b.h.Publish(bcast("t", "msg", 2), lim); err != nil {
		t.Fatal(err)
	}
	if err := pollFor(5*time.Second, func() bool { return len(a.got.all()) == 2 && len(b.got.all()) == 2 }); err != nil {
		t.Fatalf("delivered %d and %d, want 2 each", len(a.got.all()), len(b.got.all()))
	}
	ga, gb := a.got.all(), b.got.all()
	for i := range 2 {
		if ga[i].Ref != gb[i].Ref || string(ga[i].Payload) != string(gb[i].Payload) || !strings.HasSuffix(ga[i].Ref, fmt.Sprintf(":%d", i+1)) {
			t.Fatalf("broadcast %d: %+v on a, %+v on b", i, ga[i], gb[i])
		}
	}
	for i, b := range []*hub.Broadcast{ga[0], ga[1], gb[0], gb[1]} {
		wantFrom := uint64(0)
		if (i == 0 && string(b.Payload) == `{"n":1}`) || (i == 1 && string(b.Payload) == `{"n":1}`) {
			wantFrom = 42 // a's own
		}
		if b.From != wantFrom || b.Topic != "t" || b.Event != "msg" {
			t.Errorf("delivery %d: %+v, want From %d", i, b, wantFrom)
		}
	}
}

// pollFor waits until cond holds, for up to timeout.
func pollFor(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met in %v", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// TestHistoryFillsGapAfterReconnect: the broadcasts appended while a node's subscriber
// connection was down reach that node from the stream, before the next live one, so
// its subscribers still get every position once, in order.
func TestHistoryFillsGapAfterReconnect(t *testing.T) {
	rs := startRedis(t)
	a, b := startHistoryNode(t, rs.url()), startHistoryNode(t, rs.url())
	for _, n := range []*historyNode{a, b} {
		_ = n.ps.Subscribe("t")
	}
	b.publish(t, "t", lim, 1, 1, 1)
	if err := pollFor(5*time.Second, func() bool { return len(a.got.all()) == 1 }); err != nil {
		t.Fatal("the first broadcast did not arrive")
	}
	if err := rs.client(t).ClientKillByFilter(context.Background(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	b.publish(t, "t", lim, 2, 5, 6) // while the subscribers reconnect (after 50 ms at least)
	if a.ps.Stats().Reconnects != 0 {
		t.Fatal("a reconnected before the appends: the test missed its gap")
	}
	if err := pollFor(5*time.Second, func() bool { return a.ps.Stats().Reconnects == 1 && a.ps.Stats().Connected }); err != nil {
		t.Fatal("a did not reconnect")
	}
	b.publish(t, "t", lim, 7, 1, 7)
	if err := pollFor(5*time.Second, func() bool { return len(a.got.all()) >= 7 }); err != nil {
		t.Fatalf("a got %d broadcasts, want 7", len(a.got.all()))
	}
	for i, got := range a.got.all() {
		if !strings.HasSuffix(got.Ref, fmt.Sprintf(":%d", i+1)) || string(got.Payload) != fmt.Sprintf(`{"n":%d}`, i+1) {
			t.Fatalf("broadcast %d: %s at %s", i+1, got.Payload, got.Ref)
		}
	}
}

// TestHistoryFlush: PubSub.Flush also waits for its History: once it returns, every
// broadcast queued before has been appended, and the topic's position is the last one's.
func TestHistoryFlush(t *testing.T) {
	t.Parallel()
	n := startHistoryNode(t, startRedis(t).url())
	lim := history.Limits{Size: 10, TTL: time.Minute}
	const count = 2000
	for i := range count {
		if err := n.h.Publish(&hub.Broadcast{Topic: "t", Event: "e", Payload: []byte(fmt.Sprintf(`{"n":%d}`, i))}, lim); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.ps.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, cur, _ := n.read(t, "t", lim, "", 0); cur.N != count || n.h.Dropped() != 0 {
		t.Fatalf("once Flush returned: position %v, %d dropped; want %d, none", cur, n.h.Dropped(), count)
	}
}
