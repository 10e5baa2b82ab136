-- countdown_test.lua: socket:after under the test's virtual clock. Time stands still
-- until t.advance moves it; the timers due on the way fire in order, none sleeps.
local t = require("luachan.test")

local tests = {}

function tests.test_ticks_every_second_then_done()
  local ch, reply = t.join(t.connect(), "countdown:3")
  assert(reply.left == 3)
  t.advance(999)
  t.refute_push(ch, "tick")                  -- not quite a second yet
  t.advance(1)
  t.assert_push(ch, "tick", { left = 2 })
  t.advance(2000)                            -- two timers fall due, each sets the next
  t.assert_push(ch, "tick", { left = 1 })
  t.assert_push(ch, "done")
end

function tests.test_timers_die_with_the_channel()
  local ch = t.join(t.connect(), "countdown:5")
  t.leave(ch)
  t.advance(10000)
  t.refute_push(ch, "tick")
end

function tests.test_the_topic_names_the_seconds()
  local ch, reply = t.join(t.connect(), "countdown:soon")
  assert(ch == nil and reply.reason:find("countdown:<seconds>"))
end

return tests
