package engine

import (
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
