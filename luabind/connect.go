package luabind

import (
	"context"
	"os"

	lua "github.com/yuin/gopher-lua"
)

// ConnectInfo is connect's second argument, info: info.auth_token (the 1.8 JS client's
// authToken), info.origin (the Origin header) and info.remote_ip. Each is nil in Lua when "".
type ConnectInfo struct{ AuthToken, Origin, RemoteIP string }

// ConnectScript is a compiled socket.lua: a table with a function connect, which decides who
// may connect before the WebSocket upgrade (SPEC section 3, "Connecting"). It runs on the same
// VM pool, sandbox and CPU budget as a Script. Immutable after loading; safe for concurrent use.
type ConnectScript struct {
	chunk
	warnings []string // near-miss field names (see nearMissWarnings)
}

// Warnings returns what loading socket.lua found suspicious but allowed, e.g. a field
// `conect` ("did you mean connect?").
func (c *ConnectScript) Warnings() []string { return c.warnings }

// maxConnectResults is how many values connect may return: ok, assigns, socket id.
const maxConnectResults = 3

// LoadConnect reads, compiles and validates socket.lua at path (see LoadConnectSource).
func LoadConnect(opts Options, path string) (*ConnectScript, error) {
	name := relName(opts.Dir, path)
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, &ScriptError{File: name, Msg: err.Error()}
	}
	return LoadConnectSource(opts, name, src)
}

// LoadConnectSource compiles and validates socket.lua given as source (name is the relative
// file name, "socket.lua"): it must compile, run without error when loaded, and return a table
// with a function connect. Errors are *ScriptError naming the file and line.
func LoadConnectSource(opts Options, name string, src []byte) (*ConnectScript, error) {
	c := &ConnectScript{}
	c.returns = "a table with a connect function"
	c.bind = c.bindVM
	lint := func(t *lua.LTable) error { c.warnings = nearMissWarnings(t, socketFields); return nil }
	if err := c.init(opts, name, src, lint); err != nil {
		return nil, err
	}
	logWarnings(c.logger, c.warnings)
	return c, nil
}

// bindVM picks connect out of the table v's chunk returned.
func (c *ConnectScript) bindVM(v *vm) error {
	f := v.table.RawGetString("connect")
	fn, ok := f.(*lua.LFunction)
	if !ok {
		return scriptErrorf(c.name, "connect must be a function, got %s%s", typeName(f), missingHint(v.table, "connect"))
	}
	v.fns[cbConnect] = fn
	return nil
}

// Connect runs connect(params, info). params holds each query parameter's first value, as a
// table of strings. connect answers false (or nil, or nothing) to refuse, giving ok=false, or
// true[, assigns[, id]] to accept: assigns (a table of data, nil for none) become a Go-owned
// *Assigns the socket's channels start from, and id (a string, nil for none) is the socket id,
// "" when nil. A wrong type in any position or more than three values is a *ScriptError, as
// are Lua errors and timeouts (the engine answers 403 then).
func (c *ConnectScript) Connect(ctx context.Context, params map[string]string, info ConnectInfo) (ok bool, assigns *Assigns, id string, err error) {
	c.calls.Add(1)
	defer func() {
		if err != nil && ctx.Err() == nil { // a client that left while waiting is no failure of the script
			c.failed.Add(1)
		}
	}()
	v, err := c.pool.get(ctx)
	if err != nil {
		return false, nil, "", err
	}
	defer c.pool.put(v)
	L := v.L

	p := newTable(0, len(params))
	for k, val := range params {
		p.RawSetString(k, lua.LString(val))
	}
	in := newTable(0, 3)
	for _, f := range [...]struct{ key, val string }{
		{"auth_token", info.AuthToken}, {"origin", info.Origin}, {"remote_ip", info.RemoteIP},
	} {
		if f.val != "" {
			in.RawSetString(f.key, lua.LString(f.val))
		}
	}
	L.Push(v.fns[cbConnect])
	L.Push(p)
	L.Push(in)
	if err := c.pcall(ctx, v, 2, lua.MultRet); err != nil {
		return false, nil, "", err
	}
	n := L.GetTop()
	if n > maxConnectResults {
		return false, nil, "", c.fnErrorf(v, cbConnect, "connect must return at most %d values (ok, assigns, id), got %d", maxConnectResults, n)
	}
	switch res := L.Get(1).(type) {
	case *lua.LNilType:
		return false, nil, "", nil
	case lua.LBool:
		if !res {
			return false, nil, "", nil
		}
	default:
		return false, nil, "", c.fnErrorf(v, cbConnect, "connect must return true or false, got %s", typeName(res))
	}

	switch t := L.Get(2).(type) {
	case *lua.LNilType:
		assigns = NewAssigns()
	case *lua.LTable:
		if err := checkData(t); err != nil {
			return false, nil, "", c.fnErrorf(v, cbConnect, "connect's assigns: %s", err)
		}
		assigns = &Assigns{t: copyTable(t)} // Go's own copy: the VM may keep t
	default:
		return false, nil, "", c.fnErrorf(v, cbConnect, "connect's assigns must be a table, got %s", typeName(t))
	}

	switch s := L.Get(3).(type) {
	case *lua.LNilType:
	case lua.LString:
		id = string(s)
	default:
		return false, nil, "", c.fnErrorf(v, cbConnect, "connect's socket id must be a string, got %s", typeName(s))
	}
	return true, assigns, id, nil
}
