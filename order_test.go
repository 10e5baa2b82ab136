package luachan_test

// End-to-end tests of the order in which a channel's output reaches its client
// (issue 11): fast-laned broadcasts behind intercepted ones of the same
// sender, luachan.broadcast and luachan.disconnect in call order with a
// callback's pushes, and a reply to every phx_leave.

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// mixLua intercepts "slow" only: handle_in broadcasts "slow" then "fast",
// and handle_out does some work before pushing its copy.
const mixLua = `local m = { topic = "mix:*", intercept = { "slow" } }

function m.join(topic, payload, socket)
  return true
end

function m.handle_in(event, payload, socket)
  socket:broadcast_from("slow", payload)
  socket:broadcast_from("fast", payload)
  return "ok"
end

function m.handle_out(event, payload, socket)
  local x = 0
  for i = 1, 5000 do x = x + i end
  socket:push(event, payload)
end

return m
`

// TestFastLaneWaitsForInterceptedBroadcasts: a fast-laned broadcast sent after
// an intercepted one by the same sender reaches every subscriber after the
// intercepted one's copy, as the README promises per sender and topic.
func TestFastLaneWaitsForInterceptedBroadcasts(t *testing.T) {
	t.Parallel()
	const rounds = 20
	s := startServer(t, writeScripts(t, map[string]string{"mix.lua": mixLua}))
	pub, subs := joinMany(t, s, "mix:1", 3)
	for n := 1; n <= rounds; n++ {
		pub.send(fmt.Sprintf(`["1","%d","mix:1","go",{"n":%d}]`, n+1, n))
		pub.expect(fmt.Sprintf(`["1","%d","mix:1","phx_reply",{"status":"ok","response":{}}]`, n+1))
	}
	for _, sub := range subs {
		for n := 1; n <= rounds; n++ {
			sub.expect(fmt.Sprintf(`["1",null,"mix:1","slow",{"n":%d}]`, n))
			sub.expect(fmt.Sprintf(`[null,null,"mix:1","fast",{"n":%d}]`, n))
		}
	}
}

// sendsLua pushes and broadcasts through luachan in one callback; socket.lua
// gives each socket the id "user:<params.user>".
const sendsLua = `local o = { topic = "sends:*" }

function o.join(topic, payload, socket)
  return true
end

function o.handle_in(event, payload, socket)
  if event == "go" then
    socket:push("first", {})
    luachan.broadcast(socket.topic, "second", {})
    socket:push("third", {})
    return "ok", { done = true }
  end
  socket:push("bye", {})
  luachan.disconnect(socket.id)
end

return o
`

const userSocketLua = `return {
  connect = function(params, info)
    return true, {}, "user:" .. params.user
  end,
}
`

// TestLuachanSendsFollowPushes: luachan.broadcast and luachan.disconnect made
// inside a callback take effect after it returns, in call order with its
// pushes, as socket:broadcast does: the client sees the push made before the
// call first.
func TestLuachanSendsFollowPushes(t *testing.T) {
	t.Parallel()
	s := startServer(t, writeScripts(t, map[string]string{"sends.lua": sendsLua, "socket.lua": userSocketLua}))

	c := s.dial(t, "vsn=2.0.0&user=a")
	c.join("sends:1", "1", `{}`, `{}`)
	c.send(`["1","2","sends:1","go",{}]`)
	c.expect(`["1",null,"sends:1","first",{}]`)
	c.expect(`[null,null,"sends:1","second",{}]`)
	c.expect(`["1",null,"sends:1","third",{}]`)
	c.expect(`["1","2","sends:1","phx_reply",{"status":"ok","response":{"done":true}}]`)

	c.send(`["1","3","sends:1","bye",{}]`)
	c.expect(`["1",null,"sends:1","bye",{}]`)
	c.expectClose(1001)
}

// slowJoinLua's join waits until the store holds its topic, then refuses or
// raises; ctl.lua's "open" sets a store key.
const slowJoinLua = `local s = { topic = "sj:*" }

function s.join(topic, payload, socket)
  while not luachan.store.get(topic) do end
  if payload.raise then error("join fails") end
  return false
end

return s
`

const ctlLua = `local c = { topic = "ctl:*" }

function c.join(topic, payload, socket)
  return true
end

function c.handle_in(event, payload, socket)
  if event == "open" then
    luachan.store.set(payload.key, true)
    return "ok"
  end
  return "ok", { v = luachan.store.get(payload.key) or false }
end

return c
`

// TestLeaveBehindAFailedJoin: a phx_leave the client sends while its join is
// still running is answered ok after the join's error reply, whether the join
// refuses or raises.
func TestLeaveBehindAFailedJoin(t *testing.T) {
	t.Parallel()
	s := startServer(t, writeScripts(t, map[string]string{"sj.lua": slowJoinLua, "ctl.lua": ctlLua}), "-script-timeout", "10s")
	tests := []struct {
		name, payload, reply string
	}{
		{"refused", `{}`, `{"reason":"unauthorized"}`},
		{"raises", `{"raise":true}`, `{"reason":"join crashed"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topic := "sj:" + tc.name
			c := s.dial(t, "vsn=2.0.0")
			c.join("ctl:1", "1", `{}`, `{}`)
			c.send(fmt.Sprintf(`["2","2",%q,"phx_join",%s]`, topic, tc.payload))
			c.send(fmt.Sprintf(`["2","3",%q,"phx_leave",{}]`, topic))
			c.heartbeat("hb") // the leave is read and queued behind the join
			c.send(fmt.Sprintf(`["1","4","ctl:1","open",{"key":%q}]`, topic))
			c.expectAnyOrder(
				`["1","4","ctl:1","phx_reply",{"status":"ok","response":{}}]`,
				fmt.Sprintf(`["2","2",%q,"phx_reply",{"status":"error","response":%s}]`, topic, tc.reply),
				fmt.Sprintf(`["2","3",%q,"phx_reply",{"status":"ok","response":{}}]`, topic),
			)
		})
	}
}

// holdLua's handle_in marks itself inside, then waits until the store's
// "go" is set.
const holdLua = `local h = { topic = "hold:*" }

function h.join(topic, payload, socket)
  return true
end

function h.handle_in(event, payload, socket)
  luachan.store.set("inside", true)
  while not luachan.store.get("go") do end
  return "ok"
end

return h
`

// TestLeaveWhileStopping: a phx_leave that reaches a channel already ending
// (its script was deleted while a callback ran) is still answered ok.
func TestLeaveWhileStopping(t *testing.T) {
	t.Parallel()
	dir := writeScripts(t, map[string]string{"hold.lua": holdLua, "ctl.lua": ctlLua})
	s := startServer(t, dir, "-script-timeout", "10s")
	c := s.dial(t, "vsn=2.0.0")
	c.join("ctl:1", "1", `{}`, `{}`)
	c.join("hold:1", "2", `{}`, `{}`)
	c.send(`["2","3","hold:1","wait",{}]`)
	ref := 10
	err := poll(readTimeout, func() error { // until handle_in is inside
		ref++
		c.send(fmt.Sprintf(`["1","%d","ctl:1","check",{"key":"inside"}]`, ref))
		f := c.read()
		if mismatch(fmt.Sprintf(`["1","%d","ctl:1","phx_reply",{"status":"ok","response":{"v":true}}]`, ref), f) != "" {
			return fmt.Errorf("handle_in not inside yet: %s", f)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "hold.lua")); err != nil {
		t.Fatal(err)
	}
	s.log.waitFor(t, readTimeout, "script removed", "hold.lua")
	c.send(`["2","4","hold:1","phx_leave",{}]`)
	c.heartbeat("hb") // the leave is read
	c.send(`["1","5","ctl:1","open",{"key":"go"}]`)
	want := `["2","4","hold:1","phx_reply",{"status":"ok","response":{}}]`
	deadline := time.Now().Add(readTimeout)
	var got []frame
	for time.Now().Before(deadline) {
		f := c.readWithin("the leave's reply", time.Until(deadline))
		got = append(got, f)
		if mismatch(want, f) == "" {
			return
		}
	}
	t.Fatalf("no reply to the phx_leave; got %s", got)
}
