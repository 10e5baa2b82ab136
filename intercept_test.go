package luachan_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// orderLua intercepts "n": handle_out stamps each copy with the subscriber's
// count of copies seen so far and of pings answered, both kept in assigns,
// which handle_in's "ping" also changes. Were handle_out ever run beside
// handle_in (rather than in turn, as Phoenix runs a channel's callbacks), one
// of them would write back stale assigns and a count would repeat.
const orderLua = `local ord = { topic = "ord:*", intercept = { "n" } }

function ord.join(topic, payload, socket)
  socket.assigns.pings = 0
  socket.assigns.seen = 0
  return true
end

function ord.handle_in(event, payload, socket)
  if event == "fire" then
    socket:broadcast_from("n", payload)
    return "ok"
  end
  socket.assigns.pings = socket.assigns.pings + 1
  return "ok", { pings = socket.assigns.pings }
end

function ord.handle_out(event, payload, socket)
  socket.assigns.seen = socket.assigns.seen + 1
  payload.seen = socket.assigns.seen
  payload.pings = socket.assigns.pings
  socket:push(event, payload)
end

return ord
`

// TestInterceptedOrder sends many intercepted broadcasts to several
// subscribers that push events of their own meanwhile: every subscriber gets
// every copy once, in publish order, each from a handle_out that saw the
// assigns every earlier callback of its channel left.
func TestInterceptedOrder(t *testing.T) {
	t.Parallel()
	const (
		subs      = 12
		msgs      = 400
		pingEvery = 7 // a subscriber pings after every 7th copy it reads
	)
	s := startServer(t, writeScripts(t, map[string]string{"ord.lua": orderLua}))
	pub, clients := joinMany(t, s, "ord:1", subs)

	errs := make(chan error, subs)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := readInOrder(c.conn, msgs, pingEvery); err != nil {
				errs <- fmt.Errorf("subscriber %d: %w", i, err)
			}
		}()
	}
	for n := 1; n <= msgs; n++ {
		pub.send(fmt.Sprintf(`["1","%d","ord:1","fire",{"n":%d}]`, n+1, n))
	}
	for n := 1; n <= msgs; n++ {
		pub.expect(fmt.Sprintf(`["1","%d","ord:1","phx_reply",{"status":"ok","response":{}}]`, n+1))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// readInOrder reads msgs copies of "n" and the replies to the pings it sends
// after every pingEvery-th copy, checking the order and counts of both.
func readInOrder(conn *websocket.Conn, msgs, pingEvery int) error {
	var (
		next     = 1 // the n expected next
		pings    = 0 // pings sent
		answered = 0 // ping replies read
	)
	for next <= msgs || answered < pings {
		_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
		_, data, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("after copy %d and %d of %d ping replies: %w", next-1, answered, pings, err)
		}
		var m [5]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("frame %s: %w", data, err)
		}
		var event string
		_ = json.Unmarshal(m[3], &event)
		switch event {
		case "n":
			var p struct{ N, Seen, Pings int }
			if err := json.Unmarshal(m[4], &p); err != nil {
				return fmt.Errorf("copy %s: %w", data, err)
			}
			if p.N != next || p.Seen != next {
				return fmt.Errorf("got copy n=%d seen=%d, want n=seen=%d: %s", p.N, p.Seen, next, data)
			}
			// The pings answered before this copy was made: at least those whose
			// reply came before it, at most those sent.
			if p.Pings < answered || p.Pings > pings {
				return fmt.Errorf("copy %d counted %d pings; %d answered before it, %d sent", next, p.Pings, answered, pings)
			}
			if next%pingEvery == 0 {
				pings++
				msg := fmt.Sprintf(`["1","p%d","ord:1","ping",{}]`, pings)
				_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
				if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
					return err
				}
			}
			next++
		case "phx_reply":
			answered++
			want := fmt.Sprintf(`["1","p%d","ord:1","phx_reply",{"status":"ok","response":{"pings":%d}}]`, answered, answered)
			if string(data) != want {
				return fmt.Errorf("got %s, want %s", data, want)
			}
		default:
			return fmt.Errorf("unexpected frame %s", data)
		}
	}
	return nil
}

// waitLua's handle_out waits on luachan.store (Redis, in the test): first a
// few reads ("warm"), then at a barrier that opens only once every
// subscriber's handle_out is running at the same time.
const waitLua = `local wait = { topic = "wait:*", intercept = { "go" } }

function wait.join(topic, payload, socket)
  return true
end

function wait.handle_in(event, payload, socket)
  socket:broadcast_from("go", payload)
  return "ok"
end

function wait.handle_out(event, payload, socket)
  if payload.warm then
    for i = 1, 5 do luachan.store.get("warm") end
  else
    local key = "inside:" .. payload.round
    luachan.store.incr(key)
    while luachan.store.incr(key, 0) < payload.n do end
  end
  socket:push(event, payload)
end

return wait
`

// TestWaitingHandleOutRunsInParallel: once a script's handle_out is seen to
// wait on the store, its calls for different channels run at the same time,
// not one after another on the few intercept workers, where the barrier of
// waitLua could never open (the budget would end the calls inside it).
func TestWaitingHandleOutRunsInParallel(t *testing.T) {
	t.Parallel()
	const subs = 6 // more than the 2 workers GOMAXPROCS=2 gives
	rs := startRedis(t)
	s := startServerEnv(t, []string{"GOMAXPROCS=2"}, writeScripts(t, map[string]string{"wait.lua": waitLua}),
		"-pubsub", rs.url(), "-script-timeout", "2s")
	pub, clients := joinMany(t, s, "wait:1", subs)
	pub.send(`["1","2","wait:1","fire",{"warm":true}]`)
	pub.expect(`["1","2","wait:1","phx_reply",{"status":"ok","response":{}}]`)
	for _, c := range clients {
		c.expect(`["1",null,"wait:1","go",{"warm":true}]`)
	}
	pub.send(fmt.Sprintf(`["1","3","wait:1","fire",{"round":1,"n":%d}]`, subs))
	pub.expect(`["1","3","wait:1","phx_reply",{"status":"ok","response":{}}]`)
	for _, c := range clients {
		c.expect(fmt.Sprintf(`["1",null,"wait:1","go",{"round":1,"n":%d}]`, subs))
	}
}

// joinMany joins topic from a publisher and n subscribers, V2, join ref "1"; the
// topic's join must answer {}.
func joinMany(tb testing.TB, s *server, topic string, n int) (pub *wsClient, subs []*wsClient) {
	tb.Helper()
	pub = s.dial(tb, "vsn=2.0.0")
	pub.join(topic, "1", `{}`, `{}`)
	subs = make([]*wsClient, n)
	for i := range subs {
		subs[i] = s.dial(tb, "vsn=2.0.0")
		subs[i].join(topic, "1", `{}`, `{}`)
	}
	return pub, subs
}

// selfLua broadcasts "n" to every subscriber, the sender included, and its
// handle_out does some work first, so the copies take a while to go out.
const selfLua = `local s = { topic = "self:*", intercept = { "n" } }

function s.join(topic, payload, socket)
  return true
end

function s.handle_in(event, payload, socket)
  if event == "fire" then
    socket:broadcast("n", payload)
    return "ok"
  end
  return "ok", { ev = event }
end

function s.handle_out(event, payload, socket)
  local x = 0
  for i = 1, payload.work do x = x + i end
  socket:push(event, { work = payload.work })
end

return s
`

// TestOwnInterceptedBroadcastComesFirst: a channel gets its own broadcast
// before anything its client sends after the reply, as in Phoenix, where the
// channel process has the broadcast in its mailbox before it replies: the
// client's next event is answered after its copy, and a leave does not lose
// it.
func TestOwnInterceptedBroadcastComesFirst(t *testing.T) {
	t.Parallel()
	const others = 200 // queued ahead of the sender on the one worker of GOMAXPROCS=1
	s := startServerEnv(t, []string{"GOMAXPROCS=1"}, writeScripts(t, map[string]string{"self.lua": selfLua}))
	_, subs := joinMany(t, s, "self:1", others)
	x := subs[len(subs)-1]

	x.send(`["1","2","self:1","fire",{"work":20000}]`)
	x.expect(`["1","2","self:1","phx_reply",{"status":"ok","response":{}}]`)
	x.send(`["1","3","self:1","ping",{}]`)
	x.expect(`["1",null,"self:1","n",{"work":20000}]`)
	x.expect(`["1","3","self:1","phx_reply",{"status":"ok","response":{"ev":"ping"}}]`)

	x.send(`["1","4","self:1","fire",{"work":20000}]`)
	x.expect(`["1","4","self:1","phx_reply",{"status":"ok","response":{}}]`)
	x.send(`["1","5","self:1","phx_leave",{}]`)
	x.expect(`["1",null,"self:1","n",{"work":20000}]`)
	x.expect(`["1","5","self:1","phx_reply",{"status":"ok","response":{}}]`)
	x.expect(`["1","1","self:1","phx_close",{}]`)
}

// burstLua's handle_out is heavy for most subscribers and pushes 48 KiB to
// the others, for a burst of broadcasts a handle_in makes.
const burstLua = `local s = { topic = "burst:*", intercept = { "n" } }

function s.join(topic, payload, socket)
  socket.assigns.heavy = payload.heavy
  return true
end

function s.handle_in(event, payload, socket)
  for i = 1, payload.count do luachan.broadcast(socket.topic, "n", { i = i }) end
  return "ok"
end

local big = string.rep("x", 48 * 1024)

function s.handle_out(event, payload, socket)
  if socket.assigns.heavy then
    local x = 0
    for i = 1, 2000 do x = x + i end
    return
  end
  socket:push(event, { i = payload.i, pad = big })
end

return s
`

// TestInterceptedBurstIsWrittenAsItGoes: a client reading as fast as it can
// gets every copy of a burst of 100 intercepted broadcasts of 48 KiB (4.7 MiB,
// over the 4 MiB queue bound only if its copies were held back until the
// workers were through the whole burst).
func TestInterceptedBurstIsWrittenAsItGoes(t *testing.T) {
	t.Parallel()
	const count = 100
	s := startServerEnv(t, []string{"GOMAXPROCS=2"}, writeScripts(t, map[string]string{"burst.lua": burstLua}))
	for range 4 {
		h := s.dial(t, "vsn=2.0.0")
		h.join("burst:1", "1", `{"heavy":true}`, `{}`)
	}
	pub, subs := joinMany(t, s, "burst:1", 1)
	pub.send(fmt.Sprintf(`["1","2","burst:1","go",{"count":%d}]`, count))
	got := 0
	for got < count {
		_ = subs[0].conn.SetReadDeadline(time.Now().Add(readTimeout))
		_, data, err := subs[0].conn.ReadMessage()
		if err != nil {
			t.Fatalf("after %d of %d copies: %v", got, count, err)
		}
		var m [5]json.RawMessage
		if json.Unmarshal(data, &m) == nil && string(m[3]) == `"n"` {
			got++
		}
	}
}

// fullLua lets a test fill a channel's mailbox: "hold" sends one broadcast
// whose handle_out waits until "release", "burst" sends payload.count more
// once that handle_out is running. leave announces itself on full:pub.
const fullLua = `local s = { topic = "full:*", intercept = { "n" } }

function s.join(topic, payload, socket)
  socket.assigns.held = payload.held
  return true
end

function s.handle_in(event, payload, socket)
  local store = luachan.store
  if event == "hold" then
    luachan.broadcast("full:1", "n", { hold = true })
  elseif event == "burst" then
    while not store.get("inside") do end
    for i = 1, payload.count do luachan.broadcast("full:1", "n", { i = i }) end
  elseif event == "release" then
    store.set("go", true)
  end
  return "ok"
end

function s.handle_out(event, payload, socket)
  if payload.hold then
    luachan.store.set("inside", true)
    while not luachan.store.get("go") do end
  end
end

function s.leave(reason, socket)
  if socket.assigns.held then
    luachan.broadcast("full:pub", "left", { reason = reason })
  end
end

return s
`

// TestLeaveWithAFullMailbox: a phx_leave that finds the channel's mailbox
// full (1024 intercepted broadcasts behind a slow handle_out) is still taken,
// and the channel ends with its leave callback, instead of living on
// subscribed, forgotten by its session, after its socket was closed.
func TestLeaveWithAFullMailbox(t *testing.T) {
	t.Parallel()
	s := startServer(t, writeScripts(t, map[string]string{"full.lua": fullLua}), "-script-timeout", "10s")
	pub := s.dial(t, "vsn=2.0.0")
	pub.join("full:pub", "1", `{}`, `{}`)
	x := s.dial(t, "vsn=2.0.0")
	x.join("full:1", "1", `{"held":true}`, `{}`)

	pub.send(`["1","2","full:pub","hold",{}]`)
	pub.expect(`["1","2","full:pub","phx_reply",{"status":"ok","response":{}}]`)
	pub.send(`["1","3","full:pub","burst",{"count":1024}]`) // engine.DefaultMaxPending
	pub.expect(`["1","3","full:pub","phx_reply",{"status":"ok","response":{}}]`)
	x.send(`["1","4","full:1","phx_leave",{}]`)
	x.heartbeat("hb") // answered after the leave is queued: the socket reads in order
	pub.send(`["1","5","full:pub","release",{}]`)
	pub.expect(`["1","5","full:pub","phx_reply",{"status":"ok","response":{}}]`)
	pub.expect(`[null,null,"full:pub","left",{"reason":"leave"}]`)
	x.expect(`["1","4","full:1","phx_reply",{"status":"ok","response":{}}]`)
	x.expect(`["1","1","full:1","phx_close",{}]`)
}
