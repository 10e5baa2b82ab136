-- auction_test.lua: topic state under the virtual clock. Ticks run when t.advance moves
-- time; calls from different channels share one state.
local t = require("luachan.test")

local tests = {}

function tests.test_the_highest_bid_wins_once()
  local alice = t.join(t.connect(), "auction:vase", { user = "alice", seconds = 3 })
  local bob = t.join(t.connect(), "auction:vase", { user = "bob" })
  assert(t.push(alice, "bid", { amount = 10 }) == "ok")
  local status, r = t.push(bob, "bid", { amount = 5 })
  assert(status == "error" and r.reason == "too low" and r.best == 10)
  assert(t.push(bob, "bid", { amount = 12 }) == "ok")
  t.assert_push(alice, "bid", { user = "bob", amount = 12 })
  t.advance(2999)
  t.refute_push(alice, "sold")                    -- not over yet
  t.advance(1)
  t.assert_push(alice, "sold", { winner = "bob", amount = 12 })
  t.advance(5000)
  t.refute_push(alice, "sold")                    -- broadcast once
  status, r = t.push(alice, "bid", { amount = 20 })
  assert(status == "error" and r.reason == "closed")
end

function tests.test_topics_have_their_own_state()
  local a = t.join(t.connect(), "auction:a", { user = "alice" })
  local b = t.join(t.connect(), "auction:b", { user = "alice" })
  assert(t.push(a, "bid", { amount = 50 }) == "ok")
  assert(t.push(b, "bid", { amount = 1 }) == "ok")
end

return tests
