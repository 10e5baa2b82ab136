package luabind

import (
	"math"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// The hooks for timers (socket:after), shared state (luachan.store) and Phoenix Presence
// (luachan.presence), SPEC sections 3 and 6. luabind only converts between Lua and JSON text;
// the engine implements them. They are separate interfaces, which the Socket and the Host may
// implement, so an engine without them still builds: a script calling a missing one gets a Lua
// error saying so.

// SocketAfter is implemented by a Socket that supports socket:after(ms, msg): after ms
// milliseconds the engine calls Script.HandleInfo on the same channel with msg, any JSON-able
// value as JSON text (empty for nil).
type SocketAfter interface {
	After(ms int, msg []byte) error
}

// Store is the shared state behind luachan.store: atomic, and visible to every channel and
// VM. Values are JSON text. A key with a ttl is absent once its time is up.
type Store interface {
	// Get returns key's value, or ok=false when it has none.
	Get(key string) (value []byte, ok bool, err error)
	// Set stores value under key with no expiry, clearing any ttl it had.
	Set(key string, value []byte) error
	// SetTTL stores value under key, to expire ttl (> 0) from now.
	SetTTL(key string, value []byte, ttl time.Duration) error
	// CAS sets key to value (nil: deletes it) if key's value is old byte for byte (nil:
	// if key is absent), with expiry ttl (0: none), in one atomic step; it reports
	// whether it did.
	CAS(key string, old, value []byte, ttl time.Duration) (bool, error)
	// TTL returns the time key has left: ok=false when key is absent, ttl < 0 when it
	// has no expiry.
	TTL(key string) (ttl time.Duration, ok bool, err error)
	// Incr adds by to key's number (a missing key counts as 0) and returns the sum; the
	// key keeps its ttl.
	Incr(key string, by int64) (int64, error)
	Del(key string) error
}

// Presence is Phoenix Presence behind luachan.presence (SPEC section 6). Metas and lists are
// JSON text.
type Presence interface {
	Track(sock Socket, key string, meta []byte) error
	Update(sock Socket, key string, meta []byte) error
	Untrack(sock Socket, key string) error
	// List returns topic's presences as presence_state's JSON object.
	List(topic string) ([]byte, error)
}

// StoreHost is implemented by a Host that backs luachan.store.
type StoreHost interface {
	Store() Store
}

// PresenceHost is implemented by a Host that backs luachan.presence.
type PresenceHost interface {
	Presence() Presence
}

// DisconnectHost is implemented by a Host that backs luachan.disconnect(id): close every
// socket whose id is id (on every node).
type DisconnectHost interface {
	Disconnect(id string) error
}

// socketAfter is socket:after(ms, msg).
func socketAfter(L *lua.LState) int {
	s := checkSocket(L, 1)
	ms := float64(L.CheckNumber(2))
	if ms < 0 || math.IsNaN(ms) || ms > math.MaxInt32 {
		L.ArgError(2, "milliseconds must be a number from 0 to 2^31-1")
	}
	var msg []byte
	if v := L.Get(3); v != lua.LNil {
		data, err := encodeValue(v, "msg")
		if err != nil {
			L.RaiseError("socket:after: %s", scriptMsg(err))
		}
		msg = data
	}
	timers, ok := s.sock.(SocketAfter)
	if !ok {
		L.RaiseError("socket:after is not available on this server")
	}
	if err := timers.After(int(ms), msg); err != nil {
		L.RaiseError("socket:after: %s", err)
	}
	return 0
}

// openStore builds luachan.store.
func (v *vm) openStore() *lua.LTable {
	t := newTable(0, 6)
	t.RawSetString("get", v.L.NewFunction(v.storeGet))
	t.RawSetString("set", v.L.NewFunction(v.storeSet))
	t.RawSetString("cas", v.L.NewFunction(v.storeCAS))
	t.RawSetString("ttl", v.L.NewFunction(v.storeTTL))
	t.RawSetString("incr", v.L.NewFunction(v.storeIncr))
	t.RawSetString("del", v.L.NewFunction(v.storeDel))
	return t
}

// waitedSince adds the time since start to what the running call waited on the store or on
// presence (either may be Redis, across the network).
func (v *vm) waitedSince(start time.Time) { v.waited += time.Since(start) }

// store returns the host's Store, or raises an error naming fn.
func (v *vm) store(L *lua.LState, fn string) Store {
	if h, ok := v.chunk.opts.Host.(StoreHost); ok {
		if s := h.Store(); s != nil {
			return s
		}
	}
	L.RaiseError("luachan.store.%s: no store on this server", fn)
	return nil
}

// storeGet is luachan.store.get(key): the value, or nil.
func (v *vm) storeGet(L *lua.LState) int {
	defer v.waitedSince(time.Now())
	key := L.CheckString(1)
	data, ok, err := v.store(L, "get").Get(key)
	if err != nil {
		L.RaiseError("luachan.store.get: %s", err)
	}
	if !ok {
		L.Push(lua.LNil)
		return 1
	}
	val, err := decodeJSON(data)
	if err != nil {
		L.RaiseError("luachan.store.get: %s", err)
	}
	L.Push(val)
	return 1
}

// storeSet is luachan.store.set(key, value, opts?); a nil value deletes the key, and opts.ttl
// (seconds) makes the value expire.
func (v *vm) storeSet(L *lua.LState) int {
	defer v.waitedSince(time.Now())
	key := L.CheckString(1)
	val := L.Get(2)
	ttl := storeTTLOpt(L, "set", 3)
	if val == lua.LNil {
		if err := v.store(L, "set").Del(key); err != nil {
			L.RaiseError("luachan.store.set: %s", err)
		}
		return 0
	}
	data, err := encodeValue(val, "value")
	if err != nil {
		L.RaiseError("luachan.store.set: %s", scriptMsg(err))
	}
	if ttl > 0 {
		err = v.store(L, "set").SetTTL(key, data, ttl)
	} else {
		err = v.store(L, "set").Set(key, data)
	}
	if err != nil {
		L.RaiseError("luachan.store.set: %s", err)
	}
	return 0
}

// maxStoreTTL is the longest ttl luachan.store takes, in seconds (about 31 years): far from
// overflowing a Redis expiry or a time.Duration in milliseconds.
const maxStoreTTL = 1e9

// storeTTLOpt reads argument n, the options { ttl = seconds } or nil, and returns the ttl
// rounded up to a millisecond (0: none).
func storeTTLOpt(L *lua.LState, fn string, n int) time.Duration {
	var opts *lua.LTable
	switch o := L.Get(n).(type) {
	case *lua.LNilType:
		return 0
	case *lua.LTable:
		opts = o
	default:
		L.RaiseError("luachan.store.%s: options must be a table such as { ttl = 60 }, not a %s", fn, o.Type())
	}
	for k, _ := opts.Next(lua.LNil); k != lua.LNil; k, _ = opts.Next(k) {
		if s, ok := k.(lua.LString); !ok || s != "ttl" {
			L.RaiseError("luachan.store.%s: unknown option %s: the only one is ttl (seconds)", fn, k.String())
		}
	}
	switch ttl := opts.RawGetString("ttl").(type) {
	case *lua.LNilType:
		return 0
	case lua.LNumber:
		f := float64(ttl)
		if !(f > 0 && f <= maxStoreTTL) {
			L.RaiseError("luachan.store.%s: ttl must be a number of seconds above 0 and at most 1e9, not %s", fn, ttl)
		}
		return time.Duration(math.Ceil(f*1000)) * time.Millisecond
	default:
		L.RaiseError("luachan.store.%s: ttl must be a number of seconds, not a %s", fn, ttl.Type())
	}
	return 0
}

// storeCAS is luachan.store.cas(key, old, new, opts?): sets key to new (nil: deletes it) if its
// value is old (nil: if it has none), compared as JSON text, and returns whether it did.
func (v *vm) storeCAS(L *lua.LState) int {
	defer v.waitedSince(time.Now())
	key := L.CheckString(1)
	if L.GetTop() < 3 {
		L.RaiseError("luachan.store.cas: takes key, old and new (nil as new deletes the key)")
	}
	old, val := storeCASValue(L, 2, "old"), storeCASValue(L, 3, "new")
	ttl := storeTTLOpt(L, "cas", 4)
	done, err := v.store(L, "cas").CAS(key, old, val, ttl)
	if err != nil {
		L.RaiseError("luachan.store.cas: %s", err)
	}
	L.Push(lua.LBool(done))
	return 1
}

// storeCASValue encodes argument n of cas, named name; nil is nil.
func storeCASValue(L *lua.LState, n int, name string) []byte {
	v := L.Get(n)
	if v == lua.LNil {
		return nil
	}
	data, err := encodeValue(v, name)
	if err != nil {
		L.RaiseError("luachan.store.cas: %s", scriptMsg(err))
	}
	return data
}

// storeTTL is luachan.store.ttl(key): the seconds key has left (to the millisecond), false
// when it has no expiry, nil when it is absent.
func (v *vm) storeTTL(L *lua.LState) int {
	defer v.waitedSince(time.Now())
	key := L.CheckString(1)
	d, ok, err := v.store(L, "ttl").TTL(key)
	switch {
	case err != nil:
		L.RaiseError("luachan.store.ttl: %s", err)
	case !ok:
		L.Push(lua.LNil)
	case d < 0:
		L.Push(lua.LFalse)
	default:
		L.Push(lua.LNumber(math.Ceil(float64(d)/float64(time.Millisecond)) / 1000))
	}
	return 1
}

// storeIncr is luachan.store.incr(key, by?): adds by (default 1, an integer) and returns the sum.
func (v *vm) storeIncr(L *lua.LState) int {
	defer v.waitedSince(time.Now())
	key := L.CheckString(1)
	by := float64(L.OptNumber(2, 1))
	if by != math.Trunc(by) || math.Abs(by) > maxExactInt {
		L.ArgError(2, "must be an integer")
	}
	n, err := v.store(L, "incr").Incr(key, int64(by))
	if err != nil {
		L.RaiseError("luachan.store.incr: %s", err)
	}
	L.Push(lua.LNumber(n))
	return 1
}

// storeDel is luachan.store.del(key).
func (v *vm) storeDel(L *lua.LState) int {
	defer v.waitedSince(time.Now())
	key := L.CheckString(1)
	if err := v.store(L, "del").Del(key); err != nil {
		L.RaiseError("luachan.store.del: %s", err)
	}
	return 0
}

// openPresence builds luachan.presence.
func (v *vm) openPresence() *lua.LTable {
	t := newTable(0, 4)
	t.RawSetString("track", v.L.NewFunction(v.presenceTrack))
	t.RawSetString("update", v.L.NewFunction(v.presenceUpdate))
	t.RawSetString("untrack", v.L.NewFunction(v.presenceUntrack))
	t.RawSetString("list", v.L.NewFunction(v.presenceList))
	return t
}

// presence returns the host's Presence, or raises an error naming fn.
func (v *vm) presence(L *lua.LState, fn string) Presence {
	if h, ok := v.chunk.opts.Host.(PresenceHost); ok {
		if p := h.Presence(); p != nil {
			return p
		}
	}
	L.RaiseError("luachan.presence.%s: no presence on this server", fn)
	return nil
}

// presenceMeta encodes argument n, a table or nil ({}), as a meta.
func presenceMeta(L *lua.LState, fn string, n int) []byte {
	switch m := L.Get(n).(type) {
	case *lua.LNilType:
		return []byte("{}")
	case *lua.LTable:
		data, err := encodeValue(m, "meta")
		if err != nil {
			L.RaiseError("luachan.presence.%s: %s", fn, scriptMsg(err))
		}
		if data[0] != '{' {
			L.RaiseError("luachan.presence.%s: meta must be a table with string keys, not a list", fn)
		}
		return data
	}
	L.ArgError(n, "meta must be a table")
	return nil
}

// presenceTrack is luachan.presence.track(socket, key, meta).
func (v *vm) presenceTrack(L *lua.LState) int {
	defer v.waitedSince(time.Now())
	s, key, meta := checkSocket(L, 1), L.CheckString(2), presenceMeta(L, "track", 3)
	if err := v.presence(L, "track").Track(s.sock, key, meta); err != nil {
		L.RaiseError("luachan.presence.track: %s", err)
	}
	return 0
}

// presenceUpdate is luachan.presence.update(socket, key, meta).
func (v *vm) presenceUpdate(L *lua.LState) int {
	defer v.waitedSince(time.Now())
	s, key, meta := checkSocket(L, 1), L.CheckString(2), presenceMeta(L, "update", 3)
	if err := v.presence(L, "update").Update(s.sock, key, meta); err != nil {
		L.RaiseError("luachan.presence.update: %s", err)
	}
	return 0
}

// presenceUntrack is luachan.presence.untrack(socket, key).
func (v *vm) presenceUntrack(L *lua.LState) int {
	defer v.waitedSince(time.Now())
	s, key := checkSocket(L, 1), L.CheckString(2)
	if err := v.presence(L, "untrack").Untrack(s.sock, key); err != nil {
		L.RaiseError("luachan.presence.untrack: %s", err)
	}
	return 0
}

// presenceList is luachan.presence.list(topic): the presences as a table, as presence_state.
func (v *vm) presenceList(L *lua.LState) int {
	defer v.waitedSince(time.Now())
	topic := L.CheckString(1)
	data, err := v.presence(L, "list").List(topic)
	if err != nil {
		L.RaiseError("luachan.presence.list: %s", err)
	}
	val, err := decodeJSON(data)
	if err != nil {
		L.RaiseError("luachan.presence.list: %s", err)
	}
	L.Push(val)
	return 1
}
