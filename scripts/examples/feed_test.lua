-- feed_test.lua: positions and recovery of feed.lua's history.
local t = require("luachan.test")

local tests = {}

function tests.test_a_rejoin_since_gets_what_it_missed()
  local reader, reply = t.join(t.connect(), "feed:news")
  local start = reply.position                      -- "<epoch>:0": nothing posted yet
  local writer = t.join(t.connect(), "feed:news")
  t.push(writer, "post", { body = "one" })
  t.assert_push(reader, "item", { body = "one" })
  t.leave(reader)
  t.push(writer, "post", { body = "two" })
  t.push(writer, "post", { body = "three" })

  local again, rejoined = t.join(t.connect(), "feed:news", { since = start })
  assert(rejoined.recovered == true, "recovered")
  t.assert_push(again, "item", { body = "one" })
  t.assert_push(again, "item", { body = "two" })
  t.assert_push(again, "item", { body = "three" })
end

function tests.test_an_unknown_position_is_not_recovered()
  local _, reply = t.join(t.connect(), "feed:news", { since = "another-epoch:3" })
  assert(reply.recovered == false, "not recovered")
end

function tests.test_latest_reads_the_history()
  local ch = t.join(t.connect(), "feed:news")
  t.push(ch, "post", { body = "a" })
  t.push(ch, "post", { body = "b" })
  local status, reply = t.push(ch, "latest")
  assert(status == "ok" and #reply.items == 2 and reply.items[2].body == "b")
end

return tests
