package nats_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/hub/nats"
	"github.com/luachan/luachan/internal/hubtest"
	"github.com/luachan/luachan/internal/natstest"
)

const waitTimeout = 10 * time.Second // for something that should happen at once

// sink collects what a PubSub delivers, as a Hub's DeliverLocal would.
type sink struct{ got chan *hub.Broadcast }

func newSink() *sink                          { return &sink{got: make(chan *hub.Broadcast, 1024)} }
func (s *sink) DeliverLocal(b *hub.Broadcast) { s.got <- b }

// next returns the next delivered broadcast, failing after waitTimeout.
func (s *sink) next(tb testing.TB) *hub.Broadcast {
	tb.Helper()
	select {
	case b := <-s.got:
		return b
	case <-time.After(waitTimeout):
		tb.Fatal("nothing delivered")
		return nil
	}
}

// quiet fails if anything is delivered before a marker broadcast on topic arrives.
func (s *sink) quiet(tb testing.TB, from *nats.PubSub, topic string) {
	tb.Helper()
	if err := from.Publish(&hub.Broadcast{Topic: topic, Event: "marker", Payload: []byte(`{}`)}); err != nil {
		tb.Fatal(err)
	}
	if b := s.next(tb); b.Event != "marker" {
		tb.Fatalf("delivered %q on %q, want nothing before the marker", b.Event, b.Topic)
	}
}

// lockedBuf is a log destination read while nats.go's goroutines write to it.
type lockedBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startNode dials and starts a PubSub on url that delivers to a fresh sink, closed when the
// test ends.
func startNode(tb testing.TB, url string) (*nats.PubSub, *sink, *lockedBuf) {
	tb.Helper()
	logs := &lockedBuf{}
	ps, err := nats.Dial(context.Background(), nats.Config{URL: url, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	s := newSink()
	ps.Start(context.Background(), s)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := ps.Close(ctx); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return ps, s, logs
}

func TestNATSBroadcastReachesOtherNodesOnceInOrder(t *testing.T) {
	ns := natstest.Start(t)
	a, sa, _ := startNode(t, ns.URL())
	b, sb, _ := startNode(t, ns.URL())
	c, sc, _ := startNode(t, ns.URL())
	const topic = "room:a.b *>"
	for _, ps := range []*nats.PubSub{a, b, c} {
		if err := ps.Subscribe(topic); err != nil {
			t.Fatal(err)
		}
	}
	const each = 200
	for i := range each {
		a.Publish(&hub.Broadcast{Topic: topic, Event: "msg", Payload: []byte(fmt.Sprintf(`{"i":%d}`, i))})
		b.Publish(&hub.Broadcast{Topic: topic, Event: "bin", Payload: []byte{byte(i)}, Binary: true})
	}
	// c gets both senders' broadcasts, each in order; a gets b's, b gets a's; once each.
	check := func(s *sink, wantA, wantB bool) {
		t.Helper()
		nextA, nextB := 0, 0
		for range each * (btoi(wantA) + btoi(wantB)) {
			got := s.next(t)
			switch {
			case got.Topic != topic:
				t.Fatalf("topic %q, want %q", got.Topic, topic)
			case got.Event == "msg" && wantA && string(got.Payload) == fmt.Sprintf(`{"i":%d}`, nextA) && !got.Binary:
				nextA++
			case got.Event == "bin" && wantB && got.Binary && bytes.Equal(got.Payload, []byte{byte(nextB)}):
				nextB++
			default:
				t.Fatalf("got %q %q (binary %v), want a's #%d or b's #%d", got.Event, got.Payload, got.Binary, nextA, nextB)
			}
		}
	}
	check(sc, true, true)
	check(sa, false, true)
	check(sb, true, false)
	sa.quiet(t, c, topic)
	sb.quiet(t, c, topic)
	if got := sa.next(t); got.Event != "marker" { // c's second marker reaches a too
		t.Fatalf("a got %q, want c's second marker", got.Event)
	}
	if st := a.Stats(); st.Own != each || st.Published != each || st.Received != each+2 || st.Topics != 1 || !st.Connected {
		t.Fatalf("a's stats %+v: want its %d own skipped, %d published, b's and c's 2 markers received, 1 topic, connected", st, each, each)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestNATSSubscribesWhileTopicHasLocalSubscribers(t *testing.T) {
	ns := natstest.Start(t)
	a, _, _ := startNode(t, ns.URL())
	b, sb, _ := startNode(t, ns.URL())
	b.Subscribe("t1")
	b.Subscribe("t2")
	a.Publish(&hub.Broadcast{Topic: "t1", Event: "one", Payload: []byte(`{}`)})
	if got := sb.next(t); got.Event != "one" {
		t.Fatalf("got %q, want one", got.Event)
	}
	b.Unsubscribe("t1")
	if st := b.Stats(); st.Topics != 1 {
		t.Fatalf("topics %d after unsubscribing one of two, want 1", st.Topics)
	}
	a.Publish(&hub.Broadcast{Topic: "t1", Event: "after-unsubscribe", Payload: []byte(`{}`)})
	sb.quiet(t, a, "t2") // the broadcast on t1 never arrives
}

func TestNATSLostAndBack(t *testing.T) {
	ns := natstest.Start(t)
	a, _, alog := startNode(t, ns.URL())
	b, sb, blog := startNode(t, ns.URL())
	b.Subscribe("t")
	ns.Kill(t)
	waitLog(t, alog, "lost NATS")
	waitLog(t, blog, "lost NATS")
	// Publish never blocks nor fails while NATS is away.
	for range 10 {
		if err := a.Publish(&hub.Broadcast{Topic: "t", Event: "during", Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	ns.Restart(t)
	waitLog(t, alog, "NATS is back: resubscribed")
	waitLog(t, blog, "NATS is back: resubscribed")
	if st := b.Stats(); st.Reconnects != 1 || !st.Connected {
		t.Fatalf("b's stats %+v, want one reconnect, connected", st)
	}
	a.Publish(&hub.Broadcast{Topic: "t", Event: "after", Payload: []byte(`{}`)})
	for {
		got := sb.next(t)
		if got.Event == "after" {
			break
		}
		if got.Event != "during" { // sent on reconnect, once, or lost: both allowed
			t.Fatalf("got %q, want after", got.Event)
		}
	}
}

// waitLog waits until the log holds msg.
func waitLog(tb testing.TB, l *lockedBuf, msg string) {
	tb.Helper()
	hubtest.WaitFor(tb, fmt.Sprintf("%q in the log", msg), func() bool { return strings.Contains(l.String(), msg) })
}

func TestCheckNATSURL(t *testing.T) {
	for _, ok := range []string{"nats://127.0.0.1:4222", "tls://u:p@h:4222", "nats://a:1,nats://b:2"} {
		if err := nats.CheckURL(ok); err != nil {
			t.Errorf("CheckURL(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "redis://h:1", "nats://", "nats://h:1/0", "h:4222"} {
		if err := nats.CheckURL(bad); err == nil {
			t.Errorf("CheckURL(%q) accepted it", bad)
		}
	}
}

func TestDialNATSUnreachable(t *testing.T) {
	ns := natstest.Start(t)
	ns.Kill(t)
	_, err := nats.Dial(context.Background(), nats.Config{URL: "nats://u:hunter2@" + strings.TrimPrefix(ns.URL(), "nats://")})
	if err == nil || !strings.Contains(err.Error(), "cannot reach NATS") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Dial of a dead NATS: %v; want cannot reach NATS, without the password", err)
	}
}

func TestDialNATSWithoutJetStream(t *testing.T) {
	ns := natstest.StartCore(t)
	_, err := nats.Dial(context.Background(), nats.Config{URL: ns.URL()})
	if err == nil || !strings.Contains(err.Error(), "start nats-server with -js") {
		t.Fatalf("Dial of a NATS without JetStream: %v; want a hint to start it with -js", err)
	}
}

// TestNATSPublishNeverBlocks: with NATS gone, broadcasts beyond the queue and the
// reconnect buffer are dropped, every one of them counted, and Publish returns at once.
func TestNATSPublishNeverBlocks(t *testing.T) {
	ns := natstest.Start(t)
	a, _, alog := startNode(t, ns.URL())
	ns.Kill(t)
	waitLog(t, alog, "lost NATS")
	const n, size = 20000, 1024 // 20 MB: past the 8 MiB reconnect buffer
	payload := bytes.Repeat([]byte("x"), size)
	for range n {
		if err := a.Publish(&hub.Broadcast{Topic: "t", Event: "e", Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	hubtest.WaitFor(t, "every broadcast published or counted as dropped", func() bool {
		st := a.Stats()
		return st.Published+st.Dropped == n
	})
	if st := a.Stats(); st.Dropped == 0 || st.Published*size > 8<<20 {
		t.Fatalf("stats after %d broadcasts of %d bytes with NATS down: %+v; want the reconnect buffer's worth kept, the rest dropped", n, size, st)
	}
	waitLog(t, alog, "broadcasts not sent to other nodes")
}
