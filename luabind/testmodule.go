package luabind

import (
	"math"

	lua "github.com/yuin/gopher-lua"
)

// testModuleName is what a script test requires to get luachan.test.
const testModuleName = "luachan.test"

// testModule is one test's luachan.test: its functions call the host with the test's CPU
// budget paused, and raise the host's errors at the test's line.
type testModule struct {
	host     TestHost
	budget   *testBudget
	sockMeta *lua.LTable
	chanMeta *lua.LTable
}

// testHandle is a socket or a channel as a test holds it: a userdata around the host's value.
type testHandle struct {
	channel bool
	topic   string // a channel's topic
	value   any
}

// open builds the module's table for v.
func (m *testModule) open(v *vm) *lua.LTable {
	L := v.L
	m.sockMeta = handleMeta(L, "test socket")
	m.chanMeta = handleMeta(L, "test channel")
	t := newTable(0, 10)
	for name, fn := range map[string]lua.LGFunction{
		"connect":                m.connect,
		"join":                   m.join,
		"push":                   m.push,
		"leave":                  m.leave,
		"broadcast_from_outside": m.broadcastFromOutside,
		"assert_push":            m.assertPush,
		"assert_broadcast":       m.assertBroadcast,
		"refute_push":            m.refutePush,
		"advance":                m.advance,
	} {
		t.RawSetString(name, L.NewFunction(m.hosted(name, fn)))
	}
	return t
}

// hosted wraps a module function: it needs a host, and its waits are not the test's CPU.
func (m *testModule) hosted(name string, fn lua.LGFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		if m.host == nil {
			L.RaiseError("luachan.test.%s can only be called inside a test_* function", name)
		}
		m.budget.pause()
		defer m.budget.resume()
		return fn(L)
	}
}

// handleMeta is the metatable of sockets or channels: ch.topic reads the channel's topic.
func handleMeta(L *lua.LState, name string) *lua.LTable {
	mt := newTable(0, 3)
	mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		h, _ := L.CheckUserData(1).Value.(*testHandle)
		if h != nil && h.channel && L.CheckString(2) == "topic" {
			L.Push(lua.LString(h.topic))
			return 1
		}
		return 0
	}))
	mt.RawSetString("__tostring", L.NewFunction(func(L *lua.LState) int {
		if h, _ := L.CheckUserData(1).Value.(*testHandle); h != nil && h.channel {
			L.Push(lua.LString(name + " " + h.topic))
			return 1
		}
		L.Push(lua.LString(name))
		return 1
	}))
	mt.RawSetString("__metatable", lua.LString(name))
	return mt
}

func (m *testModule) newHandle(L *lua.LState, h *testHandle) *lua.LUserData {
	ud := L.NewUserData()
	ud.Value = h
	ud.Metatable = m.sockMeta
	if h.channel {
		ud.Metatable = m.chanMeta
	}
	return ud
}

// checkHandle returns argument n as a channel (or socket) of this test.
func checkHandle(L *lua.LState, n int, channel bool) any {
	want := "a socket from t.connect"
	if channel {
		want = "a channel from t.join"
	}
	ud, ok := L.Get(n).(*lua.LUserData)
	if !ok {
		L.ArgError(n, want+" expected, got "+typeName(L.Get(n)))
	}
	h, ok := ud.Value.(*testHandle)
	if !ok || h.channel != channel {
		L.ArgError(n, want+" expected")
	}
	return h.value
}

// jsonArg encodes argument n; nil is {} when empty is set, else nil (no payload to match).
func jsonArg(L *lua.LState, n int, empty bool) []byte {
	v := L.Get(n)
	if v == lua.LNil {
		if empty {
			return []byte(`{}`)
		}
		return nil
	}
	data, err := encodeValue(v, "payload")
	if err != nil {
		L.ArgError(n, scriptMsg(err))
	}
	return data
}

// pushJSON pushes JSON text as a Lua value (nil for none).
func pushJSON(L *lua.LState, data []byte) {
	if len(data) == 0 {
		L.Push(lua.LNil)
		return
	}
	v, err := decodeJSON(data)
	if err != nil {
		L.RaiseError("%s", err)
	}
	L.Push(v)
}

// raise raises the host's error at the test's line.
func raise(L *lua.LState, err error) {
	if err != nil {
		L.RaiseError("%s", err.Error())
	}
}

// connect is t.connect(params[, info]): a socket, or nil and why it was refused.
// info.auth_token is the token the JS client sends as its authToken option.
func (m *testModule) connect(L *lua.LState) int {
	params := stringTable(L, 1)
	sock, refused, err := m.host.Connect(params, stringTable(L, 2)["auth_token"])
	raise(L, err)
	if sock == nil {
		L.Push(lua.LNil)
		L.Push(lua.LString(refused))
		return 2
	}
	L.Push(m.newHandle(L, &testHandle{value: sock}))
	return 1
}

// stringTable reads argument n, an optional table of strings, numbers or booleans.
func stringTable(L *lua.LState, n int) map[string]string {
	out := map[string]string{}
	if t := L.OptTable(n, nil); t != nil {
		t.ForEach(func(k, v lua.LValue) {
			switch v.(type) {
			case lua.LString, lua.LNumber, lua.LBool:
				out[k.String()] = v.String()
			default:
				L.ArgError(n, "strings, numbers or booleans expected, got "+typeName(v)+" for "+k.String())
			}
		})
	}
	return out
}

// join is t.join(sock, topic, payload): the channel and the join's reply, or nil and the
// error reply.
func (m *testModule) join(L *lua.LState) int {
	sock := checkHandle(L, 1, false)
	topic := L.CheckString(2)
	ch, reply, err := m.host.Join(sock, topic, jsonArg(L, 3, true))
	raise(L, err)
	if ch == nil {
		L.Push(lua.LNil)
	} else {
		L.Push(m.newHandle(L, &testHandle{channel: true, topic: topic, value: ch}))
	}
	pushJSON(L, reply.Response)
	return 2
}

// push is t.push(ch, event, payload): the reply's status and response, or nothing when
// handle_in gave no reply.
func (m *testModule) push(L *lua.LState) int {
	ch := checkHandle(L, 1, true)
	event := L.CheckString(2)
	reply, err := m.host.Push(ch, event, jsonArg(L, 3, true))
	raise(L, err)
	if reply == nil {
		return 0
	}
	L.Push(lua.LString(reply.Status))
	pushJSON(L, reply.Response)
	return 2
}

// leave is t.leave(ch).
func (m *testModule) leave(L *lua.LState) int {
	raise(L, m.host.Leave(checkHandle(L, 1, true)))
	return 0
}

// broadcastFromOutside is t.broadcast_from_outside(topic, event, payload), as
// POST /api/broadcast does.
func (m *testModule) broadcastFromOutside(L *lua.LState) int {
	topic, event := L.CheckString(1), L.CheckString(2)
	raise(L, m.host.BroadcastFromOutside(topic, event, jsonArg(L, 3, true)))
	return 0
}

// assertPush is t.assert_push(ch, event[, payload]): the payload received.
func (m *testModule) assertPush(L *lua.LState) int {
	ch := checkHandle(L, 1, true)
	got, err := m.host.AssertPush(ch, L.CheckString(2), jsonArg(L, 3, false))
	raise(L, err)
	pushJSON(L, got)
	return 1
}

// assertBroadcast is t.assert_broadcast(topic, event[, payload]): the payload broadcast.
func (m *testModule) assertBroadcast(L *lua.LState) int {
	topic, event := L.CheckString(1), L.CheckString(2)
	got, err := m.host.AssertBroadcast(topic, event, jsonArg(L, 3, false))
	raise(L, err)
	pushJSON(L, got)
	return 1
}

// refutePush is t.refute_push(ch, event[, payload]).
func (m *testModule) refutePush(L *lua.LState) int {
	ch := checkHandle(L, 1, true)
	raise(L, m.host.RefutePush(ch, L.CheckString(2), jsonArg(L, 3, false)))
	return 0
}

// advance is t.advance(ms): the virtual clock moves on, firing socket:after timers.
func (m *testModule) advance(L *lua.LState) int {
	ms := float64(L.CheckNumber(1))
	if ms < 0 || ms != math.Trunc(ms) || ms > math.MaxInt32 {
		L.ArgError(1, "milliseconds must be a whole number from 0 to 2^31-1")
	}
	raise(L, m.host.Advance(int64(ms)))
	return 0
}
