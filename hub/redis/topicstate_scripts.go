package redis

import goredis "github.com/redis/go-redis/v9"

// The scripts of TopicStates (topicstate.go). Each takes a topic's keys, which share
// the topic's hash tag, so that they run on a Redis Cluster too. Redis's TIME is the
// clock of the interest set, so that the nodes' own clocks need not agree.

// leaseCycle is one lease step of a node that wants a topic: it marks the node
// interested for three leases, then renews the lease when the node holds it (ARGV[1],
// with held "1"), returning {1}; takes it with ARGV[1] as the new lease when it is free
// and the node held none, returning {2, saved state or nil}; else {0}: held by another
// node, or the lease the node held is gone.
// KEYS: lease, state, interest set. ARGV: lease, lease ms, state keep ms, node, held.
var leaseCycle = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[3], now + 3 * lease, ARGV[4])
redis.call('PEXPIRE', KEYS[3], 3 * lease)
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], lease)
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return {1}
end
if cur or ARGV[5] == '1' then return {0} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', lease)
return {2, redis.call('GET', KEYS[2])}
`)

// saveState stores a topic's state (and, with a fourth key, a forwarded call's reply)
// while ARGV[1] is the topic's lease: 1, else 0. It also records the save's number
// (ARGV[4], rising on each node) in the lease's own key, which a node whose save's round
// trip failed reads (TopicStates.stored) to tell whether it was stored, even once its
// lease has gone to another node.
// KEYS: lease, state, the lease's saved number[, reply]. ARGV: lease, state, state keep
// ms, save number, reply, reply keep ms.
var saveState = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[3])
if KEYS[4] then redis.call('SET', KEYS[4], ARGV[5], 'PX', ARGV[6]) end
return 1
`)

// loadState returns {1, saved state or nil} while ARGV[1] is the topic's lease, else {0}.
// KEYS: lease, state. ARGV: lease.
var loadState = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
return {1, redis.call('GET', KEYS[2])}
`)

// releaseLease lets a topic's lease go. With mode "unwant" or "shutdown" the node
// (ARGV[2]) leaves the interest set first; with "handover" it stays. Returns {0} when the
// node did not hold the lease (ARGV[1]), {1} when it let it go, and {2, the saved state}
// when, with "unwant", no other node wants the topic either: the saved state is deleted
// too, and given back (the node's engine may not have heard yet that it took the lease,
// and then has no state of its own to run terminate on). A node
// that did not hold the lease and, with "unwant", finds no node holding it and none
// wanting the topic ends it too, returning {2, the saved state} for it to run terminate
// on: the owner may have let the lease go to it while it was still in its own grace, and
// no one else would.
// KEYS: lease, state, interest set. ARGV: lease ("" for none), node, mode.
var releaseLease = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[3] ~= 'handover' then redis.call('ZREM', KEYS[3], ARGV[2]) end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '' or cur ~= ARGV[1] then
  if ARGV[3] == 'unwant' and not cur and redis.call('ZCARD', KEYS[3]) == 0 then
    local st = redis.call('GET', KEYS[2])
    redis.call('DEL', KEYS[2])
    return {2, st}
  end
  return {0}
end
redis.call('DEL', KEYS[1])
if ARGV[3] ~= 'unwant' or redis.call('ZCARD', KEYS[3]) > 0 then return {1} end
local st = redis.call('GET', KEYS[2])
redis.call('DEL', KEYS[2])
return {2, st}
`)
