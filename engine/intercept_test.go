package engine

import (
	"fmt"
	"sync"
	"testing"
)

// mixLua intercepts "slow" only; handle_in broadcasts its event to the
// others, and handle_out marks the copy it pushes.
const mixLua = `local m = { topic = "mix:*", intercept = { "slow" } }

function m.join(topic, payload, socket)
  return true
end

function m.handle_in(event, payload, socket)
  socket:broadcast_from(event, payload)
  return "ok"
end

function m.handle_out(event, payload, socket)
  payload.seen = true
  socket:push(event, payload)
end

return m
`

// TestFastLaneBehindIntercepted: a fast-laned broadcast that comes while an
// intercepted one waits in (or runs from) the subscriber's mailbox queues
// behind it there, so the subscriber gets them in the order they were sent;
// once the mailbox is clear, the fast lane skips the mailbox again.
func TestFastLaneBehindIntercepted(t *testing.T) {
	t.Cleanup(func() { dispatchHook = nil }) // after the rig's cleanups, which run first
	started, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var kinds []evKind // the broadcasts the subscriber's mailbox ran
	var subCh *channel // the subscriber's channel, set before started closes
	dispatchHook = func(c *channel, kind evKind) {
		if kind != evIntercepted && kind != evFast {
			return
		}
		mu.Lock()
		kinds = append(kinds, kind)
		first := len(kinds) == 1
		mu.Unlock()
		if first {
			subCh = c
			close(started)
			<-release
		}
	}
	r := startRig(t, map[string]string{"mix.lua": mixLua})
	sub, pub := r.dial(t), r.dial(t)
	sub.join("mix:1", "1")
	pub.join("mix:1", "1")

	pub.send(`["1","2","mix:1","slow",{"n":1}]`)
	pub.expect(`["1","2","mix:1","phx_reply",{"status":"ok","response":{}}]`)
	<-started // the subscriber's handle_out is about to run, and waits
	pub.send(`["1","3","mix:1","fast",{"n":2}]`)
	pub.expect(`["1","3","mix:1","phx_reply",{"status":"ok","response":{}}]`)
	waitFor(t, "the fast-laned broadcast to queue behind", func() bool { return subCh.mb.queued() == 1 })
	close(release)
	sub.expect(`["1",null,"mix:1","slow",{"n":1,"seen":true}]`)
	sub.expect(`[null,null,"mix:1","fast",{"n":2}]`)

	r.waitIdle(t)
	pub.send(`["1","4","mix:1","fast",{"n":3}]`)
	pub.expect(`["1","4","mix:1","phx_reply",{"status":"ok","response":{}}]`)
	sub.expect(`[null,null,"mix:1","fast",{"n":3}]`)
	mu.Lock()
	defer mu.Unlock()
	if len(kinds) != 2 || kinds[0] != evIntercepted || kinds[1] != evFast {
		t.Errorf("subscriber's mailbox ran %v, want [intercepted fast]", kinds)
	}
	if subCh.mb.hasUnsentBroadcasts() {
		t.Error("broadcasts still counted unsent")
	}
}

// manyLua's handle_out pushes payload.k copies of each "m" broadcast.
const manyLua = `local m = { topic = "many:*", intercept = { "m" } }

function m.join(topic, payload, socket)
  return true
end

function m.handle_in(event, payload, socket)
  if event == "ping" then
    socket:push("pong", payload)
    return
  end
  socket:broadcast_from(event, payload)
  return "ok"
end

function m.handle_out(event, payload, socket)
  for i = 1, payload.k do
    socket:push(event, { b = payload.b, i = i })
  end
end

return m
`

// TestInterceptedPushesStayWithTheirChannel: the workers lend each channel in
// turn one slice for what its calls push. Subscribers sharing the workers, with
// turns of more pushes than the slice holds and of fewer, and pushing from
// handle_in meanwhile, each get exactly their own copies, in order.
func TestInterceptedPushesStayWithTheirChannel(t *testing.T) {
	r := startRig(t, map[string]string{"many.lua": manyLua})
	pub := r.dial(t)
	pub.join("many:1", "1")
	subs := make([]*rigClient, 6)
	for i := range subs {
		subs[i] = r.dial(t)
		subs[i].join("many:1", fmt.Sprint(10+i))
	}
	counts := []int{lentSends + 9, 1, 3, 0, lentSends, 2, 0, 1, 5, 0, lentSends + 1, 1, 0, 2, 7, 0}
	for n, k := range counts {
		pub.send(fmt.Sprintf(`["1","%d","many:1","m",{"b":%d,"k":%d}]`, n+2, n, k))
		for i, sub := range subs {
			sub.send(fmt.Sprintf(`["%d","p","many:1","ping",{"n":%d}]`, 10+i, n))
		}
		pub.expect(fmt.Sprintf(`["1","%d","many:1","phx_reply",{"status":"ok","response":{}}]`, n+2))
	}
	for i, sub := range subs {
		var want, pongs []string
		for n, k := range counts {
			for j := 1; j <= k; j++ {
				want = append(want, fmt.Sprintf(`["%d",null,"many:1","m",{"b":%d,"i":%d}]`, 10+i, n, j))
			}
			pongs = append(pongs, fmt.Sprintf(`["%d",null,"many:1","pong",{"n":%d}]`, 10+i, n))
		}
		for len(want)+len(pongs) > 0 {
			got := string(sub.readFrame(fmt.Sprintf("%d copies and %d pongs", len(want), len(pongs))))
			switch {
			case len(want) > 0 && got == want[0]:
				want = want[1:]
			case len(pongs) > 0 && got == pongs[0]:
				pongs = pongs[1:]
			default:
				t.Fatalf("subscriber %d got %s, want %q or %q", i, got, want[:min(1, len(want))], pongs[:min(1, len(pongs))])
			}
		}
	}
}
