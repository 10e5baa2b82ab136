package luabind

import (
	"context"
	"log/slog"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// openLuachan builds this VM's luachan module: broadcast, log, json, null, array, now, token, store
// and presence, its subtables read-only (the caller makes the module itself read-only).
func (v *vm) openLuachan() *lua.LTable {
	L := v.L
	json := newTable(0, 2)
	json.RawSetString("encode", L.NewFunction(jsonEncode))
	json.RawSetString("decode", L.NewFunction(jsonDecode))

	m := newTable(0, 10)
	m.RawSetString("broadcast", L.NewFunction(v.broadcast))
	m.RawSetString("disconnect", L.NewFunction(v.disconnect))
	m.RawSetString("history", L.NewFunction(v.history))
	m.RawSetString("log", L.NewFunction(v.log))
	m.RawSetString("json", v.namespace("luachan.json", json))
	m.RawSetString("null", null)
	m.RawSetString("array", L.NewFunction(luachanArray))
	m.RawSetString("now", L.NewFunction(v.now))
	m.RawSetString("token", v.namespace("luachan.token", v.openToken()))
	m.RawSetString("store", v.namespace("luachan.store", v.openStore()))
	m.RawSetString("presence", v.namespace("luachan.presence", v.openPresence()))
	return m
}

// SocketSends is implemented by a Socket that sends what luachan.broadcast and
// luachan.disconnect do during one of its callbacks once the callback returns, in call
// order with its pushes, as socket:broadcast is: a client then never sees a broadcast
// ahead of a push the script made before it. A handle_tick's go to the SocketSends its
// caller gives (Script.HandleTick), to be sent once its state is saved. Elsewhere, or
// with a Socket that does not implement it, they go through the Host at once.
type SocketSends interface {
	// BroadcastTopic is luachan.broadcast(topic, event, payload).
	BroadcastTopic(topic, event string, p Payload) error
	// DisconnectID is luachan.disconnect(id).
	DisconnectID(id string) error
}

// socketSends is where the running callback's luachan.broadcast and luachan.disconnect
// go, if not through the Host at once.
func (v *vm) socketSends() (SocketSends, bool) {
	if v.sends != nil {
		return v.sends, true
	}
	s, ok := v.sock.(SocketSends)
	return s, ok
}

// broadcast is luachan.broadcast(topic, event, payload).
func (v *vm) broadcast(L *lua.LState) int {
	topic, event := L.CheckString(1), L.CheckString(2)
	p := payloadArg(L, 3)
	var err error
	if s, ok := v.socketSends(); ok {
		err = s.BroadcastTopic(topic, event, p)
	} else {
		host := v.chunk.opts.Host
		if host == nil {
			L.RaiseError("luachan.broadcast: no host to broadcast through")
		}
		err = host.Broadcast(topic, event, p)
	}
	if err != nil {
		L.RaiseError("luachan.broadcast: %s", err)
	}
	return 0
}

// disconnect is luachan.disconnect(id): closes every socket whose id is id.
func (v *vm) disconnect(L *lua.LState) int {
	id := L.CheckString(1)
	var err error
	if s, ok := v.socketSends(); ok {
		err = s.DisconnectID(id)
	} else {
		host, ok := v.chunk.opts.Host.(DisconnectHost)
		if !ok {
			L.RaiseError("luachan.disconnect is not available on this server")
		}
		err = host.Disconnect(id)
	}
	if err != nil {
		L.RaiseError("luachan.disconnect: %s", err)
	}
	return 0
}

// logLevels maps luachan.log's level names to slog levels.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

// log is luachan.log(level, msg, fields?): one structured line at level, the fields table
// flattened into attributes (tables as JSON text), tagged with the script's name.
func (v *vm) log(L *lua.LState) int {
	name := L.CheckString(1)
	level, ok := logLevels[name]
	if !ok {
		L.ArgError(1, "level must be debug, info, warn or error, got '"+name+"'")
	}
	msg := L.CheckString(2)
	fields := L.OptTable(3, nil)
	logger := v.chunk.logger
	ctx := context.Background()
	if !logger.Enabled(ctx, level) {
		return 0
	}
	var attrs []slog.Attr
	if fields != nil {
		for k, val := fields.Next(lua.LNil); k != lua.LNil; k, val = fields.Next(k) {
			attrs = append(attrs, logAttr(lua.LVAsString(k), val))
		}
	}
	logger.LogAttrs(ctx, level, msg, attrs...)
	return 0
}

// logAttr converts one log field to an attribute.
func logAttr(key string, v lua.LValue) slog.Attr {
	switch v := v.(type) {
	case lua.LString:
		return slog.String(key, string(v))
	case lua.LBool:
		return slog.Bool(key, bool(v))
	case lua.LNumber:
		if f := float64(v); f == float64(int64(f)) {
			return slog.Int64(key, int64(f))
		}
		return slog.Float64(key, float64(v))
	case *lua.LTable:
		if data, err := encodeValue(v, key); err == nil {
			return slog.String(key, string(data))
		}
	}
	if v == null {
		return slog.Any(key, nil)
	}
	return slog.String(key, v.String())
}

// jsonEncode is luachan.json.encode(v): the JSON text, or a raised error naming what could
// not be encoded.
func jsonEncode(L *lua.LState) int {
	data, err := encodeValue(L.Get(1), "value")
	if err != nil {
		L.RaiseError("luachan.json.encode: %s", scriptMsg(err))
	}
	L.Push(lua.LString(data))
	return 1
}

// jsonDecode is luachan.json.decode(s): the value, or nil and a message.
func jsonDecode(L *lua.LState) int {
	v, err := decodeJSON([]byte(L.CheckString(1)))
	if err != nil {
		L.Push(lua.LNil)
		L.Push(lua.LString(strings.TrimPrefix(err.Error(), ErrPayload.Error()+": ")))
		return 2
	}
	L.Push(v)
	return 1
}

// now is luachan.now(): milliseconds since the Unix epoch, an integer.
func (v *vm) now(L *lua.LState) int {
	clock := v.chunk.opts.Now
	if clock == nil {
		clock = time.Now
	}
	L.Push(lua.LNumber(clock().UnixMilli()))
	return 1
}

// payloadArg encodes argument n as a payload; values that cannot be encoded raise an error.
func payloadArg(L *lua.LState, n int) Payload {
	return payloadArgWith(L, n, encodePayload)
}

// payloadArgWith is payloadArg encoding with encode.
func payloadArgWith(L *lua.LState, n int, encode func(lua.LValue) (Payload, error)) Payload {
	p, err := encode(L.Get(n))
	if err != nil {
		L.RaiseError("%s", scriptMsg(err))
	}
	return p
}
