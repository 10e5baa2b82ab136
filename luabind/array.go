package luabind

import (
	lua "github.com/yuin/gopher-lua"
)

// arrayMeta marks a table as a JSON array: luachan.array's tables and every decoded JSON
// array carry it, so an empty one encodes as [] instead of {} and `[]` round-trips through a
// script. Like null it is one value shared by every VM (marked tables move between VMs in
// assigns and outgoing payloads) and its metatable is protected: getmetatable gives
// arrayName, and setmetatable refuses to change it, so no script can alter the shared table
// or unmark an array.
var arrayMeta = newArrayMeta()

// arrayName is what getmetatable gives for a marked table.
const arrayName = "array"

func newArrayMeta() *lua.LTable {
	mt := newTable(0, 1)
	mt.RawSetString("__metatable", lua.LString(arrayName))
	return mt
}

// isArray reports whether t carries the array mark.
func isArray(t *lua.LTable) bool {
	return t.Metatable == lua.LValue(arrayMeta)
}

// markArray gives t the array mark and returns it.
func markArray(t *lua.LTable) *lua.LTable {
	t.Metatable = arrayMeta
	return t
}

// dataMeta is the metatable a copy of a table of data gets: the array mark if t has it.
func dataMeta(t *lua.LTable) lua.LValue {
	if isArray(t) {
		return arrayMeta
	}
	return lua.LNil
}

// isEmpty reports whether t has no field at all.
func isEmpty(t *lua.LTable) bool {
	k, _ := t.Next(lua.LNil)
	return k == lua.LNil
}

// luachanArray is luachan.array(...): a new table marked as a JSON array holding the
// arguments in order. A nil argument is an error: a Lua sequence cannot hold it.
func luachanArray(L *lua.LState) int {
	n := L.GetTop()
	t := newTable(n, 0)
	for i := 1; i <= n; i++ {
		v := L.Get(i)
		if v == lua.LNil {
			L.ArgError(i, "luachan.array: a nil element would leave a hole; use luachan.null for a JSON null")
		}
		t.Append(v)
	}
	L.Push(markArray(t))
	return 1
}
