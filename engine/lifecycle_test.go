package engine

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/luachan/luachan/hub"
)

// TestJoinLeaveCrash walks a channel through its lifecycle on one socket.
func TestJoinLeaveCrash(t *testing.T) {
	r := startRig(t, map[string]string{"rooms.lua": roomsLua("rooms", "rooms:*")})
	channels := func() int64 { return r.eng.count.channels.Load() }
	c := r.dial(t)
	c.join("rooms:other", "9") // a second channel: events go through the mailbox

	t.Run("refused join", func(t *testing.T) {
		c.send(`["1","1","rooms:1","phx_join",{"refuse":true}]`)
		c.expect(`["1","1","rooms:1","phx_reply",{"status":"error","response":{"reason":"refused"}}]`)
		c.send(`["1","2","rooms:1","hi",{}]`)
		c.expect(`[null,"2","rooms:1","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
	})

	t.Run("leave", func(t *testing.T) {
		c.join("rooms:1", "3")
		if n := channels(); n != 2 {
			t.Errorf("channels joined: %d, want 2", n)
		}
		c.send(`["3","4","rooms:1","phx_leave",{}]`)
		c.expect(`["3","4","rooms:1","phx_reply",{"status":"ok","response":{}}]`)
		c.expect(`["3","3","rooms:1","phx_close",{}]`)
		c.send(`["3","5","rooms:1","hi",{}]`)
		c.expect(`[null,"5","rooms:1","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
		c.send(`["3","6","rooms:1","phx_leave",{}]`) // not joined: answered all the same
		c.expect(`["3","6","rooms:1","phx_reply",{"status":"ok","response":{}}]`)
		waitFor(t, "the left channel to end", func() bool { return channels() == 1 })
	})

	t.Run("crash", func(t *testing.T) {
		c.join("rooms:2", "7")
		c.send(`["7","8","rooms:2","boom",{}]`)
		c.expect(`["7","7","rooms:2","phx_error",{"reason":"channel_crash"}]`)
		if n := r.eng.count.crashes.Load(); n != 1 {
			t.Errorf("crashes counted: %d, want 1", n)
		}
		c.join("rooms:2", "10") // the client rejoins
		c.send(`["10","11","rooms:2","hi",{}]`)
		c.expect(`["10","11","rooms:2","phx_reply",{"status":"ok","response":{"script":"rooms","event":"hi"}}]`)
	})

	t.Run("join again replaces", func(t *testing.T) {
		c.send(`["12","12","rooms:2","phx_join",{}]`)
		c.expect(`["12","12","rooms:2","phx_reply",{"status":"ok","response":{}}]`)
		c.expect(`["10","10","rooms:2","phx_close",{}]`)
		c.send(`["12","13","rooms:2","hi",{}]`)
		c.expect(`["12","13","rooms:2","phx_reply",{"status":"ok","response":{"script":"rooms","event":"hi"}}]`)
	})

	t.Run("socket closes", func(t *testing.T) {
		c.conn.Close()
		waitFor(t, "the socket's channels to end", func() bool { return channels() == 0 })
		r.waitIdle(t)
	})
}

// fullMailboxRig starts a rig whose channels queue one event at most, and a client joined
// to rooms:1 whose mailbox is full: its event ref 2 runs until release is closed, and ref
// 3 waits behind it.
func fullMailboxRig(t *testing.T) (r *rig, c *rigClient, release chan struct{}) {
	t.Helper()
	t.Cleanup(func() { dispatchHook = nil }) // after the rig's cleanups, which run first
	release = make(chan struct{})
	started := make(chan struct{})
	dispatchHook = func(c *channel, kind evKind) {
		if c.topic == "rooms:1" && kind == evIn {
			select {
			case <-started:
			default:
				close(started)
				<-release
			}
		}
	}
	r = startRigWith(t, map[string]string{"rooms.lua": roomsLua("rooms", "rooms:*")}, Config{MaxPending: 1})
	c = r.dial(t)
	c.join("rooms:other", "9") // a second channel: events go through the mailbox
	c.join("rooms:1", "1")
	c.send(`["1","2","rooms:1","hi",{}]`) // runs, and waits for release
	<-started
	c.send(`["1","3","rooms:1","hi",{}]`) // fills the mailbox
	ch := r.channel(t, "rooms:1")
	waitFor(t, "the mailbox to fill", func() bool { return ch.mb.queued() == 1 })
	return r, c, release
}

// TestLeaveIntoFullMailbox: a leave is taken and answered even when the
// channel's mailbox is full, and the socket is not closed for it.
func TestLeaveIntoFullMailbox(t *testing.T) {
	r, c, release := fullMailboxRig(t)
	c.send(`["1","4","rooms:1","phx_leave",{}]`) // taken all the same
	ch := r.channel(t, "rooms:1")
	waitFor(t, "the leave to be queued", func() bool { return ch.mb.queued() == 2 })
	close(release)
	c.expect(`["1","2","rooms:1","phx_reply",{"status":"ok","response":{"script":"rooms","event":"hi"}}]`)
	c.expect(`["1","3","rooms:1","phx_reply",{"status":"ok","response":{"script":"rooms","event":"hi"}}]`)
	c.expect(`["1","4","rooms:1","phx_reply",{"status":"ok","response":{}}]`)
	c.expect(`["1","1","rooms:1","phx_close",{}]`)
	c.heartbeat("5")
	if n := r.eng.count.overflows.Load(); n != 0 {
		t.Errorf("overflows counted: %d, want 0", n)
	}
}

// TestOverflowClosesOnce: events that find a channel's mailbox full close its
// socket with 1008, and the overflow is counted and logged once, however many
// more events come before it has closed.
func TestOverflowClosesOnce(t *testing.T) {
	r, c, release := fullMailboxRig(t)
	defer close(release)
	ch := r.channel(t, "rooms:1")
	for range 3 {
		ch.post(event{kind: evInfo, info: []byte(`"tick"`)})
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(rigTimeout))
	_, data, err := c.conn.ReadMessage()
	if err == nil {
		t.Fatalf("a frame before the close: %s", data)
	}
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != hub.ClosePolicy || ce.Text != "too many pending events" {
		t.Fatalf("read: %v, want close 1008 too many pending events", err)
	}
	if n := r.eng.count.overflows.Load(); n != 1 {
		t.Errorf("overflows counted: %d, want 1", n)
	}
	if n := strings.Count(r.log.String(), "channel cannot keep up"); n != 1 {
		t.Errorf("overflow logged %d times, want once:\n%s", n, r.log)
	}
}

// TestEventsQueuedBehindAFailedJoin: events a client sent while its join ran are answered
// error {"reason":"unmatched topic"} when the join is refused or crashes, as Phoenix answers an
// event for a topic the socket has not joined, rather than dropped without a word.
func TestEventsQueuedBehindAFailedJoin(t *testing.T) {
	for _, c := range []struct{ name, join, reply string }{
		{"refused", "return false", `{"status":"error","response":{"reason":"unauthorized"}}`},
		{"crashed", "error('boom')", `{"status":"error","response":{"reason":"join crashed"}}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			started, release := make(chan struct{}), make(chan struct{})
			t.Cleanup(func() { dispatchHook = nil }) // after the rig's cleanups, which run first
			r := startRig(t, map[string]string{"f.lua": `return { topic = "f:*", join = function() ` + c.join + ` end }`})
			var joining *channel // set before started is closed
			dispatchHook = func(ch *channel, kind evKind) {
				if kind == evJoin {
					joining = ch
					close(started)
					<-release
				}
			}
			cl := r.dial(t)
			cl.send(`["1","1","f:1","phx_join",{}]`)
			<-started
			cl.send(`["1","2","f:1","hi",{}]`)
			cl.send(`["1","3","f:1","hi",{}]`)
			waitFor(t, "the events to queue behind the join", func() bool { return joining.mb.queued() == 2 })
			close(release)
			cl.expect(`["1","1","f:1","phx_reply",` + c.reply + `]`)
			cl.expect(`[null,"2","f:1","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
			cl.expect(`[null,"3","f:1","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
			cl.heartbeat("4")
		})
	}
}
