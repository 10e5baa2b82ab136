---@meta luachan
-- LuaLS annotations of luachan's script API, written by `luachan types`.
-- Point your editor's Lua language server at this file (see the README) to get
-- completion and type checks for callbacks, `socket` and the `luachan` module.

---A JSON-able value: nil, boolean, number, string, luachan.null, or a table of them.
---@alias luachan.Value nil|boolean|number|string|table|luachan.Null

---JSON null, in both directions.
---@class luachan.Null

---The `socket` argument of every channel callback. It is valid only during the call.
---@class luachan.Socket
---@field topic string the channel's topic
---@field join_ref string|nil the channel's join ref
---@field id string|nil the socket id that socket.lua's connect gave, or nil
---@field assigns table kept for the life of the channel, across reloads; data only
local Socket = {}

---Sends `event` to this client only (after the callback returns, in call order).
---@param event string
---@param payload? luachan.Value
function Socket:push(event, payload) end

---The same as socket:push (the Phoenix name).
---@param event string
---@param payload? luachan.Value
function Socket:reply(event, payload) end

---Broadcasts to every subscriber of socket.topic, this one included.
---@param event string
---@param payload? luachan.Value
function Socket:broadcast(event, payload) end

---Broadcasts to every subscriber of socket.topic except this socket.
---@param event string
---@param payload? luachan.Value
function Socket:broadcast_from(event, payload) end

---Calls the script's handle_info(msg, socket) on this channel after `ms` milliseconds,
---ordered with its other events. Timers die with the channel.
---@param ms integer
---@param msg luachan.Value
function Socket:after(ms, msg) end

---Runs the script's handle_call(msg, state, socket) on the topic's state (one call at a
---time per topic, on the owner node) and returns its reply; nil and a message when
---handle_call failed, timed out or the owner could not be reached.
---@param msg luachan.Value
---@return any reply
---@return string? err
function Socket:call(msg) end

---What socket.lua's connect receives besides the query parameters.
---@class luachan.ConnectInfo
---@field auth_token string|nil the token the JS client sent as a WebSocket subprotocol
---@field origin string|nil the Origin header
---@field remote_ip string|nil the client's address

---A channel script returns a table of this shape.
---@class luachan.Channel
---@field topic string an exact topic ("rooms:lobby") or a prefix ending in * ("rooms:*")
---@field intercept? string[] events that run through handle_out; others take the fast lane
---@field history? { size: integer, ttl: number } keep the last `size` broadcasts of each topic for `ttl` seconds; a join with `since` recovers them
---@field join fun(topic: string, payload: table, socket: luachan.Socket): boolean, table?
---@field handle_in? fun(event: string, payload: any, socket: luachan.Socket): ("ok"|"error")?, table?
---@field handle_out? fun(event: string, payload: any, socket: luachan.Socket)
---@field handle_info? fun(msg: any, socket: luachan.Socket)
---@field leave? fun(reason: "leave"|"closed"|"shutdown", socket: luachan.Socket)
---@field tick? integer ms between handle_tick calls while the topic has subscribers
---@field init? fun(topic: string, params: any): table the topic's first state, at its first join
---@field handle_call? fun(msg: any, state: table, socket: luachan.Socket): any, table reply, new state; socket is the caller's channel without socket.assigns
---@field handle_tick? fun(state: table, topic: string): table the new state
---@field terminate? fun(state: table, topic: string) the last subscriber left 5 s ago

---socket.lua returns a table of this shape.
---@class luachan.SocketScript
---@field connect fun(params: table, info: luachan.ConnectInfo): boolean, table?, string?

---@class luachan
luachan = {}

---JSON null, in both directions.
---@type luachan.Null
luachan.null = nil

---Broadcasts to every subscriber of `topic`, on every node.
---@param topic string
---@param event string
---@param payload? luachan.Value
function luachan.broadcast(topic, event, payload) end

---Closes every socket whose id is `id` (close code 1001), on every node.
---@param id string
function luachan.disconnect(id) end

---@class luachan.HistoryEntry
---@field position string "<epoch>:<n>", the broadcast's position in its topic's history
---@field event string
---@field payload luachan.Value

---The broadcasts of `topic` after `opts.since` (or the latest), oldest first, at most
---`opts.limit` (capped at 1000). The second result is false, with an empty list, when
---`since` is older than the history kept or of another epoch, or the topic has none.
---@param topic string
---@param opts? { since?: string, limit?: integer }
---@return luachan.HistoryEntry[] entries
---@return boolean recovered
function luachan.history(topic, opts) end

---One structured log line at `level`, tagged with the script's name.
---@param level "debug"|"info"|"warn"|"error"
---@param msg string
---@param fields? table
function luachan.log(level, msg, fields) end

---Milliseconds since the Unix epoch.
---@return integer
function luachan.now() end

---A table marked as a JSON array: encoded `[]` even when empty.
---@param ... luachan.Value the elements
---@return table
function luachan.array(...) end

luachan.json = {}

---Encodes a value as JSON text; raises an error on functions, cycles or NaN.
---@param v luachan.Value
---@return string
function luachan.json.encode(v) end

---Decodes JSON text, or returns nil and a message.
---@param s string
---@return luachan.Value|nil value
---@return string|nil err
function luachan.json.decode(s) end

---Shared state: atomic, visible to every channel and VM (and every node with Redis or NATS).
luachan.store = {}

---Options of luachan.store.set and luachan.store.cas.
---@class luachan.StoreOptions
---@field ttl? number seconds (fractions allowed, to the millisecond; above 0, at most 1e9) until the value expires

---The value, or nil when the key is absent (or has expired).
---@param key string
---@return luachan.Value
function luachan.store.get(key) end

---Stores `value` (nil deletes the key). With `{ ttl = seconds }` the key expires then;
---without, it never does: a plain set clears an earlier ttl (as Redis's SET).
---@param key string
---@param value luachan.Value
---@param opts? luachan.StoreOptions
function luachan.store.set(key, value, opts) end

---Compare-and-set, atomic on every node: sets `key` to `new` only if its value is
---`old`, and returns whether it did. `old` nil means "the key is absent"; `new` nil
---deletes the key. Values are compared as JSON text, so pass as `old` what get
---returned, unchanged (a table built anew with its keys in another order differs).
---Like set, it clears the key's ttl, or sets the one in `opts`.
---```lua
---repeat local n = luachan.store.get(k) until luachan.store.cas(k, n, (n or 0) + 1)
---```
---@param key string
---@param old luachan.Value
---@param new luachan.Value
---@param opts? luachan.StoreOptions
---@return boolean
function luachan.store.cas(key, old, new, opts) end

---The seconds (to the millisecond) until `key` expires; false when it has no ttl;
---nil when it is absent.
---@param key string
---@return number|false|nil
function luachan.store.ttl(key) end

---Adds `by` (default 1) to a number (an absent key counts as 0) and returns the new
---value; the key keeps its ttl.
---@param key string
---@param by? integer
---@return integer
function luachan.store.incr(key, by) end

---@param key string
function luachan.store.del(key) end

---Phoenix Presence: the JS client's Presence works unchanged.
luachan.presence = {}

---Tracks `key` with `meta` on the socket's topic; the client gets presence_state,
---every subscriber a presence_diff.
---@param socket luachan.Socket
---@param key string
---@param meta table
function luachan.presence.track(socket, key, meta) end

---Replaces the meta tracked for `key` by this socket.
---@param socket luachan.Socket
---@param key string
---@param meta table
function luachan.presence.update(socket, key, meta) end

---Stops tracking `key` for this socket.
---@param socket luachan.Socket
---@param key string
function luachan.presence.untrack(socket, key) end

---The presences of a topic, in presence_state's shape.
---@param topic string
---@return table<string, {metas: table[]}>
function luachan.presence.list(topic) end

---HS256 JWTs with the server's -secret.
luachan.token = {}

---@param claims table
---@return string
function luachan.token.sign(claims) end

---Returns the claims, or nil and a reason.
---@param token string
---@return table|nil claims
---@return string|nil reason
function luachan.token.verify(token) end

---A socket of a script test, from t.connect.
---@class luachan.test.Socket

---A channel of a script test, from t.join.
---@class luachan.test.Channel
---@field topic string

---The client side of a channel, for script tests (`luachan test`): files named *_test.lua
---return a table of test_* functions, each run against a fresh engine with a virtual clock.
---Only a test file can require it: `local t = require("luachan.test")`.
---@class luachan.test
local test = {}

---Connects a socket, running socket.lua's connect with `params` (its query parameters) and
---`info.auth_token` (the JS client's authToken option). A param may not be named "token".
---@param params? table<string, string|number|boolean>
---@param info? {auth_token: string}
---@return luachan.test.Socket|nil socket nil when connect refused
---@return string|nil reason
function test.connect(params, info) end

---Joins `topic`: the channel and the join's reply, or nil and the error reply.
---@param socket luachan.test.Socket
---@param topic string
---@param payload? table
---@return luachan.test.Channel|nil
---@return table|nil reply
function test.join(socket, topic, payload) end

---Sends `event` to the channel's handle_in: the reply's status and response, or nothing
---when handle_in gives no reply.
---@param channel luachan.test.Channel
---@param event string
---@param payload? luachan.Value
---@return "ok"|"error"|nil status
---@return table|nil response
function test.push(channel, event, payload) end

---Leaves the channel (phx_leave): its leave callback runs.
---@param channel luachan.test.Channel
function test.leave(channel) end

---Broadcasts as POST /api/broadcast does, from no socket.
---@param topic string
---@param event string
---@param payload? luachan.Value
function test.broadcast_from_outside(topic, event, payload) end

---Fails unless the channel's client received `event` (pushed or broadcast) with a payload
---holding `payload` (a subset: the keys given must match). Takes the message, so the next
---assert_push sees the one after; returns its payload.
---@param channel luachan.test.Channel
---@param event string
---@param payload? table
---@return any payload
function test.assert_push(channel, event, payload) end

---Fails unless `event` was broadcast on `topic` (from a script, presence or outside) with a
---payload holding `payload`; takes it and returns its payload.
---@param topic string
---@param event string
---@param payload? table
---@return any payload
function test.assert_broadcast(topic, event, payload) end

---Fails if the channel's client received `event` (with a payload holding `payload`, when
---given) and no assert_push took it.
---@param channel luachan.test.Channel
---@param event string
---@param payload? table
function test.refute_push(channel, event, payload) end

---Moves the virtual clock `ms` forward: socket:after timers fall due in order, and
---luachan.now moves with it. Nothing sleeps.
---@param ms integer
function test.advance(ms) end
