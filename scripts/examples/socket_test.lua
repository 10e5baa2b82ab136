-- socket_test.lua: socket.lua decides who connects. luachan test signs tokens with
-- $LUACHAN_SECRET, or a test secret of its own.
local t = require("luachan.test")

local tests = {}

function tests.test_anonymous_sockets_are_welcome()
  assert(t.connect())
end

function tests.test_a_bad_token_is_refused()
  -- a token travels as the JS client's authToken option: info.auth_token in socket.lua
  local sock, reason = t.connect({}, { auth_token = "not-a-token" })
  assert(sock == nil and reason == "refused")
end

function tests.test_a_token_names_the_user_of_every_channel()
  local token = luachan.token.sign({ sub = "alice", exp = math.floor(luachan.now() / 1000) + 60 })
  local sock = t.connect({}, { auth_token = token })
  -- presence.lua takes the user from socket.lua's assigns, not from the join payload
  local ch = t.join(sock, "presence:lobby", { user = "mallory" })
  t.assert_push(ch, "presence_state", { alice = {} })
end

return tests
