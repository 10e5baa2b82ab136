-- rooms_test.lua: the room channels of SPEC section 7, run by `luachan test`.
-- Every test_* function gets a fresh server in process (no network, virtual clock).
local t = require("luachan.test")

local tests = {}

-- join connects a socket and joins topic as user, failing the test if refused.
local function join(topic, payload)
  local ch, reply = t.join(t.connect(), topic, payload)
  assert(ch, "join " .. topic .. " refused: " .. luachan.json.encode(reply or {}))
  return ch
end

function tests.test_lobby_welcomes_everyone()
  local ch = join("rooms:lobby", {})                 -- anonymous
  local alice = join("rooms:lobby", { user = "alice" })
  -- the user named at join is assigns.user: her own message is editable by her only
  t.push(alice, "new:msg", { uid = "alice", body = "hi" })
  t.assert_push(alice, "new:msg", { body = "hi", is_editable = true })
  t.assert_push(ch, "new:msg", { body = "hi", is_editable = false })
end

function tests.test_room_join_needs_a_user()
  local ch, reply = t.join(t.connect(), "rooms:42", {})
  assert(ch == nil and reply.reason == "unauthorized")
  ch, reply = t.join(t.connect(), "rooms:42", { user = 7 })   -- not a string
  assert(ch == nil and reply.reason == "unauthorized")
  assert(join("rooms:42", { user = "bob" }))
end

function tests.test_user_joined_is_filtered_by_the_ignore_list()
  local alice = join("rooms:1", { user = "alice", ignore = { "carol" } })
  local bob = join("rooms:1", { user = "bob" })
  t.assert_broadcast("rooms:1", "user:joined", { user_id = "bob" })
  t.assert_push(alice, "user:joined", { user_id = "bob" })   -- bob is not ignored
  join("rooms:1", { user = "carol" })
  t.assert_push(bob, "user:joined", { user_id = "carol" })
  t.refute_push(alice, "user:joined", { user_id = "carol" }) -- alice ignores carol
end

function tests.test_superadmin_is_for_the_admin_only()
  local ch, reply = t.join(t.connect(), "rooms:superadmin", { user = "alice" })
  assert(ch == nil and reply.reason == "unauthorized")
  assert(join("rooms:superadmin", { user = "admin" }))
end

function tests.test_superadmin_gets_every_new_msg()
  local admin = join("rooms:superadmin", { user = "admin" })
  local bob = join("rooms:7", { user = "bob" })
  t.push(bob, "new:msg", { uid = "bob", body = "psst" })
  t.assert_push(admin, "new:msg", { uid = "bob", body = "psst", is_editable = false })
  t.push(join("rooms:lobby", {}), "new:msg", { uid = "x", body = "lobby too" })
  t.assert_push(admin, "new:msg", { body = "lobby too" })
end

function tests.test_new_msg_is_broadcast_and_editable_by_its_author()
  local alice = join("rooms:1", { user = "alice" })
  local bob = join("rooms:1", { user = "bob" })
  local status, response = t.push(alice, "new:msg", { uid = "alice", body = "hello" })
  assert(status == "ok" and next(response) == nil, "new:msg replies ok {}")
  t.assert_broadcast("rooms:1", "new:msg", { uid = "alice", body = "hello" })
  t.assert_push(alice, "new:msg", { uid = "alice", body = "hello", is_editable = true })
  t.assert_push(bob, "new:msg", { uid = "alice", body = "hello", is_editable = false })
end

function tests.test_current_rank_is_pushed_to_the_caller_only()
  local alice = join("rooms:1", { user = "alice" })
  local bob = join("rooms:1", { user = "bob" })
  local status, response = t.push(alice, "current:rank")
  assert(status == "ok" and type(response.val) == "number")
  t.assert_push(alice, "current:rank", { val = response.val })
  t.refute_push(bob, "current:rank")
end

function tests.test_typing_goes_to_everyone_but_the_typist()
  local alice = join("rooms:1", { user = "alice" })
  local bob = join("rooms:1", { user = "bob" })
  assert(t.push(alice, "typing", { uid = "alice" }) == nil, "typing has no reply")
  t.assert_push(bob, "typing", { uid = "alice" })
  t.refute_push(alice, "typing")
end

return tests
