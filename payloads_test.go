package luachan_test

// SPEC section 2: a payload is any JSON value, as Phoenix's serializers accept it, and
// array elements after the fifth are ignored. A null payload on heartbeat, phx_join and
// phx_leave counts as {}; any other event hands the script the value as Lua (nil for
// null). Real clients send these: github.com/nshafer/phx sends null for "no params".

import (
	"testing"
)

// shapeLua tells, in its join reply and in its reply to "shape", what Lua type the
// payload arrived as and its value (JSON null for nil).
const shapeLua = `
local s = { topic = "shape:*" }

local function describe(payload)
  local value = payload
  if payload == nil then value = luachan.null end
  return { type = type(payload), value = value }
end

function s.join(topic, payload, socket)
  return true, describe(payload)
end

function s.handle_in(event, payload, socket)
  if event == "shape" then return "ok", describe(payload) end
  return "error", { reason = "unknown event " .. event }
end

return s
`

func TestPayloadShapes(t *testing.T) {
	t.Parallel()
	s := startServer(t, writeScripts(t, map[string]string{"shape.lua": shapeLua}))

	t.Run("V2", func(t *testing.T) {
		c := s.dial(t, "vsn=2.0.0")
		// the heartbeat and join of github.com/nshafer/phx
		c.send(`["","1","phoenix","heartbeat",null]`)
		c.expect(`[null,"1","phoenix","phx_reply",{"status":"ok","response":{}}]`)
		c.send(`["2","2","shape:v2","phx_join",null]`)
		c.expect(`["2","2","shape:v2","phx_reply",{"status":"ok","response":{"type":"table","value":{}}}]`)

		for _, tc := range []struct{ name, payload, reply string }{
			{"null is nil", `null`, `{"type":"nil","value":null}`},
			{"a string", `"hi"`, `{"type":"string","value":"hi"}`},
			{"a number", `42`, `{"type":"number","value":42}`},
			{"a boolean", `false`, `{"type":"boolean","value":false}`},
			{"an array", `[1,"two",{"three":3}]`, `{"type":"table","value":[1,"two",{"three":3}]}`},
			{"an object", `{"a":null}`, `{"type":"table","value":{"a":null}}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c.send(`["2","3","shape:v2","shape",` + tc.payload + `]`)
				c.expect(`["2","3","shape:v2","phx_reply",{"status":"ok","response":` + tc.reply + `}]`)
			})
		}

		t.Run("elements after the fifth are ignored", func(t *testing.T) {
			c.send(`["2","4","shape:v2","shape",{"n":1},{"ignored":true},"x",null]`)
			c.expect(`["2","4","shape:v2","phx_reply",{"status":"ok","response":{"type":"table","value":{"n":1}}}]`)
		})

		t.Run("a join with a string payload", func(t *testing.T) {
			c.send(`["5","5","shape:string","phx_join","params"]`)
			c.expect(`["5","5","shape:string","phx_reply",{"status":"ok","response":{"type":"string","value":"params"}}]`)
		})

		c.send(`["2","6","shape:v2","phx_leave",null]`)
		c.expectAnyOrder(
			`["2","6","shape:v2","phx_reply",{"status":"ok","response":{}}]`,
			`["2","2","shape:v2","phx_close",{}]`,
		)
		c.heartbeat("7") // the socket is still open
	})

	t.Run("V1", func(t *testing.T) {
		c := s.dial(t, "vsn=1.0.0")
		c.send(`{"topic":"phoenix","event":"heartbeat","payload":null,"ref":"1"}`)
		c.expect(`{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"1"}`)
		c.send(`{"topic":"shape:v1","event":"phx_join","payload":null,"ref":"2"}`)
		c.expect(`{"topic":"shape:v1","event":"phx_reply","payload":{"status":"ok","response":{"type":"table","value":{}}},"ref":"2"}`)
		c.send(`{"topic":"shape:v1","event":"shape","payload":null,"ref":"3"}`)
		c.expect(`{"topic":"shape:v1","event":"phx_reply","payload":{"status":"ok","response":{"type":"nil","value":null}},"ref":"3"}`)
		c.send(`{"topic":"shape:v1","event":"shape","payload":[true],"ref":"4"}`)
		c.expect(`{"topic":"shape:v1","event":"phx_reply","payload":{"status":"ok","response":{"type":"table","value":[true]}},"ref":"4"}`)
		c.send(`{"topic":"shape:v1","event":"phx_leave","payload":null,"ref":"5"}`)
		c.expectAnyOrder(
			`{"topic":"shape:v1","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"5"}`,
			`{"topic":"shape:v1","event":"phx_close","payload":{},"ref":null}`, // V1 never sends join_ref
		)
	})
}
