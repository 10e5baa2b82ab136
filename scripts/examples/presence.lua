-- presence.lua: "presence:<room>", who is here. Every socket is tracked under its user
-- with an online_at meta; the JS client's Presence turns presence_state and presence_diff
-- into the list:  new Presence(channel).onSync(() => render(presence.list()))
local room = { topic = "presence:*" }

-- meta is what the others see of this socket.
local function meta(socket)
  return { online_at = socket.assigns.online_at, status = socket.assigns.status }
end

function room.join(topic, payload, socket)
  -- a user socket.lua took from a token wins over the one the client names
  local user = socket.assigns.user or payload.user
  if type(user) ~= "string" then
    return false, { reason = "unauthorized" }
  end
  socket.assigns.user = user
  socket.assigns.online_at = luachan.now()
  socket.assigns.status = "online"
  -- track once the join is done, like Phoenix's send(self(), :after_join): this socket
  -- is subscribed by then, so it misses no presence_diff sent after its presence_state
  socket:after(0, "after_join")
  return true
end

function room.handle_info(msg, socket)
  if msg == "after_join" then
    luachan.presence.track(socket, socket.assigns.user, meta(socket))
    socket.assigns.tracked = true
  end
end

function room.handle_in(event, payload, socket)
  if event == "status" and type(payload.status) == "string" then
    -- {status = "away"}: every subscriber gets one presence_diff replacing the old meta
    socket.assigns.status = payload.status
    if socket.assigns.tracked then
      luachan.presence.update(socket, socket.assigns.user, meta(socket))
    end
    return "ok"
  elseif event == "list" then
    -- the same list from the server's side, for clients without a Presence helper
    return "ok", luachan.presence.list(socket.topic)
  end
  return "error", { reason = "unknown event" }
end

-- No leave needed: a channel that ends (leave, disconnect, crash) is untracked by itself.

return room
