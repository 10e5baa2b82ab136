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
