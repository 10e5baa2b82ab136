package luachan_test

// Empty arrays through a script (SPEC section 3, values), and scripts/examples/realtime.lua
// with realtime-js's binary kinds 3 and 4 on the wire (the client itself: realtime.test.mjs).

import (
	"testing"

	"github.com/gorilla/websocket"
)

// echoArraysLua answers an event with its payload, pushes it back, broadcasts it through
// an intercepting handle_out, and keeps it in assigns for the next event.
const echoArraysLua = `
local echo = { topic = "echo:*", intercept = { "again" } }
function echo.join(topic, payload, socket)
  socket.assigns.kept = payload
  return true, { empty = luachan.array(), list = luachan.array(1, "two") }
end
function echo.handle_in(event, payload, socket)
  if event == "kept" then return "ok", socket.assigns.kept end
  socket:push("echo", payload)
  socket:broadcast("again", payload)
  return "ok", payload
end
function echo.handle_out(event, payload, socket) socket:push(event, payload) end
return echo
`

// TestEmptyArraysRoundTrip: [] stays [] in a reply, a push, an intercepted broadcast and
// assigns; luachan.array() is [] in a join reply.
func TestEmptyArraysRoundTrip(t *testing.T) {
	t.Parallel()
	s := startServer(t, writeScripts(t, map[string]string{"echo.lua": echoArraysLua}))
	c := s.dial(t, "vsn=2.0.0")
	const p = `{"a":[],"b":[[],{}],"c":{},"d":{"e":[]}}`
	c.join("echo:1", "1", p, `{"empty":[],"list":[1,"two"]}`)
	c.send(`["1","2","echo:1","echo",` + p + `]`)
	c.expectAnyOrder(
		`["1",null,"echo:1","echo",`+p+`]`,
		`["1",null,"echo:1","again",`+p+`]`,
		`["1","2","echo:1","phx_reply",{"status":"ok","response":`+p+`}]`,
	)
	c.send(`["1","3","echo:1","kept",{}]`)
	c.expect(`["1","3","echo:1","phx_reply",{"status":"ok","response":` + p + `}]`)
}

// realtimeJoin is the join payload realtime-js sends for a channel with broadcast self
// and ack on.
const realtimeJoin = `{"config":{"broadcast":{"ack":true,"self":true},"presence":{"key":"","enabled":false},"postgres_changes":[],"private":false}}`

// userPush builds realtime-js's kind 3 (its serializer.js _encodeUserBroadcastPush):
// kind, u8 lengths of join_ref, ref, topic, event and metadata, the payload's encoding
// (0 binary, 1 JSON), the strings, then the payload.
func userPush(joinRef, ref, topic, event string, encoding byte, payload string) []byte {
	b := []byte{3, byte(len(joinRef)), byte(len(ref)), byte(len(topic)), byte(len(event)), 0, encoding}
	b = append(b, joinRef+ref+topic+event...)
	return append(b, payload...)
}

// TestRealtimeExampleWire: realtime.lua answers a realtime-js join as Supabase does
// ({"postgres_changes":[]}), and a kind 3 broadcast with self and ack comes back to its
// sender as text with its ack; a binary one reaches realtime-js as kind 4 and a Phoenix
// client as kind 2; postgres_changes are refused.
func TestRealtimeExampleWire(t *testing.T) {
	t.Parallel()
	s := startExamples(t)
	rt := s.dial(t, "vsn=2.0.0&apikey=anon")
	rt.join("realtime:room", "1", realtimeJoin, `{"postgres_changes":[]}`)
	phx := s.dial(t, "vsn=2.0.0")
	phx.join("realtime:room", "1", `{}`, `{"postgres_changes":[]}`)

	rt.write(websocket.BinaryMessage, userPush("1", "2", "realtime:room", "cursor", 1, `{"x":[]}`))
	msg := `{"type":"broadcast","event":"cursor","payload":{"x":[]}}`
	rt.expectAnyOrder(
		`[null,null,"realtime:room","broadcast",`+msg+`]`,
		`["1","2","realtime:room","phx_reply",{"status":"ok","response":{}}]`,
	)
	phx.expect(`[null,null,"realtime:room","broadcast",` + msg + `]`)

	rt.write(websocket.BinaryMessage, userPush("1", "3", "realtime:room", "blob", 0, "\x00\xff"))
	rt.expectAnyOrder(
		binFrame("\x04\x0d\x04\x00\x00realtime:roomblob\x00\xff"),
		`["1","3","realtime:room","phx_reply",{"status":"ok","response":{}}]`,
	)
	phx.expectBinary(binBroadcast("realtime:room", "blob", []byte("\x00\xff")))

	rt.send(`["4","4","realtime:changes","phx_join",{"config":{"postgres_changes":[{"event":"*","schema":"public"}]}}]`)
	rt.expect(`["4","4","realtime:changes","phx_reply",{"status":"error","response":{"reason":"postgres_changes are not served by luachan"}}]`)
}
