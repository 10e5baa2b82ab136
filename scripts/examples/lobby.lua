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
  -- anonymous visitors are welcome; a user named here (or by socket.lua) is remembered
  if payload.user ~= nil then socket.assigns.user = payload.user end
  return true
end

return lobby
