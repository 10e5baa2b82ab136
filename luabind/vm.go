package luabind

import (
	"context"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// callback names one of the functions a script's table holds.
type callback int

const (
	cbJoin callback = iota
	cbHandleIn
	cbHandleOut
	cbHandleInfo
	cbLeave
	numCallbacks // the channel callbacks are the ones above

	cbConnect = numCallbacks // socket.lua's connect
	numFns    = cbConnect + 1
)

// callbackNames are the table's field names, by callback.
var callbackNames = [numFns]string{"join", "handle_in", "handle_out", "handle_info", "leave", "connect"}

// vm is one Lua state running one chunk generation: the sandboxed globals, the table its chunk
// returned, and the per-VM values callbacks reuse. A vm is used by one goroutine at a time;
// the pool hands it over.
type vm struct {
	L     *lua.LState
	chunk *chunk
	table *lua.LTable            // what the chunk returned
	fns   [numFns]*lua.LFunction // the table's callbacks; nil when not defined

	env      *lua.LTable              // the environment every chunk runs in: _G (see openSandbox)
	envMeta  *lua.LTable              // env's metatable
	locked   map[*lua.LTable]struct{} // the read-only views of libraries (see readOnly)
	refuse   *lua.LFunction           // __newindex of the read-only views
	luachan  *lua.LTable              // the luachan module, read-only
	modules  map[string]lua.LValue    // require cache: module name to what it returned
	sockMeta *lua.LTable              // metatable of socket objects
	sockFns  map[string]lua.LValue    // socket methods by name

	budget   *budget         // the CPU budget of the running call
	sock     Socket          // the channel the running callback serves; nil between calls
	sends    SocketSends     // where the running callback's luachan.broadcast and .disconnect go, when not sock's
	out      *Outgoing       // the payload of the running handle_out call; nil otherwise
	outPlan  sharePlan       // what handle_out does with its payload (see planShare)
	outLent  *lent           // the running handle_out call's payload, when lent; nil otherwise
	lent     [lentSlots]lent // payloads lent to the handle_out calls of a Holder
	lentNext int             // the slot of lent the next broadcast takes
	broken   bool            // the last call was stopped or panicked: close instead of reusing
	waited   time.Duration   // how long the running call has waited on luachan.store and .presence
	cb       callback        // the running callback, for CallStats
	started  int64           // when it began (monoNow), for CallStats
}

// newVM builds a sandboxed VM and runs the chunk in it, under the CPU budget.
func (c *chunk) newVM(ctx context.Context) (*vm, error) {
	return c.runVM(ctx, c.newState())
}

// newState builds a sandboxed VM that has run nothing yet.
func (c *chunk) newState() *vm {
	L := lua.NewState(lua.Options{
		SkipOpenLibs:     true,
		CallStackSize:    callStackSize,
		RegistrySize:     registrySize,
		RegistryMaxSize:  registryMaxSize,
		RegistryGrowStep: registryGrowStep,
	})
	v := &vm{L: L, chunk: c, modules: make(map[string]lua.LValue), budget: newBudget()}
	v.budget.maxHeap = c.opts.MaxHeap
	v.openSandbox()
	v.openSocket()
	return v
}

// runVM runs the chunk in v, under the CPU budget, and binds what it returned.
func (c *chunk) runVM(ctx context.Context, v *vm) (*vm, error) {
	L := v.L
	fn := L.NewFunctionFromProto(c.proto)
	fn.Env = v.env
	L.Push(fn)
	if err := c.pcall(ctx, v, 0, 1); err != nil {
		v.close()
		return nil, err
	}
	ret := L.Get(-1)
	L.SetTop(0)
	t, ok := ret.(*lua.LTable)
	if !ok {
		v.close()
		return nil, scriptErrorf(c.name, "the script must return %s, got %s", c.returns, typeName(ret))
	}
	v.table = t
	if err := c.bind(v); err != nil {
		v.close()
		return nil, err
	}
	v.seal()
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
