package engine

import (
	"strings"
	"testing"
)

// panicLua broadcasts "n" (intercepted) to the others on "fire" and answers
// every other event with its name.
const panicLua = `local p = { topic = "p:*", intercept = { "n" } }

function p.join(topic, payload, socket)
  return true
end

function p.handle_in(event, payload, socket)
  if event == "fire" then
    socket:broadcast_from("n", payload)
  end
  return "ok", { ev = event }
end

function p.handle_out(event, payload, socket)
  socket:push(event, payload)
end

return p
`

// TestPanicCrashesTheChannel: a panic in Go while a channel handles an event,
// wherever that runs (the socket's reader, the channel's own goroutine, an
// intercept worker), crashes that channel only: its client gets phx_error (a
// join crashed reply for a join), the socket and the server carry on, and the
// engine closes without waiting for a channel still marked running.
func TestPanicCrashesTheChannel(t *testing.T) {
	tests := []struct {
		name  string
		kind  evKind
		setup func(r *rig, c *rigClient) // joins "p:x" and makes the event arrive
		want  string
	}{
		{
			name: "client event on the reader", kind: evIn,
			setup: func(r *rig, c *rigClient) {
				c.join("p:x", "1") // the socket's only channel: its events run on the reader
				c.send(`["1","2","p:x","boom",{}]`)
			},
			want: `["1","1","p:x","phx_error",{"reason":"channel_crash"}]`,
		},
		{
			name: "client event on the mailbox", kind: evIn,
			setup: func(r *rig, c *rigClient) {
				c.join("p:other", "9") // two channels: events go through the mailbox
				c.join("p:x", "1")
				c.send(`["1","2","p:x","boom",{}]`)
			},
			want: `["1","1","p:x","phx_error",{"reason":"channel_crash"}]`,
		},
		{
			name: "intercepted broadcast on a worker", kind: evIntercepted,
			setup: func(r *rig, c *rigClient) {
				c.join("p:x", "1")
				pub := r.dial(t)
				pub.join("p:x", "1")
				pub.send(`["1","2","p:x","fire",{}]`)
				pub.expect(`["1","2","p:x","phx_reply",{"status":"ok","response":{"ev":"fire"}}]`)
			},
			want: `["1","1","p:x","phx_error",{"reason":"channel_crash"}]`,
		},
		{
			name: "join", kind: evJoin,
			setup: func(r *rig, c *rigClient) {
				c.send(`["1","1","p:x","phx_join",{}]`)
			},
			want: `["1","1","p:x","phx_reply",{"status":"error","response":{"reason":"join crashed"}}]`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := startRig(t, map[string]string{"p.lua": panicLua})
			// Only the target's channel on p:x gets an event of tc.kind.
			dispatchHook = func(c *channel, kind evKind) {
				if c.topic == "p:x" && kind == tc.kind {
					panic("test: panic in handling " + kind.String())
				}
			}
			t.Cleanup(func() { dispatchHook = nil }) // after the rig's cleanup: the engine is closed
			target := r.dial(t)
			tc.setup(r, target)
			target.expect(tc.want)

			target.heartbeat("hb") // the socket lives on
			target.join("p:y", "5")
			target.send(`["5","6","p:y","ping",{}]`)
			target.expect(`["5","6","p:y","phx_reply",{"status":"ok","response":{"ev":"ping"}}]`)
			if n := r.eng.count.crashes.Load() + r.eng.count.joinsCrashed.Load(); n != 1 {
				t.Errorf("crashes counted: %d, want 1", n)
			}
			if log := r.log.String(); !strings.Contains(log, "channel panicked") || !strings.Contains(log, "panic_test.go") {
				t.Errorf("no log line with the panic and its stack:\n%s", log)
			}
			if err := r.close(); err != nil {
				t.Errorf("closing after the panic: %v", err)
			}
		})
	}
}
