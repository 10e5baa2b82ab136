-- bench_edit.lua: the intercepted channel of luachan-bench. Every "msg"
-- broadcast goes through handle_out once per subscriber, which edits its copy.
local bench = { topic = "bench_edit:*", intercept = { "msg" } }

function bench.join(topic, payload, socket)
  return true
end

function bench.handle_in(event, payload, socket)
  if event == "pub" then
    socket:broadcast_from("msg", payload)
    return "ok"
  end
  return "ok", payload
end

function bench.handle_out(event, payload, socket)
  payload.to = socket.join_ref
  socket:push(event, payload)
end

return bench
