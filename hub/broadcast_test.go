package hub_test

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/luachan/luachan/hub"
)

// testSub is a Subscriber; events in intercept go to Deliver, which records them.
type testSub struct {
	conn      *hub.Conn
	intercept []string
	delivered chan *hub.Broadcast
}

func newSub(c *hub.Conn, intercept ...string) *testSub {
	return &testSub{conn: c, intercept: intercept, delivered: make(chan *hub.Broadcast, 16)}
}

func (s *testSub) Conn() *hub.Conn              { return s.conn }
func (s *testSub) Intercepts(event string) bool { return slices.Contains(s.intercept, event) }
func (s *testSub) Deliver(b *hub.Broadcast)     { s.delivered <- b }
func (ts *testServer) join(c *client, topic string, intercept ...string) *testSub {
	s := newSub(c.session.conn, intercept...)
	ts.hub.Subscribe(topic, s)
	return s
}

func TestBroadcastFansOutPerFormat(t *testing.T) {
	ts := startServer(t, hub.Config{})
	v1 := ts.dial(t, "vsn=1.0.0")
	v2 := ts.dial(t, "vsn=2.0.0")
	other := ts.dial(t, "vsn=2.0.0")
	ts.join(v1, "rooms:1")
	ts.join(v2, "rooms:1")
	ts.join(other, "rooms:2")

	b := &hub.Broadcast{Topic: "rooms:1", Event: "new:msg", Payload: []byte(`{"body":"hi"}`)}
	if err := ts.hub.Broadcast(b); err != nil {
		t.Fatal(err)
	}
	_, data := v1.read()
	expectJSON(t, data, `{"topic":"rooms:1","event":"new:msg","payload":{"body":"hi"},"ref":null}`)
	_, data = v2.read()
	expectJSON(t, data, `[null,null,"rooms:1","new:msg",{"body":"hi"}]`)

	// rooms:2 got nothing: the next thing its client sees is its own heartbeat reply.
	other.sendText(`[null,"hb","phoenix","heartbeat",{}]`)
	if arr := other.readV2(); arr[1] != "hb" {
		t.Fatalf("rooms:2 subscriber got %v", arr)
	}
	if ts.hub.Topics() != 2 || ts.hub.Subscriptions() != 3 {
		t.Fatalf("topics %d subscriptions %d", ts.hub.Topics(), ts.hub.Subscriptions())
	}
}

func TestBroadcastSkipsFrom(t *testing.T) {
	ts := startServer(t, hub.Config{})
	sender := ts.dial(t, "vsn=2.0.0")
	peer := ts.dial(t, "vsn=2.0.0")
	ts.join(sender, "room")
	ts.join(peer, "room")

	ts.hub.Broadcast(&hub.Broadcast{Topic: "room", Event: "typing", Payload: []byte(`{}`), From: sender.session.conn.Key()})
	ts.hub.Broadcast(&hub.Broadcast{Topic: "room", Event: "after", Payload: []byte(`{}`)})
	if arr := peer.readV2(); arr[3] != "typing" {
		t.Fatalf("peer got %v", arr)
	}
	if arr := sender.readV2(); arr[3] != "after" {
		t.Fatalf("sender got its own broadcast_from: %v", arr)
	}
}

func TestBroadcastIntercepts(t *testing.T) {
	ts := startServer(t, hub.Config{})
	a := ts.dial(t, "vsn=2.0.0")
	b := ts.dial(t, "vsn=2.0.0")
	subA := ts.join(a, "room", "new:msg")
	ts.join(b, "room")

	ts.hub.Broadcast(&hub.Broadcast{Topic: "room", Event: "new:msg", Payload: []byte(`{"n":1}`)})
	ts.hub.Broadcast(&hub.Broadcast{Topic: "room", Event: "other", Payload: []byte(`{"n":2}`)})

	got := recv(t, subA.delivered, "intercepted broadcast")
	if got.Event != "new:msg" {
		t.Fatalf("delivered %q", got.Event)
	}
	if arr := a.readV2(); arr[3] != "other" {
		t.Fatalf("intercepting subscriber got %v on the fast lane", arr)
	}
	if arr := b.readV2(); arr[3] != "new:msg" {
		t.Fatalf("fast-lane subscriber got %v", arr)
	}
	// The engine's handle_out may push the broadcast on unchanged.
	if err := got.SendTo(a.session.conn); err != nil {
		t.Fatal(err)
	}
	_, data := a.read()
	expectJSON(t, data, `[null,null,"room","new:msg",{"n":1}]`)
}

func TestBinaryBroadcast(t *testing.T) {
	ts := startServer(t, hub.Config{})
	v1 := ts.dial(t, "vsn=1.0.0")
	v2 := ts.dial(t, "vsn=2.0.0")
	ts.join(v1, "room")
	ts.join(v2, "room")
	ts.hub.Broadcast(&hub.Broadcast{Topic: "room", Event: "bin", Payload: []byte{1, 2, 3}, Binary: true})
	typ, data := v2.read()
	if typ != websocket.BinaryMessage || string(data) != "\x02\x04\x03roombin\x01\x02\x03" {
		t.Fatalf("got %d %q", typ, data)
	}
	// V1 cannot receive binary: it gets nothing, and stays open.
	v1.sendText(`{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"hb"}`)
	_, data = v1.read()
	expectJSON(t, data, `{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"hb"}`)
}

func TestUnsubscribe(t *testing.T) {
	ps := newFakePubSub()
	ts := startServer(t, hub.Config{PubSub: ps})
	a := ts.dial(t, "vsn=2.0.0")
	b := ts.dial(t, "vsn=2.0.0")
	subA := ts.join(a, "room")
	subB := ts.join(b, "room")
	ts.hub.Subscribe("room", subA) // twice is once
	if ts.hub.Subscriptions() != 2 {
		t.Fatalf("subscriptions %d", ts.hub.Subscriptions())
	}
	ts.hub.Unsubscribe("room", subA)
	ts.hub.Unsubscribe("room", subA) // not subscribed: nothing happens
	ts.hub.Broadcast(&hub.Broadcast{Topic: "room", Event: "e1", Payload: []byte(`{}`)})
	ts.hub.Unsubscribe("room", subB)
	ts.hub.Subscribe("room", subA)
	ts.hub.Broadcast(&hub.Broadcast{Topic: "room", Event: "e2", Payload: []byte(`{}`)})
	if arr := a.readV2(); arr[3] != "e2" {
		t.Fatalf("unsubscribed client got %v", arr)
	}
	if arr := b.readV2(); arr[3] != "e1" {
		t.Fatalf("got %v", arr)
	}
	want := []string{"sub room", "pub room e1", "unsub room", "sub room", "pub room e2"}
	if got := ps.calls(); !slices.Equal(got, want) {
		t.Fatalf("pubsub calls %q, want %q", got, want)
	}
}

func TestPubSub(t *testing.T) {
	ps := newFakePubSub()
	ts := startServer(t, hub.Config{PubSub: ps})
	c := ts.dial(t, "vsn=2.0.0")
	ts.join(c, "room")

	ps.fail = errors.New("redis down")
	err := ts.hub.Broadcast(&hub.Broadcast{Topic: "room", Event: "e1", Payload: []byte(`{}`)})
	if !errors.Is(err, ps.fail) {
		t.Fatalf("Broadcast: %v", err)
	}
	if arr := c.readV2(); arr[3] != "e1" {
		t.Fatalf("local delivery failed with the pubsub: %v", arr)
	}
	ts.hub.DeliverLocal(&hub.Broadcast{Topic: "room", Event: "remote", Payload: []byte(`{}`)})
	if arr := c.readV2(); arr[3] != "remote" {
		t.Fatalf("got %v", arr)
	}
	if got := ps.calls(); !slices.Equal(got, []string{"sub room", "pub room e1"}) {
		t.Fatalf("DeliverLocal published: %q", got)
	}
}

// TestSlowConsumer checks that a client that does not read is closed once its queue
// is full, while 100 clients that keep up receive every broadcast, in order.
func TestSlowConsumer(t *testing.T) {
	const (
		fast   = 100
		n      = 500 // 1 KB each: far more than the slow client's queue and socket buffers
		window = 32  // broadcasts a fast client may lag behind: 32 KB, half its queue
	)
	ts := startServer(t, hub.Config{MaxQueueBytes: 64 << 10})
	slow := ts.dial(t, "vsn=2.0.0")
	// Small socket buffers on both ends, so the kernel does not absorb what the slow
	// client never reads.
	if tc, ok := slow.ws.NetConn().(*net.TCPConn); ok {
		tc.SetReadBuffer(4096)
	}
	if err := hub.SetSendBuffer(slow.session.conn, 4096); err != nil {
		t.Fatal(err)
	}
	ts.join(slow, "room")

	counts := make([]atomic.Int64, fast)
	done := make(chan error, fast)
	for i := range fast {
		c := ts.dial(t, "vsn=2.0.0")
		ts.join(c, "room")
		go func() { // each fast client reads everything, concurrently with the broadcasts
			for k := range n {
				c.ws.SetReadDeadline(time.Now().Add(waitTimeout))
				_, data, err := c.ws.ReadMessage()
				if err != nil {
					done <- fmt.Errorf("fast client %d, message %d: %w", i, k, err)
					return
				}
				if want := fmt.Sprintf(`[null,null,"room","e",{"i":%d,`, k); !strings.HasPrefix(string(data), want) {
					done <- fmt.Errorf("fast client %d got %.40s, want %s...", i, data, want)
					return
				}
				counts[i].Add(1)
			}
			done <- nil
		}()
	}
	slowest := func() int64 {
		low := int64(n)
		for i := range counts {
			low = min(low, counts[i].Load())
		}
		return low
	}
	pad := strings.Repeat("x", 1000)
	for k := range n {
		if k >= window && slowest() < int64(k-window) {
			waitFor(t, "fast clients to keep up", func() bool { return slowest() >= int64(k-window) })
		}
		payload := fmt.Sprintf(`{"i":%d,"pad":%q}`, k, pad)
		ts.hub.Broadcast(&hub.Broadcast{Topic: "room", Event: "e", Payload: []byte(payload)})
	}
	for range fast {
		if err := recv(t, done, "fast clients"); err != nil {
			t.Fatal(err)
		}
	}
	if reason := slow.closedReason(); !errors.Is(reason, hub.ErrSlow) {
		t.Fatalf("Closed(%v)", reason)
	}
	if st := ts.hub.Stats(); st.SlowClosed != 1 {
		t.Fatalf("SlowClosed = %d, want 1", st.SlowClosed)
	}
}

// fakePubSub records calls; Publish fails with fail when set.
type fakePubSub struct {
	mu   sync.Mutex
	log  []string
	fail error
}

func newFakePubSub() *fakePubSub { return &fakePubSub{} }

func (p *fakePubSub) record(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, s)
}

func (p *fakePubSub) calls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.log)
}

func (p *fakePubSub) Publish(b *hub.Broadcast) error {
	p.record("pub " + b.Topic + " " + b.Event)
	return p.fail
}
func (p *fakePubSub) Subscribe(topic string) error   { p.record("sub " + topic); return nil }
func (p *fakePubSub) Unsubscribe(topic string) error { p.record("unsub " + topic); return nil }
func (p *fakePubSub) Close() error                   { return nil }
