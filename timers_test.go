package luachan_test

// socket:after(ms, msg) and handle_info (SPEC section 3): a timer-driven channel ticks in
// order, in turn with its other events, and its timers die with the channel however it
// ends (leave, a new join of the topic, a crash).

import (
	"encoding/json"
	"fmt"
	"testing"
)

// tickLua ticks: "tick:*" pushes tick {n} every payload.every ms from its join until the
// channel ends. A "marker:*" channel pushes one marker after payload.after ms, so a test
// can wait a known time for ticks that must not come without sleeping itself.
const tickLua = `
local t = { topic = "tick:*" }

function t.join(topic, payload, socket)
  socket.assigns.every = payload.every or 5
  socket.assigns.n = 0
  socket:after(socket.assigns.every, "tick")
  return true
end

function t.handle_info(msg, socket)
  if msg == "tick" then
    socket.assigns.n = socket.assigns.n + 1
    socket:push("tick", { n = socket.assigns.n })
    socket:after(socket.assigns.every, "tick")
  else
    socket:push("info", { msg = msg })          -- any JSON-able msg comes back as it went
  end
end

function t.handle_in(event, payload, socket)
  if event == "n" then return "ok", { n = socket.assigns.n } end
  if event == "later" then socket:after(payload.ms, payload.msg) return "ok" end
  if event == "crash" then error("asked to crash") end
  return "error", { reason = "unknown event" }
end

return t
`

const markerLua = `
return {
  topic = "marker:*",
  join = function(topic, payload, socket)
    socket:after(payload.after, "marker")
    return true
  end,
  handle_info = function(msg, socket) socket:push("marker", {}) end,
}
`

// markerWait is how long a marker channel waits: long enough for many ticks of a
// channel ticking every 5 ms, had its timers survived.
const markerWait = 150

// noTickUntilMarker joins marker:<name> on c and requires the marker to be the next
// frame after the join reply: no tick of an ended channel came in markerWait ms.
func noTickUntilMarker(c *wsClient, name, joinRef string) {
	c.tb.Helper()
	topic := "marker:" + name
	c.join(topic, joinRef, fmt.Sprintf(`{"after":%d}`, markerWait), `{}`)
	c.expect(fmt.Sprintf(`[%q,null,%q,"marker",{}]`, joinRef, topic))
}

// tickN returns n if m is a push of tick {n} on topic for joinRef, or -1.
func tickN(tb testing.TB, m wireMsg, joinRef, topic string) int {
	tb.Helper()
	if m.event != "tick" {
		return -1
	}
	if m.joinRef != joinRef || m.ref != nil || m.topic != topic {
		tb.Fatalf("tick %s, want [%q,null,%q,\"tick\",{n}]", m.text, joinRef, topic)
	}
	var p struct{ N int }
	if err := json.Unmarshal(m.payload, &p); err != nil {
		tb.Fatalf("tick %s: %v", m.text, err)
	}
	return p.N
}

func TestTimers(t *testing.T) {
	t.Parallel()
	s := startServer(t, writeScripts(t, map[string]string{"tick.lua": tickLua, "marker.lua": markerLua}))

	t.Run("ticks in order, in turn with handle_in", func(t *testing.T) {
		c := s.dial(t, "vsn=2.0.0")
		c.join("tick:order", "1", `{"every":2}`, `{}`)
		next := 1
		for i := range 5 {
			// each reply tells how many ticks ran before it: exactly the ticks pushed
			// before the reply, as handle_info and handle_in take turns on the channel
			ref := fmt.Sprint(10 + i)
			c.send(`["1","` + ref + `","tick:order","n",{}]`)
			r, before := c.readUntilReply(ref)
			for _, m := range before {
				if n := tickN(t, m, "1", "tick:order"); n != next {
					t.Fatalf("got %s, want tick %d", m.text, next)
				}
				next++
			}
			var got struct{ N int }
			if err := json.Unmarshal(r.replyResponse, &got); err != nil || r.replyStatus != "ok" || got.N != next-1 {
				t.Fatalf("reply %s: want ok {n: %d}, the ticks pushed before it", r.text, next-1)
			}
			for range 3 { // a few more ticks between the questions
				if m := c.readMsg(); tickN(t, m, "1", "tick:order") != next {
					t.Fatalf("got %s, want tick %d", m.text, next)
				}
				next++
			}
		}
	})

	t.Run("stops when the channel leaves", func(t *testing.T) {
		c := s.dial(t, "vsn=2.0.0")
		c.join("tick:leave", "1", `{}`, `{}`)
		for n := 1; n <= 3; n++ {
			if m := c.readMsg(); tickN(t, m, "1", "tick:leave") != n {
				t.Fatalf("got %s, want tick %d", m.text, n)
			}
		}
		c.send(`["1","2","tick:leave","phx_leave",{}]`)
		_, before := c.readUntilReply("2") // ticks may still come until the leave is handled
		for _, m := range before {
			if tickN(t, m, "1", "tick:leave") < 0 {
				t.Fatalf("before the leave reply: got %s, want ticks only", m.text)
			}
		}
		c.expect(`["1","1","tick:leave","phx_close",{}]`)
		noTickUntilMarker(c, "leave", "3")
	})

	t.Run("a new join of the topic ends the old timers", func(t *testing.T) {
		c := s.dial(t, "vsn=2.0.0")
		c.join("tick:again", "1", `{}`, `{}`)
		if m := c.readMsg(); tickN(t, m, "1", "tick:again") != 1 {
			t.Fatalf("got %s, want tick 1", m.text)
		}
		// the new join ticks slowly, so any tick of join 1 after its phx_close would show
		c.send(`["2","2","tick:again","phx_join",{"every":100000}]`)
		_, before := c.readUntilReply("2")
		for _, m := range before {
			if tickN(t, m, "1", "tick:again") < 0 {
				t.Fatalf("before the new join's reply: got %s, want ticks of join 1 only", m.text)
			}
		}
		c.expect(`["1","1","tick:again","phx_close",{}]`)
		noTickUntilMarker(c, "again", "3")
		c.send(`["2","4","tick:again","n",{}]`)
		c.expect(`["2","4","tick:again","phx_reply",{"status":"ok","response":{"n":0}}]`)
	})

	t.Run("a crash ends the timers", func(t *testing.T) {
		c := s.dial(t, "vsn=2.0.0")
		c.join("tick:crash", "1", `{}`, `{}`)
		if m := c.readMsg(); tickN(t, m, "1", "tick:crash") != 1 {
			t.Fatalf("got %s, want tick 1", m.text)
		}
		c.send(`["1","2","tick:crash","crash",{}]`)
		for {
			m := c.readMsg()
			if m.event == "phx_error" {
				if m.text != `["1","1","tick:crash","phx_error",{"reason":"channel_crash"}]` {
					t.Fatalf("got %s, want phx_error channel_crash for join 1", m.text)
				}
				break
			}
			if tickN(t, m, "1", "tick:crash") < 0 {
				t.Fatalf("before phx_error: got %s, want ticks only", m.text)
			}
		}
		noTickUntilMarker(c, "crash", "3")
	})

	t.Run("msg comes back as it went, timers fire in time order", func(t *testing.T) {
		c := s.dial(t, "vsn=2.0.0")
		c.join("tick:msg", "1", `{"every":100000}`, `{}`)
		c.send(`["1","2","tick:msg","later",{"ms":60,"msg":{"second":[1,2.5,"three",{"x":null}]}}]`)
		c.expect(`["1","2","tick:msg","phx_reply",{"status":"ok","response":{}}]`)
		c.send(`["1","3","tick:msg","later",{"ms":0,"msg":"first"}]`)
		c.expect(`["1","3","tick:msg","phx_reply",{"status":"ok","response":{}}]`)
		c.expect(`["1",null,"tick:msg","info",{"msg":"first"}]`)
		// JSON null inside a table stays luachan.null, and comes back as null
		c.expect(`["1",null,"tick:msg","info",{"msg":{"second":[1,2.5,"three",{"x":null}]}}]`)
	})

	t.Run("bad delays are script errors", func(t *testing.T) {
		c := s.dial(t, "vsn=2.0.0")
		c.join("tick:bad", "1", `{"every":100000}`, `{}`)
		c.send(`["1","2","tick:bad","later",{"ms":-1,"msg":"never"}]`)
		c.expect(`["1","1","tick:bad","phx_error",{"reason":"channel_crash"}]`)
		c.heartbeat("3")
	})
}
