package luabind

import (
	"context"

	lua "github.com/yuin/gopher-lua"
)

// callback names one of a channel table's functions.
type callback int

const (
	cbJoin callback = iota
	cbHandleIn
	cbHandleOut
	cbHandleInfo
	cbLeave
	numCallbacks
)

// callbackNames are the channel table's field names, by callback.
var callbackNames = [numCallbacks]string{"join", "handle_in", "handle_out", "handle_info", "leave"}

// vm is one Lua state running one Script generation: the sandboxed globals, the channel table
// its chunk returned, and the per-VM values callbacks reuse. A vm is used by one goroutine at a
// time; the pool hands it over.
type vm struct {
	L       *lua.LState
	script  *Script
	channel *lua.LTable                  // what the chunk returned
	fns     [numCallbacks]*lua.LFunction // the channel's callbacks; nil when not defined

	luachan  *lua.LTable           // the luachan module
	modules  map[string]lua.LValue // require cache: module name to what it returned
	sockMeta *lua.LTable           // metatable of socket objects
	sockFns  map[string]lua.LValue // socket methods by name

	budget *budget // the CPU budget of the running call
	broken bool    // the last call timed out or panicked: close instead of reusing
}

// newVM builds a sandboxed VM and runs the script's chunk in it, under the CPU budget.
func (s *Script) newVM(ctx context.Context) (*vm, error) {
	L := lua.NewState(lua.Options{
		SkipOpenLibs:    true,
		CallStackSize:   callStackSize,
		RegistrySize:    registrySize,
		RegistryMaxSize: registryMaxSize,
	})
	v := &vm{L: L, script: s, modules: make(map[string]lua.LValue), budget: newBudget()}
	v.openSandbox()
	v.openSocket()

	L.Push(L.NewFunctionFromProto(s.proto))
	if err := s.pcall(ctx, v, 0, 1); err != nil {
		v.close()
		return nil, err
	}
	ret := L.Get(-1)
	L.SetTop(0)
	t, ok := ret.(*lua.LTable)
	if !ok {
		v.close()
		return nil, scriptErrorf(s.name, "the script must return a channel table, got %s", typeName(ret))
	}
	v.channel = t
	for cb := range numCallbacks {
		v.fns[cb], _ = t.RawGetString(callbackNames[cb]).(*lua.LFunction)
	}
	if v.fns[cbJoin] == nil {
		v.close()
		return nil, scriptErrorf(s.name, "join must be a function, got %s", typeName(t.RawGetString("join")))
	}
	return v, nil
}

// close releases the VM for good.
func (v *vm) close() {
	v.budget.close()
	v.L.Close()
}

// typeName names a Lua value's type for messages, calling luachan.null "null".
func typeName(v lua.LValue) string {
	if v == null {
		return nullName
	}
	return v.Type().String()
}
