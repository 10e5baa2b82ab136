package engine

import "testing"

// roomsLua answers every event with the script's name and the event, so a
// test sees which script serves a topic.
func roomsLua(name, pattern string) string {
	return `local r = { topic = "` + pattern + `" }

function r.join(topic, payload, socket)
  if payload.refuse then
    return false, { reason = "refused" }
  end
  socket.assigns.joined_by = "` + name + `"
  return true
end

function r.handle_in(event, payload, socket)
  if event == "boom" then
    error("boom")
  end
  return "ok", { script = socket.assigns.joined_by, event = event }
end

return r
`
}

// TestRouting: a join goes to the script with the most specific pattern, a
// topic no script serves is refused, and so is an event for a topic not
// joined, or beyond the socket's channel limit; an event for an earlier join
// of a topic is dropped.
func TestRouting(t *testing.T) {
	r := startRigWith(t, map[string]string{
		"any.lua":   roomsLua("any", "rooms:*"),
		"lobby.lua": roomsLua("lobby", "rooms:lobby"),
	}, Config{MaxChannels: 2})
	c := r.dial(t)

	c.join("rooms:lobby", "1")
	c.send(`["1","2","rooms:lobby","hi",{}]`)
	c.expect(`["1","2","rooms:lobby","phx_reply",{"status":"ok","response":{"script":"lobby","event":"hi"}}]`)
	c.join("rooms:7", "3")
	c.send(`["3","4","rooms:7","hi",{}]`)
	c.expect(`["3","4","rooms:7","phx_reply",{"status":"ok","response":{"script":"any","event":"hi"}}]`)

	c.send(`["5","5","nowhere","phx_join",{}]`)
	c.expect(`[null,"5","nowhere","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
	c.send(`["6","6","rooms:8","phx_join",{}]`)
	c.expect(`["6","6","rooms:8","phx_reply",{"status":"error","response":{"reason":"too many channels joined"}}]`)
	c.send(`[null,"7","rooms:9","hi",{}]`)
	c.expect(`[null,"7","rooms:9","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)

	c.send(`["0","8","rooms:7","hi",{}]`) // join ref of no join of rooms:7: dropped
	c.heartbeat("9")
	if n := r.eng.count.stale.Load(); n != 1 {
		t.Errorf("stale events counted: %d, want 1", n)
	}
}
