-- bench_call.lua: rpc -call of luachan-bench. Each push goes through socket:call to the
-- topic's one state (handle_call, run one call at a time per topic) and back.
local bench = { topic = "bench_call:*" }

function bench.join(topic, payload, socket)
  return true
end

function bench.handle_in(event, payload, socket)
  local reply, err = socket:call(payload)
  if err then return "error", { reason = err } end
  return "ok", reply
end

function bench.handle_call(msg, state, socket)
  state.calls = (state.calls or 0) + 1
  return msg, state
end

return bench
