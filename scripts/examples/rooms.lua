-- rooms.lua: every other "rooms:<id>" room. Joining needs a user name; payload.ignore
-- lists users whose arrivals this subscriber does not want to hear about.
local room = require("lib.room")

local rooms = {
  topic = "rooms:*",
  intercept = room.intercept,
  handle_in = room.handle_in,
  handle_out = room.handle_out,
}

function rooms.join(topic, payload, socket)
  if type(payload.user) ~= "string" then
    return false, { reason = "unauthorized" }
  end
  socket.assigns.user = payload.user
  if type(payload.ignore) == "table" then
    socket.assigns.ignore = payload.ignore
  end
  -- sent after the join reply; handle_out filters it per subscriber
  socket:broadcast("user:joined", { user_id = payload.user })
  return true
end

return rooms
