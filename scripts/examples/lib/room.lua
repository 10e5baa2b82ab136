-- lib/room.lua: what every room channel shares, the seed's RoomChannel minus join.
-- Channel scripts pick up these callbacks with require("lib.room").
local room = {}

-- Broadcasts of these events run through handle_out once per subscriber; every other
-- event (like "typing") is encoded once and sent to every subscriber as is.
room.intercept = { "new:msg", "user:joined" }

-- rank derives a stable number from a user name; a real app would ask its game server.
local function rank(user)
  if type(user) ~= "string" then return 0 end
  local n = 0
  for i = 1, #user do
    n = (n * 31 + user:byte(i)) % 1000
  end
  return n
end

-- ignoring reports whether this subscriber asked, when joining, not to hear from user_id.
local function ignoring(socket, user_id)
  for _, id in ipairs(socket.assigns.ignore or {}) do
    if id == user_id then return true end
  end
  return false
end

function room.handle_in(event, payload, socket)
  if event == "new:msg" then
    local msg = { uid = payload.uid, body = payload.body }
    socket:broadcast("new:msg", msg)
    -- the superadmin room gets a copy of every message, from any room
    if socket.topic ~= "rooms:superadmin" then
      luachan.broadcast("rooms:superadmin", "new:msg", msg)
    end
    return "ok"
  elseif event == "current:rank" then
    local val = rank(socket.assigns.user)
    socket:push("current:rank", { val = val })   -- to the caller only
    return "ok", { val = val }
  elseif event == "typing" then
    socket:broadcast_from("typing", { uid = payload.uid })  -- everyone but the typist
    return
  end
  return "error", { reason = "unknown event" }
end

function room.handle_out(event, payload, socket)
  if event == "new:msg" then
    -- each subscriber learns whether it may edit the message
    payload.is_editable = payload.uid ~= nil and payload.uid == socket.assigns.user
    socket:push(event, payload)
  elseif event == "user:joined" then
    if not ignoring(socket, payload.user_id) then
      socket:push(event, payload)
    end
  else
    socket:push(event, payload)
  end
end

return room
