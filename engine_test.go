package luachan_test

// End-to-end tests of SPEC section 2, the wire protocol, against the real binary with
// V2 JSON clients. Formats (V1, binary, vsn) are in formats_test.go, bad input in
// badinput_test.go, the example rooms (section 7) in rooms_test.go.

import (
	"fmt"
	"strings"
	"testing"
)

func TestJoin(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))

	tests := []struct {
		name    string
		topic   string
		payload string
		want    string // the whole reply frame
		// rejoinable: after the refusal, the same topic can still be joined
		rejoinable bool
	}{
		{
			name:  "ok with the script's reply",
			topic: "test:ok", payload: `{}`,
			want: `["1","1","test:ok","phx_reply",{"status":"ok","response":{"joined":"test:ok"}}]`,
		},
		{
			name:  "refused with the script's reply",
			topic: "test:refused", payload: `{"refuse":"not you"}`,
			want:       `["1","1","test:refused","phx_reply",{"status":"error","response":{"reason":"refused","why":"not you"}}]`,
			rejoinable: true,
		},
		{
			name:  "refused without a reply",
			topic: "test:refused", payload: `{"refuse_default":true}`,
			want:       `["1","1","test:refused","phx_reply",{"status":"error","response":{"reason":"unauthorized"}}]`,
			rejoinable: true,
		},
		{
			name:  "error raised in join",
			topic: "test:crash", payload: `{"crash":true}`,
			want:       `["1","1","test:crash","phx_reply",{"status":"error","response":{"reason":"join crashed"}}]`,
			rejoinable: true,
		},
		{
			name:  "no script matches the topic",
			topic: "nope:x", payload: `{}`,
			want: `[null,"1","nope:x","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := s.dial(t, "vsn=2.0.0")
			c.send(fmt.Sprintf(`["1","1",%q,"phx_join",%s]`, tc.topic, tc.payload))
			c.expect(tc.want)
			// no phx_close (or anything else) follows a refused join
			c.heartbeat("2")
			if tc.rejoinable {
				c.join(tc.topic, "3", `{}`, fmt.Sprintf(`{"joined":%q}`, tc.topic))
			}
		})
	}
}

func TestJoinReplyBeforePushesFromJoin(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))
	other := s.dial(t, "vsn=2.0.0")
	other.join("test:jp", "1", `{}`, `{"joined":"test:jp"}`)

	c := s.dial(t, "vsn=2.0.0")
	c.send(`["7","7","test:jp","phx_join",{"push":true}]`)
	c.expect(`["7","7","test:jp","phx_reply",{"status":"ok","response":{"joined":"test:jp"}}]`)
	c.expectAnyOrder(
		`["7",null,"test:jp","pushed",{"n":1}]`,
		`[null,null,"test:jp","broadcasted",{"n":2}]`,
	)
	other.expect(`[null,null,"test:jp","broadcasted",{"n":2}]`)
	c.heartbeat("8")
	other.heartbeat("9")
}

func TestUnmatchedTopic(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))
	c := s.dial(t, "vsn=2.0.0")
	c.join("test:joined", "1", `{}`, `{"joined":"test:joined"}`)

	tests := []struct{ name, send, want string }{
		{
			name: "event on a routable topic not joined",
			send: `["1","2","test:other","echo",{}]`,
			want: `[null,"2","test:other","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`,
		},
		{
			name: "event on a topic no script matches",
			send: `[null,"3","nope:x","echo",{}]`,
			want: `[null,"3","nope:x","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`,
		},
		{
			name: "join on a topic no script matches",
			send: `["4","4","nope:y","phx_join",{}]`,
			want: `[null,"4","nope:y","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.send(tc.send)
			c.expect(tc.want)
		})
	}
	// the joined channel is unaffected
	c.send(`["1","5","test:joined","echo",{"still":"here"}]`)
	c.expect(`["1","5","test:joined","phx_reply",{"status":"ok","response":{"still":"here"}}]`)
}

func TestEvents(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))
	c := s.dial(t, "vsn=2.0.0")
	c.join("test:ev", "1", `{}`, `{"joined":"test:ev"}`)

	tests := []struct {
		name string
		send string
		want []any // frames in any order; a heartbeat then proves nothing else came
	}{
		{
			name: "reply ok with a response",
			send: `["1","2","test:ev","echo",{"n":42,"neg":-7,"f":1.5,"big":9007199254740992,"s":"héllo ✓","a":[1,"two",{"three":null}],"o":{},"t":true}]`,
			want: []any{`["1","2","test:ev","phx_reply",{"status":"ok","response":{"n":42,"neg":-7,"f":1.5,"big":9007199254740992,"s":"héllo ✓","a":[1,"two",{"three":null}],"o":{},"t":true}}]`},
		},
		{
			name: "reply error",
			send: `["1","3","test:ev","error_reply",{}]`,
			want: []any{`["1","3","test:ev","phx_reply",{"status":"error","response":{"reason":"asked"}}]`},
		},
		{
			name: "no reply when handle_in returns nothing",
			send: `["1","4","test:ev","noreply",{}]`,
		},
		{
			name: "push to this client only",
			send: `["1","5","test:ev","push",{"x":1}]`,
			want: []any{`["1",null,"test:ev","pushed",{"x":1}]`},
		},
		{
			name: "several pushes, a broadcast and a reply from one callback",
			send: `["1","8","test:ev","push_many",{"w":4}]`,
			want: []any{
				`["1",null,"test:ev","pushed",{"i":1,"pad":"` + strings.Repeat("x", 100) + `"}]`,
				`["1",null,"test:ev","pushed",{"i":2,"pad":"` + strings.Repeat("x", 200) + `"}]`,
				`["1",null,"test:ev","pushed",{"i":3,"pad":"` + strings.Repeat("x", 300) + `"}]`,
				`[null,null,"test:ev","shout",{"w":4}]`,
				`["1","8","test:ev","phx_reply",{"status":"ok","response":{"done":true}}]`,
			},
		},
		{
			name: "broadcast reaches self, then the reply",
			send: `["1","6","test:ev","broadcast",{"y":2}]`,
			want: []any{
				`[null,null,"test:ev","shout",{"y":2}]`,
				`["1","6","test:ev","phx_reply",{"status":"ok","response":{}}]`,
			},
		},
		{
			name: "broadcast_from skips self",
			send: `["1","7","test:ev","broadcast_from",{"z":3}]`,
			want: []any{`["1","7","test:ev","phx_reply",{"status":"ok","response":{}}]`},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.send(tc.send)
			c.expectAnyOrder(tc.want...)
			c.heartbeat(fmt.Sprintf("hb%d", i))
		})
	}

	t.Run("null join_ref is accepted", func(t *testing.T) {
		c.send(`[null,"20","test:ev","echo",{"k":"v"}]`)
		f := c.readArray()
		if f[1] != "20" || f[2] != "test:ev" || f[3] != "phx_reply" {
			t.Fatalf("want a phx_reply to ref 20, got %v", f)
		}
		if got := fmt.Sprint(f[4]); got != "map[response:map[k:v] status:ok]" {
			t.Fatalf("reply payload %s, want status ok with response {\"k\":\"v\"}", got)
		}
	})
}

func TestBroadcastBetweenClients(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))
	a := s.dial(t, "vsn=2.0.0")
	b := s.dial(t, "vsn=2.0.0")
	a.join("test:room", "1", `{}`, `{"joined":"test:room"}`)
	b.join("test:room", "5", `{}`, `{"joined":"test:room"}`)

	a.send(`["1","2","test:room","broadcast",{"m":1}]`)
	a.expectAnyOrder(
		`[null,null,"test:room","shout",{"m":1}]`,
		`["1","2","test:room","phx_reply",{"status":"ok","response":{}}]`,
	)
	b.expect(`[null,null,"test:room","shout",{"m":1}]`)

	a.send(`["1","3","test:room","broadcast_from",{"m":2}]`)
	a.expect(`["1","3","test:room","phx_reply",{"status":"ok","response":{}}]`)
	b.expect(`[null,null,"test:room","shout",{"m":2}]`)
	// a's next frame is the marker's reply: the broadcast_from never reached it
	a.heartbeat("4")
}

func TestDuplicateJoin(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))
	c := s.dial(t, "vsn=2.0.0")
	c.join("test:dup", "1", `{}`, `{"joined":"test:dup"}`)

	c.send(`["3","3","test:dup","phx_join",{}]`)
	c.expect(`["3","3","test:dup","phx_reply",{"status":"ok","response":{"joined":"test:dup"}}]`)
	c.expect(`["1","1","test:dup","phx_close",{}]`)

	t.Run("stale join_ref is dropped", func(t *testing.T) {
		c.send(`["1","4","test:dup","echo",{"stale":true}]`)
		// the connection still works, and the stale event got no answer before this one
		c.send(`["3","5","test:dup","echo",{"fresh":true}]`)
		c.expect(`["3","5","test:dup","phx_reply",{"status":"ok","response":{"fresh":true}}]`)
		c.heartbeat("6")
	})
}

// TestBackToBackJoins sends a second join of a topic before the first is
// answered, as a client rejoining quickly does: as in Phoenix, which joins one
// at a time, the first join is answered first, and only a first join that
// succeeded is closed after the second's reply.
func TestBackToBackJoins(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))
	for i := 0; i < 50; i++ {
		t.Run(fmt.Sprint("refused then accepted ", i), func(t *testing.T) {
			c := s.dial(t, "vsn=2.0.0")
			c.send(`["1","1","test:b2b","phx_join",{"refuse":"no"}]`)
			c.send(`["2","2","test:b2b","phx_join",{}]`)
			c.expect(`["1","1","test:b2b","phx_reply",{"status":"error","response":{"reason":"refused","why":"no"}}]`)
			c.expect(`["2","2","test:b2b","phx_reply",{"status":"ok","response":{"joined":"test:b2b"}}]`)
			// no phx_close for the refused join: the next frame is the echo's reply
			c.send(`["2","3","test:b2b","echo",{}]`)
			c.expect(`["2","3","test:b2b","phx_reply",{"status":"ok","response":{}}]`)
		})
		t.Run(fmt.Sprint("accepted twice ", i), func(t *testing.T) {
			c := s.dial(t, "vsn=2.0.0")
			c.send(`["1","1","test:b2b","phx_join",{}]`)
			c.send(`["2","2","test:b2b","phx_join",{}]`)
			c.expect(`["1","1","test:b2b","phx_reply",{"status":"ok","response":{"joined":"test:b2b"}}]`)
			c.expect(`["2","2","test:b2b","phx_reply",{"status":"ok","response":{"joined":"test:b2b"}}]`)
			c.expect(`["1","1","test:b2b","phx_close",{}]`)
		})
	}
}

func TestLeave(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))
	observer := s.dial(t, "vsn=2.0.0")
	observer.join("test:observer", "1", `{}`, `{"joined":"test:observer"}`)
	c := s.dial(t, "vsn=2.0.0")
	c.join("test:l", "1", `{}`, `{"joined":"test:l"}`)

	t.Run("joined topic: reply ok, then phx_close, and leave runs", func(t *testing.T) {
		c.send(`["1","2","test:l","phx_leave",{}]`)
		c.expect(`["1","2","test:l","phx_reply",{"status":"ok","response":{}}]`)
		c.expect(`["1","1","test:l","phx_close",{}]`)
		observer.expect(`[null,null,"test:observer","left",{"topic":"test:l","reason":"leave"}]`)
		// the channel is gone
		c.send(`["1","3","test:l","echo",{}]`)
		c.expect(`[null,"3","test:l","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
	})
	t.Run("topic not joined: just reply ok", func(t *testing.T) {
		c.send(`[null,"4","test:never","phx_leave",{}]`)
		c.expect(`[null,"4","test:never","phx_reply",{"status":"ok","response":{}}]`)
		c.heartbeat("5")
	})
	t.Run("closing the socket runs leave with closed", func(t *testing.T) {
		c.join("test:l2", "6", `{}`, `{"joined":"test:l2"}`)
		c.conn.Close()
		observer.expect(`[null,null,"test:observer","left",{"topic":"test:l2","reason":"closed"}]`)
	})
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))
	c := s.dial(t, "vsn=2.0.0")
	c.send(`[null,"1","phoenix","heartbeat",{}]`)
	c.expect(`[null,"1","phoenix","phx_reply",{"status":"ok","response":{}}]`)
	c.send(`[null,"2","phoenix","heartbeat",{}]`)
	c.expect(`[null,"2","phoenix","phx_reply",{"status":"ok","response":{}}]`)
}

func TestTooManyChannels(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))
	c := s.dial(t, "vsn=2.0.0")

	const limit = 100 // the SPEC's default
	for i := 1; i <= limit; i++ {
		c.send(fmt.Sprintf(`["%d","%d","test:c%d","phx_join",{}]`, i, i, i))
	}
	// channels join in parallel, so the replies may come in any order
	seen := map[string]bool{}
	for range limit {
		f := c.readArray()
		ref, _ := f[1].(string)
		want := fmt.Sprintf(`[%q,%q,"test:c%s","phx_reply",{"status":"ok","response":{"joined":"test:c%s"}}]`, ref, ref, ref, ref)
		if msg := mismatch(want, frame{data: mustJSON(t, f)}); msg != "" || seen[ref] {
			t.Fatalf("join reply %v: want %s (seen before: %v)", f, want, seen[ref])
		}
		seen[ref] = true
	}

	c.send(`["101","101","test:c101","phx_join",{}]`)
	f := c.readArray()
	if f[1] != "101" || f[2] != "test:c101" || f[3] != "phx_reply" ||
		fmt.Sprint(f[4]) != "map[response:map[reason:too many channels joined] status:error]" {
		t.Fatalf("101st join answered %v, want status error with reason \"too many channels joined\"", f)
	}

	// leaving one makes room again
	c.send(`["1","102","test:c1","phx_leave",{}]`)
	c.expect(`["1","102","test:c1","phx_reply",{"status":"ok","response":{}}]`)
	c.expect(`["1","1","test:c1","phx_close",{}]`)
	c.join("test:c101", "103", `{}`, `{"joined":"test:c101"}`)
}

func TestScriptErrorEndsOnlyThatChannel(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))
	other := s.dial(t, "vsn=2.0.0")
	other.join("test:bystander", "1", `{}`, `{"joined":"test:bystander"}`)

	tests := []struct{ name, event string }{
		{"error raised in handle_in", "crash"},
		{"CPU budget exceeded", "spin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := s.dial(t, "vsn=2.0.0")
			c.join("test:doomed", "1", `{}`, `{"joined":"test:doomed"}`)
			c.join("test:fine", "2", `{}`, `{"joined":"test:fine"}`)

			c.send(fmt.Sprintf(`["1","3","test:doomed",%q,{}]`, tc.event))
			// another socket is served while this channel runs
			other.send(`["1","4","test:bystander","echo",{"served":true}]`)
			other.expect(`["1","4","test:bystander","phx_reply",{"status":"ok","response":{"served":true}}]`)
			c.expect(`["1","1","test:doomed","phx_error",{"reason":"channel_crash"}]`)

			// the socket's other channel carries on
			c.send(`["2","5","test:fine","echo",{"ok":1}]`)
			c.expect(`["2","5","test:fine","phx_reply",{"status":"ok","response":{"ok":1}}]`)
			// the crashed channel has ended, and can be joined again (the JS client's rejoin)
			c.send(`["1","6","test:doomed","echo",{}]`)
			c.expect(`[null,"6","test:doomed","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
			c.join("test:doomed", "7", `{}`, `{"joined":"test:doomed"}`)
			c.send(`["7","8","test:doomed","echo",{"again":true}]`)
			c.expect(`["7","8","test:doomed","phx_reply",{"status":"ok","response":{"again":true}}]`)
		})
	}

	t.Run("the error is logged with file and line", func(t *testing.T) {
		line := 1 + strings.Count(testLua[:strings.Index(testLua, `error("handle_in asked to crash")`)], "\n")
		s.log.waitFor(t, readTimeout, fmt.Sprintf("test.lua:%d", line), "handle_in asked to crash")
	})
}

// TestBroadcastRightAfterJoinReply: a client that has its join reply is subscribed, so a
// broadcast sent the moment the reply arrives reaches it (Phoenix subscribes before it
// replies). Repeated, since a gap between reply and subscription is a race.
func TestBroadcastRightAfterJoinReply(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))
	a := s.dial(t, "vsn=2.0.0")
	b := s.dial(t, "vsn=2.0.0")
	for i := range 200 {
		topic := fmt.Sprintf("test:r%d", i)
		joined := fmt.Sprintf(`{"joined":%q}`, topic)
		a.join(topic, "1", `{}`, joined)
		b.join(topic, "2", `{}`, joined)
		a.send(fmt.Sprintf(`["1","3",%q,"broadcast_from",{"i":%d}]`, topic, i))
		b.expect(fmt.Sprintf(`[null,null,%q,"shout",{"i":%d}]`, topic, i))
		a.expect(fmt.Sprintf(`["1","3",%q,"phx_reply",{"status":"ok","response":{}}]`, topic))
		a.send(fmt.Sprintf(`["1","4",%q,"phx_leave",{}]`, topic))
		a.expect(fmt.Sprintf(`["1","4",%q,"phx_reply",{"status":"ok","response":{}}]`, topic))
		a.expect(fmt.Sprintf(`["1","1",%q,"phx_close",{}]`, topic))
		b.send(fmt.Sprintf(`["2","5",%q,"phx_leave",{}]`, topic))
		b.expect(fmt.Sprintf(`["2","5",%q,"phx_reply",{"status":"ok","response":{}}]`, topic))
		b.expect(fmt.Sprintf(`["2","2",%q,"phx_close",{}]`, topic))
	}
}
