-- bench.lua: the fast-laned channel of luachan-bench. No handle_out, so every
-- broadcast is encoded once and written to every subscriber as is.
local bench = { topic = "bench:*" }

function bench.join(topic, payload, socket)
  return true
end

function bench.handle_in(event, payload, socket)
  if event == "pub" then
    -- fanout: the publisher's payload to every other subscriber
    socket:broadcast_from("msg", payload)
    return "ok"
  end
  -- rpc: answer with the request's payload
  return "ok", payload
end

return bench
