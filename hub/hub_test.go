package hub_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/luachan/luachan/hub"
)

// Compile-time checks that the test doubles satisfy the hub's interfaces.
var (
	_ hub.Handler    = (*testHandler)(nil)
	_ hub.Session    = (*testSession)(nil)
	_ hub.Subscriber = (*testSub)(nil)
	_ hub.PubSub     = (*fakePubSub)(nil)
	_ http.Handler   = (*hub.Hub)(nil)
)

func TestShutdown(t *testing.T) {
	ts := startServer(t, hub.Config{})
	a := ts.dial(t, "vsn=2.0.0")
	b := ts.dial(t, "vsn=1.0.0")
	if n := ts.hub.Conns(); n != 2 {
		t.Fatalf("Conns() = %d", n)
	}
	done := make(chan error, 1)
	go func() { done <- ts.hub.Close(context.Background()) }()
	a.expectClose(hub.CloseServiceRestart)
	b.expectClose(hub.CloseServiceRestart)
	if err := recv(t, done, "Close"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{a, b} {
		if reason := c.closedReason(); !errors.Is(reason, hub.ErrShutdown) {
			t.Fatalf("Closed(%v)", reason)
		}
	}
	if n := ts.hub.Conns(); n != 0 {
		t.Fatalf("Conns() = %d after Close", n)
	}
	_, resp, err := websocket.DefaultDialer.Dial(ts.wsURL("vsn=2.0.0"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after Close: %v %v", resp, err)
	}
}

// TestShutdownStuckClient checks that a client that stopped reading, with its socket
// full, does not hold Close up for long (the SPEC gives the process 10 s).
func TestShutdownStuckClient(t *testing.T) {
	ts := startServer(t, hub.Config{MaxQueueBytes: 64 << 20})
	c := ts.dial(t, "vsn=2.0.0")
	ts.join(c, "room")
	payload := []byte(`{"pad":"` + strings.Repeat("x", 64<<10) + `"}`)
	for range 256 { // 16 MB: more than the socket buffers take
		ts.hub.Broadcast(&hub.Broadcast{Topic: "room", Event: "e", Payload: payload})
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	if err := ts.hub.Close(ctx); err != nil {
		t.Fatalf("Close: %v after %v", err, time.Since(start))
	}
	if reason := c.closedReason(); !errors.Is(reason, hub.ErrShutdown) {
		t.Fatalf("Closed(%v)", reason)
	}
}

func TestShutdownContext(t *testing.T) {
	ts := startServer(t, hub.Config{})
	c := ts.dial(t, "vsn=2.0.0")
	release := make(chan struct{})
	c.session.onMsg = func(*hub.Message) { <-release } // a Handle that does not return
	c.sendText(`[null,"1","t","e",{}]`)
	waitFor(t, "Handle to block", func() bool { return len(c.session.msgs) == 0 && ts.hub.Conns() == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ts.hub.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close with a dead context: %v", err)
	}
	close(release)
	c.expectClose(hub.CloseServiceRestart)
	c.closedReason() // Closed still comes, after Handle returned
}

func TestDisconnect(t *testing.T) {
	ts := startServer(t, hub.Config{})
	a1 := ts.dial(t, "vsn=2.0.0&id=user:1")
	a2 := ts.dial(t, "vsn=2.0.0&id=user:1")
	b := ts.dial(t, "vsn=2.0.0&id=user:2")
	if n := ts.hub.Disconnect("user:1"); n != 2 {
		t.Fatalf("Disconnect = %d, want 2", n)
	}
	for _, c := range []*client{a1, a2} {
		c.expectClose(hub.CloseGoingAway)
		if reason := c.closedReason(); !errors.Is(reason, hub.ErrDisconnect) {
			t.Fatalf("Closed(%v)", reason)
		}
	}
	if n := ts.hub.Disconnect("nobody"); n != 0 {
		t.Fatalf("Disconnect(nobody) = %d", n)
	}
	if n := ts.hub.Disconnect(""); n != 0 {
		t.Fatalf(`Disconnect("") = %d`, n)
	}
	b.sendText(`[null,"hb","phoenix","heartbeat",{}]`)
	if arr := b.readV2(); arr[1] != "hb" {
		t.Fatalf("other id: %v", arr)
	}
}

func TestStats(t *testing.T) {
	ts := startServer(t, hub.Config{IdleTimeout: 500 * time.Millisecond})
	good := ts.dial(t, "vsn=2.0.0")
	bad := ts.dial(t, "vsn=2.0.0")
	idle := ts.dial(t, "vsn=2.0.0")
	ts.join(good, "a")
	ts.join(bad, "a")
	ts.join(good, "b")
	good.sendText(`[null,"1","phoenix","heartbeat",{}]`)
	good.readV2()
	bad.sendText(`junk`)
	bad.expectClose(hub.CloseUnsupported)
	ts.hub.Broadcast(&hub.Broadcast{Topic: "a", Event: "e"})
	good.readV2()
	idle.expectClose(hub.CloseGoingAway)

	// Closed counts a connection once it is gone, a moment after its close frame.
	waitFor(t, "closed connections to be counted", func() bool {
		c := ts.hub.Stats().Closed
		return c["bad_frame"] == 1 && c["idle"] >= 1
	})
	st := ts.hub.Stats()
	closed := st.Closed
	st.Closed = nil
	// The broadcast reached good, and bad unless its close had already unsubscribed it.
	want := hub.Stats{Conns: st.Conns, Topics: 2, Subscriptions: 3, Accepted: 3, FramesIn: 1, Broadcasts: 1, BadFrames: 1, IdleClosed: st.IdleClosed,
		Delivered: st.Delivered, Sent: st.Sent, BytesIn: uint64(len(`[null,"1","phoenix","heartbeat",{}]`)), BytesOut: st.BytesOut}
	if st.Delivered < 1 || st.Delivered > 2 || st.Sent < 1 {
		t.Errorf("Delivered = %d (want 1 or 2), Sent = %d (want at least the heartbeat's reply)", st.Delivered, st.Sent)
	}
	// BytesOut: at least the heartbeat's reply and one broadcast, each with its header.
	if minOut := uint64(len(`[null,"1","phoenix","phx_reply",{"status":"ok","response":{}}]`) + len(`[null,null,"a","e",{}]`) + 4); st.BytesOut < minOut {
		t.Errorf("BytesOut = %d, want at least %d", st.BytesOut, minOut)
	}
	if !reflect.DeepEqual(st, want) || st.IdleClosed < 1 {
		t.Fatalf("Stats() = %+v, want %+v", st, want)
	}
	if len(closed) != len(hub.CloseReasons()) {
		t.Fatalf("Closed has keys %v, want %v", closed, hub.CloseReasons())
	}
	var total uint64
	for _, n := range closed {
		total += n
	}
	if total != closed["bad_frame"]+closed["idle"] {
		t.Fatalf("Closed = %v: only bad_frame and idle closes happened", closed)
	}
}
