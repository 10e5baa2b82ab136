package luabind

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// removedGlobals are base library functions scripts do not get: they load code from outside the
// folder, reach other functions' environments, or control the host's garbage collector.
var removedGlobals = []string{
	"load", "loadstring", "dofile", "loadfile", "getfenv", "setfenv",
	"collectgarbage", "_printregs", "module", "newproxy", "_GOPHER_LUA_VERSION",
}

// lockedName is what getmetatable gives for what scripts may not change: the global
// environment, the library tables and strings.
const lockedName = "locked"

// openSandbox opens what scripts may use: the base library without removedGlobals, string
// (without dump), table and math, print to the log, require for lib/ and the luachan module.
// There is no os, io, debug, coroutine, channel or package. The builtins that run long or build
// large values in one Go call are replaced by guarded ones (see limits.go, pattern.go).
//
// Every chunk and module runs in env, which is what _G is. Its reads fall through to the
// globals the script defined while loading (see seal), and from there to base, the real global
// table, which scripts never reach. base holds the libraries as read-only views: nothing a
// script does changes them. A callback's own global assignments land in env, which is emptied
// when the VM goes back to its pool (resetEnv), so no call sees another's globals.
func (v *vm) openSandbox() {
	L := v.L
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	base := L.G.Global
	for _, name := range removedGlobals {
		base.RawSetString(name, lua.LNil)
	}
	str := base.RawGetString(lua.StringLibName).(*lua.LTable)
	str.RawSetString("dump", lua.LNil)
	str.RawSetString("__index", lua.LNil) // OpenString makes the library its own metatable
	v.locked = make(map[*lua.LTable]struct{})
	v.refuse = L.NewFunction(refuseWrite)
	v.guardBuiltins(base, str, base.RawGetString(lua.TabLibName).(*lua.LTable))

	// Strings index the real library; getmetatable("") does not give it away.
	strMeta := newTable(0, 2)
	strMeta.RawSetString("__index", str)
	strMeta.RawSetString("__metatable", lua.LString(lockedName))
	L.SetMetatable(lua.LString(""), strMeta)

	for _, name := range []string{lua.StringLibName, lua.TabLibName, lua.MathLibName} {
		base.RawSetString(name, v.readOnly(base.RawGetString(name).(*lua.LTable)))
	}
	v.luachan = v.namespace("luachan", v.openLuachan())
	base.RawSetString("luachan", v.luachan)
	base.RawSetString("print", L.NewFunction(v.print))
	base.RawSetString("assert", L.NewFunction(luaAssert))
	base.RawSetString("require", L.NewFunction(v.require))

	v.env = newTable(0, 0)
	v.envMeta = lockedMeta(base)
	v.env.Metatable = v.envMeta
	base.RawSetString("_G", v.env)
}

// luaAssert is Lua's assert(v [, message]), with a message of any type, as Lua 5.2 and later
// take it (5.1's, and gopher-lua's, want a string): assert(t.join(sock, topic)) raises the
// error reply of a refused join, shown as JSON, rather than "bad argument #2 to assert
// (string expected, got table)".
func luaAssert(L *lua.LState) int {
	L.CheckAny(1)
	if lua.LVAsBool(L.Get(1)) {
		return L.GetTop()
	}
	msg := L.Get(2)
	switch msg.(type) {
	case *lua.LNilType:
		L.RaiseError("assertion failed!")
	case lua.LString, lua.LNumber:
		L.RaiseError("%s", lua.LVAsString(msg))
	}
	L.Error(msg, 1)
	return 0
}

// lockedMeta is a metatable reading through to index whose owner's metatable cannot be read or
// replaced.
func lockedMeta(index *lua.LTable) *lua.LTable {
	mt := newTable(0, 2)
	mt.RawSetString("__index", index)
	mt.RawSetString("__metatable", lua.LString(lockedName))
	return mt
}

// readOnly returns a view of t that scripts can read but not change: an empty table whose
// locked metatable reads through to t and refuses assignments. rawset and table.insert refuse
// views too (see isLocked), so nothing can be stored in one.
func (v *vm) readOnly(t *lua.LTable) *lua.LTable {
	mt := lockedMeta(t)
	mt.RawSetString("__newindex", v.refuse)
	view := newTable(0, 0)
	view.Metatable = mt
	v.locked[view] = struct{}{}
	return view
}

// namespace is readOnly for one of luachan's own tables, named name ("luachan.store"): reading
// a field it does not have raises an error that names it and the nearest field it has. A
// plain table gives nil, and the script fails where it calls that nil, with gopher-lua's
// "attempt to call a non-function object", which names nothing.
func (v *vm) namespace(name string, t *lua.LTable) *lua.LTable {
	var fields []string
	t.ForEach(func(k, _ lua.LValue) {
		if s, ok := k.(lua.LString); ok {
			fields = append(fields, string(s))
		}
	})
	slices.Sort(fields)
	mt := newTable(0, 1)
	mt.RawSetString("__index", v.L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("%s", noField(name, ".", L.Get(2), fields))
		return 0
	}))
	t.Metatable = mt // t itself is reached only through the view, whose misses end here
	return v.readOnly(t)
}

// noField says that owner has no field key, and which of fields was meant when one is
// within two edits of it; sep joins owner and field ("socket:push" for a method).
func noField(owner, sep string, key lua.LValue, fields []string) string {
	msg := fmt.Sprintf("%s%s%s does not exist", owner, sep, key)
	if k, ok := key.(lua.LString); ok {
		if meant := nearest(string(k), fields); meant != "" {
			msg += fmt.Sprintf(" (did you mean %s%s%s?)", owner, sep, meant)
		}
	}
	return msg
}

// isLocked reports whether t is a read-only view.
func (v *vm) isLocked(t *lua.LTable) bool {
	if t.Metatable == lua.LNil {
		return false
	}
	_, ok := v.locked[t]
	return ok
}

// refuseWrite is the __newindex of read-only views.
func refuseWrite(L *lua.LState) int {
	L.RaiseError("cannot set field %s of a read-only table", L.ToStringMeta(L.Get(2)))
	return 0
}

// seal ends loading: the globals the chunk defined while loading move out of env into a table
// of their own behind it, so later calls read them but their assignments only shadow them.
func (v *vm) seal() {
	defined := newTable(0, 0)
	for k, val := v.env.Next(lua.LNil); k != lua.LNil; k, val = v.env.Next(k) {
		defined.RawSet(k, val)
	}
	defined.Metatable = v.envMeta // reads on through to base
	v.envMeta = lockedMeta(defined)
	v.resetEnv()
}

// resetEnv empties env, dropping every global the last call assigned. It replaces the table's
// contents, not the table: every function of the script holds env as its environment.
func (v *vm) resetEnv() {
	*v.env = lua.LTable{Metatable: v.envMeta}
}

// rawset is the base rawset(t, k, v), refusing read-only views; it returns t as in Lua 5.1.
func (v *vm) rawset(L *lua.LState) int {
	t := L.CheckTable(1)
	if v.isLocked(t) {
		L.RaiseError("cannot change a read-only table")
	}
	L.RawSet(t, L.CheckAny(2), L.CheckAny(3))
	L.SetTop(1)
	return 1
}

// setmetatable is the base setmetatable for tables only, as in Lua 5.1: gopher-lua's would
// also set the metatable shared by every number, boolean or function of the VM.
func setmetatable(setmeta lua.LGFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		L.CheckTable(1)
		return setmeta(L)
	}
}

// print writes its arguments, tab-separated, to the log at info.
func (v *vm) print(L *lua.LState) int {
	if !v.chunk.logger.Enabled(context.Background(), slog.LevelInfo) {
		return 0
	}
	var b strings.Builder
	for i := 1; i <= L.GetTop(); i++ {
		if i > 1 {
			b.WriteByte('\t')
		}
		b.WriteString(L.ToStringMeta(L.Get(i)).String())
	}
	v.chunk.logger.Info(b.String())
	return 0
}
