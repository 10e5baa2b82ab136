-- superadmin.lua: "rooms:superadmin", for the admin only. lib/room.lua broadcasts a copy
-- of every new:msg from any room here.
local room = require("lib.room")

local superadmin = {
  topic = "rooms:superadmin",
  intercept = room.intercept,
  handle_in = room.handle_in,
  handle_out = room.handle_out,
}

function superadmin.join(topic, payload, socket)
  if payload.user ~= "admin" then
    return false, { reason = "unauthorized" }
  end
  socket.assigns.user = payload.user
  return true
end

return superadmin
