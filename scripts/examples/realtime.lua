-- realtime.lua: "realtime:<room>" for Supabase's realtime-js client, Broadcast and Presence
-- as Supabase's own server answers them:
--   const client = new RealtimeClient("ws://localhost:4000/socket", { params: { apikey: "any" } })
--   client.channel("room", { config: { broadcast: { self: true, ack: true }, presence: { key: "ann" } } })
-- (realtime-js names the topic "realtime:room" itself). Postgres changes are not served.
local realtime = { topic = "realtime:*" }

function realtime.join(topic, payload, socket)
  local config = type(payload.config) == "table" and payload.config or {}
  if type(config.postgres_changes) == "table" and #config.postgres_changes > 0 then
    return false, { reason = "postgres_changes are not served by luachan" }
  end
  local broadcast = type(config.broadcast) == "table" and config.broadcast or {}
  local presence = type(config.presence) == "table" and config.presence or {}
  socket.assigns.self = broadcast.self == true -- the sender gets its own broadcasts too
  socket.assigns.ack = broadcast.ack == true   -- the sender waits for a reply to each
  -- the key this client's presence is tracked under; realtime-js sends "" unless set
  local key = presence.key
  if type(key) ~= "string" or key == "" then
    key = "anon:" .. luachan.store.incr("realtime:presence_key")
  end
  socket.assigns.presence_key = key
  -- the user's JWT, also sent later as an access_token event when it is refreshed;
  -- with -secret, luachan.token.verify(token) would check it here
  socket.assigns.access_token = payload.access_token
  if presence.enabled then
    socket:after(0, "presence_state") -- once subscribed: it then misses no diff
  end
  return true, { postgres_changes = luachan.array() } -- [] as Supabase replies, not {}
end

function realtime.handle_info(msg, socket)
  if msg == "presence_state" then
    socket:push("presence_state", luachan.presence.list(socket.topic))
  end
end

-- send (and send_from when self is off) honours the sender's broadcast.self.
local function send(socket, event, payload)
  if socket.assigns.self then
    socket:broadcast(event, payload)
  else
    socket:broadcast_from(event, payload)
  end
end

function realtime.handle_in(event, payload, socket)
  if payload == nil or payload == luachan.null then
    return "error", { reason = "a payload is required" }
  elseif type(payload) == "string" then
    -- a broadcast of an ArrayBuffer arrives as that event with the bytes; realtime-js
    -- clients get it back as a binary broadcast, Phoenix clients as a binary event
    send(socket, event, payload)
    if socket.assigns.ack then return "ok" end
  elseif event == "broadcast" then
    -- channel.send({ type = "broadcast", event = ..., payload = ... })
    send(socket, "broadcast", { type = "broadcast", event = payload.event, payload = payload.payload })
    if socket.assigns.ack then return "ok" end
  elseif event == "presence" then
    -- channel.track(meta) and channel.untrack(): Phoenix presence, which realtime-js
    -- reads from presence_state and presence_diff as the phoenix client does
    local key = socket.assigns.presence_key
    if payload.event == "track" then
      local meta = type(payload.payload) == "table" and payload.payload or {}
      if socket.assigns.tracked then
        luachan.presence.update(socket, key, meta)
      else
        luachan.presence.track(socket, key, meta)
        socket.assigns.tracked = true
      end
    elseif payload.event == "untrack" and socket.assigns.tracked then
      luachan.presence.untrack(socket, key)
      socket.assigns.tracked = false
    end
    return "ok"
  elseif event == "access_token" then
    socket.assigns.access_token = payload.access_token
    return "ok"
  else
    return "error", { reason = "unknown event " .. event }
  end
end

return realtime
