-- lobby.lua: "rooms:lobby", open to everyone. An exact topic wins over rooms.lua's
-- "rooms:*" prefix.
local room = require("lib.room")

local lobby = {
  topic = "rooms:lobby",
  intercept = room.intercept,
  handle_in = room.handle_in,
  handle_out = room.handle_out,
}

function lobby.join(topic, payload, socket)
  socket.assigns.user = payload.user   -- may be nil: anonymous visitors are welcome
  return true
end

return lobby
