package luabind

import (
	lua "github.com/yuin/gopher-lua"
)

// null is luachan.null, JSON null in Lua. It is one value shared by every VM, so tables holding
// it can move between VMs (assigns, outgoing payloads). Its metatable is protected: scripts can
// neither read nor replace it, which keeps the shared value immutable.
var null = newNull()

// nullName is what tostring(luachan.null) and getmetatable(luachan.null) give.
const nullName = "null"

func newNull() *lua.LUserData {
	mt := newTable(0, 2)
	mt.RawSetString("__metatable", lua.LString(nullName))
	mt.RawSetString("__tostring", &lua.LFunction{IsG: true, GFunction: nullToString, Env: newTable(0, 0)})
	return &lua.LUserData{Value: nullName, Metatable: mt}
}

func nullToString(L *lua.LState) int {
	L.Push(lua.LString(nullName))
	return 1
}

// newTable makes a table sized for acap sequence items and hcap named fields. LState.CreateTable
// does not use its receiver, so tables can be built outside any VM (for assigns and outgoing
// payloads) and pre-sized, which matters for conversion speed.
func newTable(acap, hcap int) *lua.LTable {
	return (*lua.LState)(nil).CreateTable(acap, hcap)
}

// smallInts holds boxed small integers: converting a number to a lua.LValue otherwise allocates.
var smallInts = func() (a [1024]lua.LValue) {
	for i := range a {
		a[i] = lua.LNumber(i)
	}
	return a
}()

// numberValue boxes f as a lua.LValue, without allocating for small non-negative integers.
func numberValue(f float64) lua.LValue {
	if f >= 0 && f < float64(len(smallInts)) {
		if i := int(f); float64(i) == f {
			return smallInts[i]
		}
	}
	return lua.LNumber(f)
}
