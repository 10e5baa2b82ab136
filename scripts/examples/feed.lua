-- feed.lua: "feed:<name>" news feeds that a client never misses an item of, even
-- across a dropped connection or a redeploy of its page.
--
-- history keeps each topic's last `size` broadcasts for `ttl` seconds. Every broadcast
-- on a feed then carries its position ("<epoch>:<n>") as the frame's ref, which the
-- phoenix JS client passes as the second argument of channel.on(event, (payload, ref)).
-- A client that joins with { since = <the last ref it saw> } first gets every item
-- after it, then the live ones; the join reply says { recovered = true, position = .. },
-- or recovered = false when the position is too old: then reload the feed, e.g. with
-- luachan.history or GET /api/history.
local feed = {
  topic = "feed:*",
  history = { size = 500, ttl = 600 },
}

function feed.join(topic, payload, socket)
  return true
end

-- "post" publishes an item to the feed (in a real app, check who may post).
function feed.handle_in(event, payload, socket)
  if event == "post" and type(payload.body) == "string" then
    socket:broadcast("item", { body = payload.body })
    return "ok"
  elseif event == "latest" then
    -- the last few items, e.g. to fill a page before the live ones arrive
    local items = luachan.array()
    for i, e in ipairs(luachan.history(socket.topic, { limit = 10 })) do
      items[i] = { position = e.position, body = e.payload.body }
    end
    return "ok", { items = items }
  end
  return "error", { reason = "unknown event" }
end

return feed
