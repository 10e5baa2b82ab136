package luabind

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	lua "github.com/yuin/gopher-lua"
)

// Topic state (SPEC section 11): one authoritative, JSON-able state per topic, kept by the
// engine as JSON text (Go-owned, like assigns, so it survives VM reuse and reloads) and
// handed to init, handle_call, handle_tick and terminate. These callbacks run on VMs of their
// own pool: a channel callback waiting in socket:call holds a VM of the channel pool, and
// handle_call must never wait behind it.

// Bounds of the tick field.
const (
	// MinTick is the shortest tick period, in ms.
	MinTick = 10
	// MaxTick is the longest tick period, in ms (a day).
	MaxTick = 24 * 60 * 60 * 1000
)

// topicStateFns are the topic-state callbacks' field names.
var topicStateFns = []string{"init", "handle_call", "handle_tick", "terminate"}

// topicStateDecl is what a channel table declares about topic state.
type topicStateDecl struct {
	has  map[string]bool // which of topicStateFns are functions
	tick int             // ms; 0: no ticks

	poolOnce sync.Once
	pool     *pool // VMs for the topic-state callbacks; made on first use
}

// SocketCall is implemented by a Socket that supports socket:call(msg): the engine runs
// handle_call on the topic's state and returns its reply (JSON text, empty for nil).
type SocketCall interface {
	Call(msg []byte) (reply []byte, err error)
}

// validateTopicState records the topic-state fields of t.
func (s *Script) validateTopicState(t *lua.LTable) error {
	s.ts.has = map[string]bool{}
	for _, name := range topicStateFns {
		switch f := t.RawGetString(name); f.(type) {
		case *lua.LFunction:
			s.ts.has[name] = true
		case *lua.LNilType:
		default:
			return scriptErrorf(s.name, "%s must be a function, got %s", name, typeName(f))
		}
	}
	switch tick := t.RawGetString("tick").(type) {
	case *lua.LNilType:
	case lua.LNumber:
		ms := float64(tick)
		if ms != math.Trunc(ms) || ms < MinTick || ms > MaxTick {
			return scriptErrorf(s.name, "tick must be a whole number of ms from %d to %d, got %v", MinTick, MaxTick, ms)
		}
		if !s.ts.has["handle_tick"] {
			return scriptErrorf(s.name, "tick is set but there is no handle_tick function: define handle_tick, or remove tick")
		}
		s.ts.tick = int(ms)
	default:
		return scriptErrorf(s.name, "tick must be a number of ms, got %s", typeName(tick))
	}
	return nil
}

// HasTopicState reports whether the script keeps a topic state (defines handle_call or
// handle_tick).
func (s *Script) HasTopicState() bool { return s.ts.has["handle_call"] || s.ts.has["handle_tick"] }

// HasHandleCall reports whether the script defines handle_call.
func (s *Script) HasHandleCall() bool { return s.ts.has["handle_call"] }

// Tick is the tick period in ms; 0 when the script does not tick.
func (s *Script) Tick() int { return s.ts.tick }

// statePool returns the pool the topic-state callbacks run on.
func (s *Script) statePool() *pool {
	s.ts.poolOnce.Do(func() { s.ts.pool = newPool(s.opts.MaxVMs, s.newVM) })
	return s.ts.pool
}

// Close releases the pooled VMs (both pools) once in-flight calls finish.
func (s *Script) Close() {
	s.chunk.Close()
	s.statePool().close()
}

// errNoState is a topic-state callback's result that is not a table.
var errNoState = errors.New("must return the state (a table)")

// InitState runs init(topic, params) and returns the first state, JSON text. Without init,
// or when init returns nil, the state is {}.
func (s *Script) InitState(ctx context.Context, topic string, params []byte) ([]byte, error) {
	if !s.ts.has["init"] {
		return []byte("{}"), nil
	}
	arg, err := stateArg(params)
	if err != nil {
		return nil, err
	}
	var state []byte
	err = s.runState(ctx, "init", nil, nil, func(v *vm, fn *lua.LFunction) error {
		var err error
		state, err = s.stateResult(v, fn, "init", v.L.Get(1), true)
		return err
	}, lua.LString(topic), arg)
	return state, err
}

// HandleCall runs handle_call(msg, state, socket) and returns its reply (JSON text; empty
// for nil) and the new state. On error the state is to be kept as it was.
func (s *Script) HandleCall(ctx context.Context, sock Socket, msg, state []byte) (reply, next []byte, err error) {
	if !s.ts.has["handle_call"] {
		return nil, nil, scriptErrorf(s.name, "socket:call: the script has no handle_call")
	}
	m, err := stateArg(msg)
	if err != nil {
		return nil, nil, err
	}
	st, err := decodeJSON(state)
	if err != nil {
		return nil, nil, err
	}
	err = s.runState(ctx, "handle_call", sock, nil, func(v *vm, fn *lua.LFunction) error {
		if n := v.L.GetTop(); n > 2 {
			return s.stateErrorf(fn, "handle_call must return reply, state; got %d values", n)
		}
		if r := v.L.Get(1); r != lua.LNil {
			data, err := encodeValue(r, "reply")
			if err != nil {
				return s.stateErrorf(fn, "handle_call: %s", scriptMsg(err))
			}
			reply = data
		}
		var err error
		next, err = s.stateResult(v, fn, "handle_call", v.L.Get(2), false)
		return err
	}, m, st)
	return reply, next, err
}

// HandleTick runs handle_tick(state, topic) and returns the new state. What its
// luachan.broadcast and luachan.disconnect send goes to sends, when not nil, for the
// caller to send once the new state is kept (saved, across nodes); through the Host at
// once otherwise.
func (s *Script) HandleTick(ctx context.Context, topic string, state []byte, sends SocketSends) ([]byte, error) {
	st, err := decodeJSON(state)
	if err != nil {
		return nil, err
	}
	var next []byte
	err = s.runState(ctx, "handle_tick", nil, sends, func(v *vm, fn *lua.LFunction) error {
		var err error
		next, err = s.stateResult(v, fn, "handle_tick", v.L.Get(1), false)
		return err
	}, st, lua.LString(topic))
	return next, err
}

// Terminate runs terminate(state, topic), if defined.
func (s *Script) Terminate(ctx context.Context, topic string, state []byte) error {
	if !s.ts.has["terminate"] {
		return nil
	}
	st, err := decodeJSON(state)
	if err != nil {
		return err
	}
	return s.runState(ctx, "terminate", nil, nil, nil, st, lua.LString(topic))
}

// runState calls the callback name with args (and a socket for sock, when not nil) on a VM
// of the state pool, then results while the VM is held. luachan.broadcast and
// luachan.disconnect go to sends when it is not nil (see SocketSends).
func (s *Script) runState(ctx context.Context, name string, sock Socket, sends SocketSends, results func(*vm, *lua.LFunction) error, args ...lua.LValue) (err error) {
	s.calls.Add(1)
	stat := stateStat(name)
	p := s.statePool()
	v, err := p.get(ctx)
	if err != nil {
		s.failed.Add(1)
		s.stats.refused(stat)
		return err
	}
	v.cb, v.started = stat, monoNow()
	defer func() {
		s.stats.observe(v, err != nil) // before v goes back to the pool
		p.put(v)
		if err != nil {
			s.failed.Add(1)
		}
	}()
	fn, ok := v.table.RawGetString(name).(*lua.LFunction)
	if !ok {
		return scriptErrorf(s.name, "%s must be a function", name)
	}
	L := v.L
	L.Push(fn)
	for _, a := range args {
		L.Push(a)
	}
	nargs := len(args)
	var so *luaSocket
	if sock != nil {
		so = v.newSocket(sock, nil)
		L.Push(&so.ud)
		nargs++
		v.sock = sock
	}
	v.sends = sends
	err = s.pcall(ctx, v, nargs, lua.MultRet)
	v.sock, v.sends = nil, nil
	if so != nil {
		so.done = true
	}
	if err != nil || results == nil {
		return err
	}
	return results(v, fn)
}

// stateResult encodes a returned state; nil is {} when nilIsEmpty, else an error.
func (s *Script) stateResult(v *vm, fn *lua.LFunction, name string, st lua.LValue, nilIsEmpty bool) ([]byte, error) {
	t, ok := st.(*lua.LTable)
	if !ok {
		if st == lua.LNil && nilIsEmpty {
			return []byte("{}"), nil
		}
		return nil, s.stateErrorf(fn, "%s %s, got %s", name, errNoState, typeName(st))
	}
	data, err := encodeValue(t, "state")
	if err != nil {
		return nil, s.stateErrorf(fn, "%s: state: %s", name, scriptMsg(err))
	}
	return data, nil
}

// stateErrorf is a ScriptError at the line fn is defined.
func (s *Script) stateErrorf(fn *lua.LFunction, format string, args ...any) *ScriptError {
	se := scriptErrorf(s.name, format, args...)
	if fn != nil && fn.Proto != nil {
		se.File, se.Line = fn.Proto.SourceName, fn.Proto.LineDefined
	}
	return se
}

// jsonArg decodes JSON text for a callback; empty text is nil.
func stateArg(data []byte) (lua.LValue, error) {
	if len(data) == 0 {
		return lua.LNil, nil
	}
	return decodeJSON(data)
}

// socketCall is socket:call(msg): handle_call's reply, or nil and a message.
func socketCall(L *lua.LState) int {
	s := checkSocket(L, 1)
	var msg []byte
	if v := L.Get(2); v != lua.LNil {
		data, err := encodeValue(v, "msg")
		if err != nil {
			L.RaiseError("socket:call: %s", scriptMsg(err))
		}
		msg = data
	}
	c, ok := s.sock.(SocketCall)
	if !ok {
		L.RaiseError("socket:call is not available on this server")
	}
	var reply []byte
	var err error
	call := func() { reply, err = c.Call(msg) }
	if b, ok := L.Context().(*budget); ok {
		b.wait(call) // waiting for the topic's turn, or its owner, is not this callback's CPU
	} else {
		call()
	}
	if err != nil {
		L.Push(lua.LNil)
		L.Push(lua.LString(fmt.Sprintf("socket:call: %s", err)))
		return 2
	}
	val, err := stateArg(reply)
	if err != nil {
		L.RaiseError("socket:call: %s", err)
	}
	L.Push(val)
	return 1
}
