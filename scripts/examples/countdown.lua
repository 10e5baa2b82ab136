-- countdown.lua: "countdown:<seconds>", a timer of its own for every subscriber, to show
-- socket:after: handle_info runs on the channel when the time comes, in order with its
-- other events, and the timers die with the channel.
local countdown = { topic = "countdown:*" }

function countdown.join(topic, payload, socket)
  local n = tonumber(topic:sub(#"countdown:" + 1))
  if n == nil or n < 1 or n > 3600 or n % 1 ~= 0 then
    return false, { reason = "the topic is countdown:<seconds>, 1 to 3600" }
  end
  socket.assigns.left = n
  socket:after(1000, "tick")
  return true, { left = n }
end

function countdown.handle_info(msg, socket)
  local left = socket.assigns.left - 1
  socket.assigns.left = left
  if left > 0 then
    socket:push("tick", { left = left })
    socket:after(1000, "tick")
  else
    socket:push("done", {})
  end
end

return countdown
