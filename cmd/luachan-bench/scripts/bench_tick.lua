-- bench_tick.lua: idle -tick of luachan-bench. Every topic keeps a state whose
-- handle_tick runs ten times a second while the topic has subscribers.
local bench = { topic = "bench_tick:*", tick = 100 }

function bench.join(topic, payload, socket)
  return true
end

function bench.init(topic, params)
  return { ticks = 0 }
end

function bench.handle_tick(state, topic)
  state.ticks = state.ticks + 1
  return state
end

return bench
