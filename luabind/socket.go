package luabind

import (
	"maps"
	"slices"

	lua "github.com/yuin/gopher-lua"
)

// luaSocket is the `socket` argument of one callback: a userdata whose per-VM metatable serves
// the fields (topic, join_ref, id, assigns) and methods (push, reply, broadcast,
// broadcast_from, after). It lives for one call; using it after the call returned raises an error
// rather than reaching a channel that may be gone.
//
// socket.assigns is this call's own copy of the channel's Assigns, made when first read; after
// a successful call the copy is checked and copied back (see Script.run). A script that keeps
// the table past the call keeps a dead copy, which no other goroutine ever touches.
type luaSocket struct {
	ud   lua.LUserData // what the script holds; ud.Value points back here
	sock Socket
	a    *Assigns
	t    *lua.LTable // this call's socket.assigns; nil until read or set
	done bool        // the callback returned
}

// socketName is what tostring and getmetatable give for a socket.
const socketName = "socket"

// openSocket builds this VM's socket metatable and methods.
func (v *vm) openSocket() {
	L := v.L
	push := L.NewFunction(v.socketPush)
	v.sockFns = map[string]lua.LValue{
		"push":           push,
		"reply":          push,
		"broadcast":      L.NewFunction(socketBroadcast),
		"broadcast_from": L.NewFunction(socketBroadcastFrom),
		"after":          L.NewFunction(socketAfter),
		"call":           L.NewFunction(socketCall),
	}
	mt := newTable(0, 4)
	mt.RawSetString("__index", L.NewFunction(v.socketIndex))
	mt.RawSetString("__newindex", L.NewFunction(socketNewIndex))
	mt.RawSetString("__tostring", L.NewFunction(socketToString))
	mt.RawSetString("__metatable", lua.LString(socketName))
	v.sockMeta = mt
}

// newSocket makes the socket object for one call. A nil a is a socket without assigns:
// handle_call's, the caller's channel's, whose assigns are not this call's to read or set.
func (v *vm) newSocket(sock Socket, a *Assigns) *luaSocket {
	s := &luaSocket{sock: sock, a: a}
	s.ud.Value = s
	s.ud.Metatable = v.sockMeta
	return s
}

// checkSocket returns argument n as a live socket, or raises an error.
func checkSocket(L *lua.LState, n int) *luaSocket {
	ud, ok := L.Get(n).(*lua.LUserData)
	var s *luaSocket
	if ok {
		s, ok = ud.Value.(*luaSocket)
	}
	if !ok {
		L.ArgError(n, "socket expected (call methods as socket:push(...))")
	}
	if s.done {
		L.RaiseError("socket used after its callback returned")
	}
	return s
}

// optString pushes s, or nil when s is empty.
func optString(s string) lua.LValue {
	if s == "" {
		return lua.LNil
	}
	return lua.LString(s)
}

// socketIndex serves socket.topic, .join_ref, .id, .assigns and the methods.
func (v *vm) socketIndex(L *lua.LState) int {
	s := checkSocket(L, 1)
	key := L.CheckString(2)
	switch key {
	case "topic":
		L.Push(lua.LString(s.sock.Topic()))
	case "join_ref":
		L.Push(optString(s.sock.JoinRef()))
	case "id":
		L.Push(optString(s.sock.ID()))
	case "assigns":
		if s.a == nil {
			L.RaiseError("%s", errNoAssigns)
		}
		if s.t == nil {
			s.t = s.a.copyIn()
		}
		L.Push(s.t)
	default:
		fn, ok := v.sockFns[key]
		if !ok {
			L.RaiseError("%s", v.noSocketField(key))
		}
		L.Push(fn)
	}
	return 1
}

// errNoAssigns is reading or setting socket.assigns in handle_call, where a plain empty
// table would take what the script writes and keep none of it.
const errNoAssigns = "socket.assigns is not available in handle_call (the caller's channel keeps them): pass what the state needs in msg"

// socketFieldNames are the fields socketIndex serves besides the methods.
var socketFieldNames = []string{"topic", "join_ref", "id", "assigns"}

// noSocketField says that the socket has no field key, and which field or method was meant
// when one is within two edits of it.
func (v *vm) noSocketField(key string) string {
	k := lua.LString(key)
	if nearest(key, socketFieldNames) == "" {
		if methods := slices.Sorted(maps.Keys(v.sockFns)); nearest(key, methods) != "" {
			return noField("socket", ":", k, methods)
		}
	}
	return noField("socket", ".", k, socketFieldNames)
}

// socketNewIndex allows `socket.assigns = {...}` (checked as data after the call); every
// other field is read-only.
func socketNewIndex(L *lua.LState) int {
	s := checkSocket(L, 1)
	key := L.CheckString(2)
	if key != "assigns" {
		L.RaiseError("socket.%s is read-only", key)
	}
	if s.a == nil {
		L.RaiseError("%s", errNoAssigns)
	}
	s.t = L.CheckTable(3)
	return 0
}

func socketToString(L *lua.LState) int {
	if ud, ok := L.Get(1).(*lua.LUserData); ok {
		if s, ok := ud.Value.(*luaSocket); ok && !s.done {
			L.Push(lua.LString(socketName + ": " + s.sock.Topic()))
			return 1
		}
	}
	L.Push(lua.LString(socketName))
	return 1
}

// socketPush is socket:push(event, payload) and socket:reply(event, payload).
func (v *vm) socketPush(L *lua.LState) int {
	s := checkSocket(L, 1)
	event := L.CheckString(2)
	encode := encodePushPayload
	if v.out != nil && v.out.push != nil {
		encode = v.out.encodePush
		if l := v.outLent; l != nil && L.Get(3) == lua.LValue(l.t) {
			out, written := v.out, v.outPlan.written
			encode = func(lua.LValue) (Payload, error) { return out.encodeLent(l, written) }
		}
	}
	if err := s.sock.Push(event, payloadArgWith(L, 3, encode)); err != nil {
		L.RaiseError("socket:push: %s", err)
	}
	return 0
}

// socketBroadcast is socket:broadcast(event, payload), self included.
func socketBroadcast(L *lua.LState) int {
	return socketBroadcastTo(L, false)
}

// socketBroadcastFrom is socket:broadcast_from(event, payload), to everyone but self.
func socketBroadcastFrom(L *lua.LState) int {
	return socketBroadcastTo(L, true)
}

func socketBroadcastTo(L *lua.LState, excludeSelf bool) int {
	s := checkSocket(L, 1)
	event := L.CheckString(2)
	if err := s.sock.Broadcast(event, payloadArg(L, 3), excludeSelf); err != nil {
		L.RaiseError("socket:broadcast: %s", err)
	}
	return 0
}
