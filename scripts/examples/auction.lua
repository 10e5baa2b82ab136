-- auction.lua: "auction:<name>", one authoritative state per topic (SPEC section 11).
-- Bids go through socket:call to handle_call, which runs one call at a time per topic, so
-- two bids never race; handle_tick counts down once a second while anyone watches, and
-- broadcasts the winner once. The state is data kept by the server, across reloads and
-- (with Redis) across nodes.
local auction = { topic = "auction:*", tick = 1000 }

function auction.init(topic, params)             -- the first join of the topic
  return { left = params.seconds or 10, best = 0, winner = luachan.null, over = false }
end

function auction.join(topic, payload, socket)
  if type(payload.user) ~= "string" then return false, { reason = "join with a user" } end
  socket.assigns.user = payload.user
  return true
end

function auction.handle_in(event, payload, socket)
  if event ~= "bid" then return "error", { reason = "unknown event" } end
  local result, err = socket:call({ user = socket.assigns.user, amount = payload.amount })
  if result == nil then return "error", { reason = err } end
  return result.status, result
end

function auction.handle_call(bid, state, socket)  -- one at a time: returns reply, new state
  if state.over then return { status = "error", reason = "closed" }, state end
  if type(bid.amount) ~= "number" or bid.amount <= state.best then
    return { status = "error", reason = "too low", best = state.best }, state
  end
  state.best, state.winner = bid.amount, bid.user
  socket:broadcast("bid", { user = bid.user, amount = bid.amount })
  return { status = "ok", best = state.best }, state
end

function auction.handle_tick(state, topic)      -- every second while the topic has subscribers
  if state.over then return state end
  state.left = state.left - 1
  if state.left <= 0 then
    state.over = true                             -- saved with the state: broadcast once
    luachan.broadcast(topic, "sold", { winner = state.winner, amount = state.best })
  end
  return state
end

return auction
