package hub_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/luachan/luachan/hub"
)

func TestTokenBucket(t *testing.T) {
	const ms = time.Millisecond
	every := func(n int, d time.Duration) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(i) * d
		}
		return out
	}
	all := func(n int) []bool {
		out := make([]bool, n)
		for i := range out {
			out[i] = true
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		rate     float64
		burst    int
		arrivals []time.Duration
		want     []bool
	}{
		{"a burst, then refused", 10, 3, []time.Duration{0, 0, 0, 0}, []bool{true, true, true, false}},
		{"refills at the rate", 10, 1, []time.Duration{0, 50 * ms, 100 * ms, 150 * ms}, []bool{true, false, true, false}},
		{"steady at the rate", 100, 1, every(50, 10*ms), all(50)},
		{"refill capped at the burst", 10, 2, []time.Duration{0, 0, 10e3 * ms, 10e3 * ms, 10e3 * ms}, []bool{true, true, true, true, false}},
		{"unlimited", -1, 1, every(1000, 0), all(1000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hub.TokenBucket(tc.rate, tc.burst, tc.arrivals); !slices.Equal(got, tc.want) {
				t.Fatalf("allowed %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRateLimit checks that a client sending faster than the limit is closed with
// 1008, once its burst is spent, and that pings count as messages.
func TestRateLimit(t *testing.T) {
	// At 0.01 messages a second, no token comes back during the test.
	ts := startServer(t, hub.Config{MaxMessageRate: 0.01, MaxMessageBurst: 3})
	healthy := ts.dial(t, "vsn=2.0.0")
	for _, tc := range []struct {
		name string
		send func(c *client)
	}{
		{"messages", func(c *client) { c.sendText(`[null,"x","phoenix","heartbeat",{}]`) }},
		{"pings", func(c *client) {
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.dial(t, "vsn=2.0.0")
			for range 4 {
				tc.send(c)
			}
			c.ws.SetReadDeadline(time.Now().Add(waitTimeout))
			var ce *websocket.CloseError
			replies := 0
			for {
				_, _, err := c.ws.ReadMessage()
				if err == nil {
					replies++
					continue
				}
				if !errors.As(err, &ce) {
					t.Fatalf("want a close frame, got %v", err)
				}
				break
			}
			if ce.Code != hub.ClosePolicy || ce.Text != "rate limit exceeded" {
				t.Fatalf("closed with %d %q", ce.Code, ce.Text)
			}
			if tc.name == "messages" && replies != 3 {
				t.Fatalf("%d heartbeat replies before the close, want 3 (the burst)", replies)
			}
			if reason := c.closedReason(); !errors.Is(reason, hub.ErrRateLimit) {
				t.Fatalf("Closed(%v)", reason)
			}
		})
	}
	healthy.sendText(`[null,"hb","phoenix","heartbeat",{}]`)
	if arr := healthy.readV2(); arr[1] != "hb" {
		t.Fatalf("healthy client got %v", arr)
	}
	if st := ts.hub.Stats(); st.RateLimited != 2 {
		t.Fatalf("RateLimited = %d, want 2", st.RateLimited)
	}
	waitFor(t, "closes to be counted", func() bool { return ts.hub.Stats().Closed["rate_limit"] == 2 })
}
