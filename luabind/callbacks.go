package luabind

import (
	"context"
	"errors"
	"fmt"

	lua "github.com/yuin/gopher-lua"
)

// The callbacks. Each takes a VM from s's pool (creating one up to MaxVMs, else waiting on ctx),
// runs the function protected (a Lua error is a Go error, never a panic), under min(ctx, Timeout),
// and returns the VM (a VM whose call timed out or panicked is discarded, not reused).
// A Lua error or a timeout is returned as *ScriptError (Timeout=true for the budget) with file:line.

// Join runs join(topic, payload, socket). ok=true/false as returned; reply is the second return
// value encoded (nil when absent; a Lua string as the reply -> Binary payload). A first return
// value that is not a boolean is a *ScriptError ("join must return true or false, got ...").
func (s *Script) Join(ctx context.Context, sock Socket, a *Assigns, topic string, p Payload) (ok bool, reply *Payload, err error) {
	arg, err := decodePayload(p)
	if err != nil {
		return false, nil, err
	}
	err = s.run(ctx, cbJoin, sock, a, 2, func(L *lua.LState) (rerr error) {
		res, isBool := L.Get(-2).(lua.LBool)
		if !isBool {
			return scriptErrorf(s.name, "join must return true or false, got %s", typeName(L.Get(-2)))
		}
		ok = bool(res)
		reply, rerr = s.replyValue("join", L.Get(-1), false)
		return rerr
	}, lua.LString(topic), arg)
	if err != nil {
		return false, nil, err
	}
	return ok, reply, nil
}

// HandleIn runs handle_in(event, payload, socket). status "" means the script returned nothing
// (no reply). A status must be a string; the optional response is a table (or a string ->
// Binary); a status without a response replies {}. With no handle_in defined: "", nil, nil.
func (s *Script) HandleIn(ctx context.Context, sock Socket, a *Assigns, event string, p Payload) (status string, reply *Payload, err error) {
	if !s.has[cbHandleIn] {
		return "", nil, nil
	}
	arg, err := decodePayload(p)
	if err != nil {
		return "", nil, err
	}
	err = s.run(ctx, cbHandleIn, sock, a, 2, func(L *lua.LState) (rerr error) {
		switch st := L.Get(-2).(type) {
		case *lua.LNilType:
			return nil
		case lua.LString:
			if st != "" {
				status = string(st)
				reply, rerr = s.replyValue("handle_in", L.Get(-1), true)
				return rerr
			}
		}
		return scriptErrorf(s.name, "handle_in must return nothing or a status string, got %s", typeName(L.Get(-2)))
	}, lua.LString(event), arg)
	if err != nil {
		return "", nil, err
	}
	return status, reply, nil
}

// HandleOut runs handle_out(event, payload, socket) with a fresh deep copy of o's table (binary
// payloads are passed as a Lua string). With no handle_out defined it does nothing.
func (s *Script) HandleOut(ctx context.Context, sock Socket, a *Assigns, event string, o *Outgoing) error {
	if !s.has[cbHandleOut] {
		return nil
	}
	var arg lua.LValue = newTable(0, 0)
	if o != nil {
		arg = o.value()
	}
	return s.run(ctx, cbHandleOut, sock, a, 0, nil, lua.LString(event), arg)
}

// HandleInfo runs handle_info(msg, socket), msg any JSON-able value given as JSON text (empty
// text is nil). With no handle_info defined it does nothing.
func (s *Script) HandleInfo(ctx context.Context, sock Socket, a *Assigns, msg []byte) error {
	if !s.has[cbHandleInfo] {
		return nil
	}
	var arg lua.LValue = lua.LNil
	if len(msg) > 0 {
		var err error
		if arg, err = decodeJSON(msg); err != nil {
			return err
		}
	}
	return s.run(ctx, cbHandleInfo, sock, a, 0, nil, arg)
}

// Leave runs leave(reason, socket) if defined.
func (s *Script) Leave(ctx context.Context, sock Socket, a *Assigns, reason string) error {
	if !s.has[cbLeave] {
		return nil
	}
	return s.run(ctx, cbLeave, sock, a, 0, nil, lua.LString(reason))
}

// run calls callback cb with args and then the socket, reads its nret results with results
// (while the VM is still held), and checks assigns still hold only data.
func (s *Script) run(ctx context.Context, cb callback, sock Socket, a *Assigns, nret int, results func(*lua.LState) error, args ...lua.LValue) error {
	v, err := s.pool.get(ctx)
	if err != nil {
		return err
	}
	defer s.pool.put(v)
	if a == nil {
		a = NewAssigns()
	}
	L := v.L
	so := v.newSocket(sock, a)
	L.Push(v.fns[cb])
	for _, arg := range args {
		L.Push(arg)
	}
	L.Push(&so.ud)
	err = s.pcall(ctx, v, len(args)+1, nret)
	so.done = true
	if err != nil {
		return err
	}
	if results != nil {
		if err := results(L); err != nil {
			return err
		}
	}
	if a.t != nil {
		if err := checkData(a.t); err != nil {
			return scriptErrorf(s.name, "%s: %s", callbackNames[cb], err)
		}
	}
	return nil
}

// pcall calls the function below the nargs arguments on v's stack, protected and under the
// CPU budget. Errors become *ScriptError; a timeout, a cancellation or a Go panic marks v
// broken, since the call stopped at an arbitrary point.
func (s *Script) pcall(ctx context.Context, v *vm, nargs, nret int) error {
	if err := v.budget.arm(ctx, s.opts.Timeout); err != nil {
		v.L.SetTop(0)
		return fmt.Errorf("luabind: call not started: %w", err)
	}
	v.L.SetContext(v.budget)
	err := v.L.PCall(nargs, nret, nil)
	v.L.RemoveContext()
	stopped := v.budget.Err()
	v.budget.disarm()
	if err == nil {
		return nil
	}
	se := runtimeError(s.name, err)
	if stopped != nil {
		v.broken = true
		se.cause = stopped
		if errors.Is(stopped, context.DeadlineExceeded) {
			se.Timeout = true
			se.Msg = fmt.Sprintf("ran out of time (CPU budget %v)", s.opts.Timeout)
		} else {
			se.Msg = "canceled: " + stopped.Error()
		}
	}
	var ae *lua.ApiError
	if errors.As(err, &ae) && ae.Type == lua.ApiErrorPanic {
		v.broken = true
	}
	return se
}

// replyValue encodes a callback's reply: nil is no reply (or {} when emptyIsObject), a string
// a binary payload, a table JSON.
func (s *Script) replyValue(fn string, v lua.LValue, emptyIsObject bool) (*Payload, error) {
	switch v := v.(type) {
	case *lua.LNilType:
		if emptyIsObject {
			return &Payload{Data: []byte("{}")}, nil
		}
		return nil, nil
	case lua.LString:
		return &Payload{Data: []byte(v), Binary: true}, nil
	case *lua.LTable:
		data, err := encodeValue(v, "reply")
		if err != nil {
			return nil, scriptErrorf(s.name, "%s: %s", fn, err.(*ScriptError).Msg)
		}
		return &Payload{Data: data}, nil
	}
	return nil, scriptErrorf(s.name, "%s reply must be a table or a string, got %s", fn, typeName(v))
}
