-- presence_test.lua: presence.lua's presence_state and presence_diff (SPEC section 6).
local t = require("luachan.test")

local tests = {}

local function join(user)
  local ch = t.join(t.connect(), "presence:lobby", { user = user })
  assert(ch, "join refused")
  return ch
end

function tests.test_a_joiner_gets_the_state_and_the_others_a_diff()
  local alice = join("alice")
  -- a payload given is matched as a subset: metas is a list of one meta with this status
  t.assert_push(alice, "presence_state", { alice = { metas = { { status = "online" } } } })
  local bob = join("bob")
  t.assert_push(bob, "presence_state", { alice = {}, bob = {} })
  t.assert_push(alice, "presence_diff", { joins = { bob = {} } })
end

function tests.test_a_status_change_is_one_diff()
  local alice, bob = join("alice"), join("bob")
  assert(t.push(bob, "status", { status = "away" }) == "ok")
  t.assert_push(alice, "presence_diff",
    { joins = { bob = { metas = { { status = "away" } } } }, leaves = { bob = {} } })
end

function tests.test_leaving_untracks()
  local alice, bob = join("alice"), join("bob")
  t.leave(bob)
  t.assert_push(alice, "presence_diff", { leaves = { bob = {} } })
  local _, list = t.push(alice, "list")
  assert(list.alice and list.bob == nil)
end

function tests.test_online_at_is_the_virtual_clock()
  local alice = join("alice")
  t.advance(60 * 1000)
  join("bob")
  local _, list = t.push(alice, "list")
  assert(list.bob.metas[1].online_at - list.alice.metas[1].online_at == 60000)
end

function tests.test_join_needs_a_user()
  local ch, reply = t.join(t.connect(), "presence:lobby", {})
  assert(ch == nil and reply.reason == "unauthorized")
end

return tests
