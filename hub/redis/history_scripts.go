package redis

import goredis "github.com/redis/go-redis/v9"

// The Lua scripts of a topic's history in Redis. Both take KEYS[1], the topic's meta
// hash (fields epoch and n), and KEYS[2], its stream, whose entry n has id "n-0" and
// fields t (the append's Redis time, ms), h (the message head, see appendHistoryHead)
// and p (the payload). Both keys carry the topic as a Redis Cluster hash tag, so they
// are in one slot.

// The meta hash outlives the stream (historyMetaKeep): a client that saw the last
// broadcast of a topic quiet for longer than its ttl missed nothing, and recovers.

// appendScript gives a broadcast its topic's next position, keeps it in the stream and
// publishes it, in one step: every node sees the same positions in the same order, and
// a broadcast is published if and only if it is in the history.
//
// ARGV: 1 a new random epoch (used if the topic has none), 2 size, 3 ttl (ms),
// 4 the topic's channel, 5 the message head, 6 the payload, 7 how long the meta hash
// outlives the last append or read (ms), 8 the publish command (SPUBLISH on a Redis
// Cluster, whose subscribers are sharded). It returns the position.
var appendScript = goredis.NewScript(`
if redis.replicate_commands then pcall(redis.replicate_commands) end
local meta, s = KEYS[1], KEYS[2]
local size, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('HSETNX', meta, 'epoch', ARGV[1]) == 1 then
  redis.call('DEL', s) -- a stream without its meta is of a life that ended
end
local epoch = redis.call('HGET', meta, 'epoch')
local n = redis.call('HINCRBY', meta, 'n', 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('XADD', s, 'MAXLEN', size, string.format('%d-0', n), 't', now, 'h', ARGV[5], 'p', ARGV[6])
local old = redis.call('XRANGE', s, '-', '+', 'COUNT', 16)
for _, e in ipairs(old) do
  if tonumber(e[2][2]) + ttl >= now then break end
  redis.call('XDEL', s, e[1])
end
redis.call('PEXPIRE', meta, tonumber(ARGV[7]))
redis.call('PEXPIRE', s, ttl)
local pos = epoch .. ':' .. string.format('%d', n)
redis.call(ARGV[8], ARGV[4], ARGV[5] .. pos .. '\n' .. ARGV[6])
return pos
`)

// readScript returns {epoch, n, recovered, id, h, p, id, h, p, …}: the topic's current
// position, then the entries after since (oldest first, at most limit), or the latest
// limit without since. A topic with no history gets its epoch here, so that a join's
// position names the epoch the next broadcast will have.
//
// ARGV: 1 a new random epoch, 2 ttl (ms), 3 since's epoch ("": none), 4 since's n,
// 5 limit (0: all, -1: none, only the position), 6 how long the meta hash outlives
// the last append or read (ms).
// recovered is 0 when since is of another epoch, ahead of n, or older than what is
// kept (trimmed by size, or past the ttl).
var readScript = goredis.NewScript(`
if redis.replicate_commands then pcall(redis.replicate_commands) end
local meta, s = KEYS[1], KEYS[2]
local ttl = tonumber(ARGV[2])
if redis.call('HSETNX', meta, 'epoch', ARGV[1]) == 1 then
  redis.call('DEL', s)
end
redis.call('PEXPIRE', meta, tonumber(ARGV[6]))
local epoch = redis.call('HGET', meta, 'epoch')
local n = tonumber(redis.call('HGET', meta, 'n') or '0')
local out = {epoch, string.format('%d', n), 1}
local limit = tonumber(ARGV[5])
if limit < 0 then return out end
local t = redis.call('TIME')
local oldest = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - ttl
local list
if ARGV[3] ~= '' then
  local since = tonumber(ARGV[4])
  if ARGV[3] ~= epoch or since > n then out[3] = 0 return out end
  if since == n then return out end
  if limit > 0 then
    list = redis.call('XRANGE', s, string.format('%d-0', since + 1), '+', 'COUNT', limit)
  else
    list = redis.call('XRANGE', s, string.format('%d-0', since + 1), '+')
  end
  local first = list[1]
  if not first or first[1] ~= string.format('%d-0', since + 1) or tonumber(first[2][2]) < oldest then
    out[3] = 0
    return out
  end
else
  if limit > 0 then
    list = redis.call('XREVRANGE', s, '+', '-', 'COUNT', limit)
  else
    list = redis.call('XREVRANGE', s, '+', '-')
  end
  local rev = {}
  for i = #list, 1, -1 do
    if tonumber(list[i][2][2]) >= oldest then rev[#rev + 1] = list[i] end
  end
  list = rev
end
for _, e in ipairs(list) do
  out[#out + 1] = e[1]
  out[#out + 1] = e[2][4]
  out[#out + 1] = e[2][6]
end
return out
`)
