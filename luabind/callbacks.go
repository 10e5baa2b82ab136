package luabind

import (
	"context"
	"fmt"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// The callbacks. Each takes a VM from s's pool (creating one up to MaxVMs, else waiting on ctx),
// runs the function protected (a Lua error is a Go error, never a panic), under min(ctx, Timeout),
// and returns the VM (a VM whose call timed out or panicked is discarded, not reused).
// A Lua error or a timeout is returned as *ScriptError (Timeout=true for the budget) with file:line.

// Join runs join(topic, payload, socket). ok=true/false as returned; reply is the second return
// value encoded (nil when absent; a Lua string as the reply -> Binary payload). A first return
// value that is not a boolean, a reply that is neither a table nor a string, or more than two
// values is a *ScriptError naming the line join is defined at.
func (s *Script) Join(ctx context.Context, sock Socket, a *Assigns, topic string, p Payload) (ok bool, reply *Payload, err error) {
	arg, err := decodePayload(p)
	if err != nil {
		return false, nil, err
	}
	err = s.run(ctx, cbJoin, sock, a, func(v *vm) (rerr error) {
		L := v.L
		if n := L.GetTop(); n > 2 {
			return s.fnErrorf(v, cbJoin, "join must return at most 2 values (ok, reply), got %d", n)
		}
		res, isBool := L.Get(1).(lua.LBool)
		if !isBool {
			return s.fnErrorf(v, cbJoin, "join must return true or false, got %s", typeName(L.Get(1)))
		}
		ok = bool(res)
		reply, rerr = s.replyValue(v, cbJoin, L.Get(2), false)
		return rerr
	}, lua.LString(topic), arg)
	if err != nil {
		return false, nil, err
	}
	return ok, reply, nil
}

// HandleIn runs handle_in(event, payload, socket). status "" means the script returned nothing
// (no reply). A status must be a string; the optional response is a table (or a string ->
// Binary); a status without a response replies {}. Anything else, or more than two values, is
// a *ScriptError naming the line handle_in is defined at. With no handle_in: "", nil, nil.
func (s *Script) HandleIn(ctx context.Context, sock Socket, a *Assigns, event string, p Payload) (status string, reply *Payload, err error) {
	if !s.has[cbHandleIn] {
		return "", nil, nil
	}
	arg, err := decodePayload(p)
	if err != nil {
		return "", nil, err
	}
	err = s.run(ctx, cbHandleIn, sock, a, func(v *vm) (rerr error) {
		L := v.L
		if n := L.GetTop(); n > 2 {
			return s.fnErrorf(v, cbHandleIn, "handle_in must return at most 2 values (status, response), got %d", n)
		}
		switch st := L.Get(1).(type) {
		case *lua.LNilType:
			if L.Get(2) == lua.LNil {
				return nil
			}
		case lua.LString:
			if st != "" {
				status = string(st)
				reply, rerr = s.replyValue(v, cbHandleIn, L.Get(2), true)
				return rerr
			}
		}
		return s.fnErrorf(v, cbHandleIn, "handle_in must return nothing or a status string, got %s", typeName(L.Get(1)))
	}, lua.LString(event), arg)
	if err != nil {
		return "", nil, err
	}
	if status != "ok" && status != "error" && status != "" {
		s.warnStatus(status)
	}
	return status, reply, nil
}

// warnStatus logs, once per script version, a reply status that is a near miss of "ok" or
// "error" (see statusMeant). It still goes to the client, as Phoenix passes any status, but a
// Phoenix client's receive("ok") never matches it, and its push's timeout is cancelled by
// the reply: nothing would ever tell the author.
func (s *Script) warnStatus(status string) {
	meant := statusMeant(status)
	if meant == "" || !s.FirstTime("status "+status) {
		return
	}
	s.logger.Warn("script warning", "warning", fmt.Sprintf(
		"handle_in replied with status %q: did you mean %s? (the client's receive(%q) never matches it)", status, meant, meant))
}

// statusMeant is "ok" or "error" when status looks like a slip for one: either in another
// case (OK, Error), "ok" with a character more (okk, ok.), or "error" one edit away (eror,
// errror, errors). Short statuses of their own (ack, nak, err) are not slips.
func statusMeant(status string) string {
	low := strings.ToLower(status)
	switch {
	case low == "ok" || len(low) == 3 && strings.HasPrefix(low, "ok"):
		return "ok"
	case editDistance(low, "error") <= 1:
		return "error"
	}
	return ""
}

// HandleOut runs handle_out(event, payload, socket) with a fresh deep copy of o's table (binary
// payloads are passed as a Lua string), or one lent for the call (see payloadFor). With no
// handle_out defined it does nothing.
func (s *Script) HandleOut(ctx context.Context, sock Socket, a *Assigns, event string, o *Outgoing) error {
	return s.HandleOutHeld(ctx, nil, sock, a, event, o)
}

// HandleOutHeld is HandleOut on the VM h holds, taking one from the pool first if h holds none
// of s's; h keeps it for the next call. A nil h takes and returns a VM per call like HandleOut.
func (s *Script) HandleOutHeld(ctx context.Context, h *Holder, sock Socket, a *Assigns, event string, o *Outgoing) error {
	if !s.has[cbHandleOut] {
		return nil
	}
	if o == nil {
		return s.runOn(ctx, h, cbHandleOut, sock, a, nil, nil, lua.LString(event), newTable(0, 0))
	}
	// The payload (lua.LNil here) is filled in by runOn, once it has the VM: see payloadFor.
	return s.runOn(ctx, h, cbHandleOut, sock, a, o, nil, o.eventValue(event), lua.LNil)
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
	return s.run(ctx, cbHandleInfo, sock, a, nil, arg)
}

// Leave runs leave(reason, socket) if defined.
func (s *Script) Leave(ctx context.Context, sock Socket, a *Assigns, reason string) error {
	if !s.has[cbLeave] {
		return nil
	}
	return s.run(ctx, cbLeave, sock, a, nil, lua.LString(reason))
}

// run calls callback cb with args and then the socket, reads its results (on v's stack, 1 to
// top) with results while the VM is still held, and, when the callback succeeded and used
// socket.assigns, checks the assigns hold only data and copies them back into a. What
// handle_out, handle_info and leave return is ignored.
func (s *Script) run(ctx context.Context, cb callback, sock Socket, a *Assigns, results func(*vm) error, args ...lua.LValue) error {
	return s.runOn(ctx, nil, cb, sock, a, nil, results, args...)
}

// runOn is run on h's VM (nil h: one from the pool, given back after the call), with out the
// payload of the handle_out call it runs, if any, for socket:push to encode like it; args[1]
// is then filled in with out's value.
// It counts the call, and the failure if any. One frame, not a counting wrapper
// around the call: a reader goroutine runs handle_in on its own stack, and every
// frame of that path is a part of the stack the GC shrinks and the next message grows
// again.
func (s *Script) runOn(ctx context.Context, h *Holder, cb callback, sock Socket, a *Assigns, out *Outgoing, results func(*vm) error, args ...lua.LValue) (err error) {
	s.calls.Add(1)
	v, err := h.take(ctx, &s.chunk)
	if err != nil {
		s.failed.Add(1)
		s.stats.refused(cb)
		return err
	}
	v.cb, v.started = cb, monoNow() // on v, not in this frame (see CallStats.observe)
	defer func() {
		// observe reads v: before v goes back to a pool another call takes it from.
		s.stats.observe(v, err != nil)
		h.give(v)
		if err != nil {
			s.failed.Add(1)
		}
	}()
	if a == nil {
		a = NewAssigns()
	}
	L := v.L
	so := v.newSocket(sock, a)
	var l *lent
	if out != nil {
		// handle_out's payload: lent by a held VM, whose calls go round a few broadcasts;
		// a VM from the pool goes back to it after the call, so each call gets a copy.
		if h != nil {
			args[1], l = v.payloadFor(out)
		} else {
			args[1] = out.value()
		}
	}
	L.Push(v.fns[cb])
	for _, arg := range args {
		L.Push(arg)
	}
	L.Push(&so.ud)
	v.waited = 0
	v.sock, v.out, v.outLent = sock, out, l
	err = s.pcall(ctx, v, len(args)+1, lua.MultRet)
	v.sock, v.out, v.outLent = nil, nil, nil
	if l != nil {
		l.restore(v.outPlan.written)
	}
	so.done = true
	if cb == cbHandleOut {
		s.noteOutWait(v.waited)
	}
	if err != nil {
		return err
	}
	if results != nil {
		if err := results(v); err != nil {
			return err
		}
	}
	if so.t != nil {
		if err := a.copyOut(so.t); err != nil {
			return s.fnErrorf(v, cb, "%s: %s", callbackNames[cb], err)
		}
	}
	return nil
}

// replyValue encodes a callback's reply: nil is no reply (or {} when emptyIsObject), a string
// a binary payload, a table JSON.
func (s *Script) replyValue(v *vm, cb callback, reply lua.LValue, emptyIsObject bool) (*Payload, error) {
	switch r := reply.(type) {
	case *lua.LNilType:
		if emptyIsObject {
			return &Payload{Data: []byte("{}")}, nil
		}
		return nil, nil
	case lua.LString:
		return &Payload{Data: []byte(r), Binary: true}, nil
	case *lua.LTable:
		data, err := encodeValue(r, "reply")
		if err != nil {
			return nil, s.fnErrorf(v, cb, "%s: %s", callbackNames[cb], scriptMsg(err))
		}
		return &Payload{Data: data}, nil
	}
	return nil, s.fnErrorf(v, cb, "%s reply must be a table or a string, got %s", callbackNames[cb], typeName(reply))
}

// Holder keeps one VM between callbacks one goroutine makes one after another, so that a run of
// many calls (handle_out for each subscriber of an intercepted broadcast) takes a VM from the
// pool once rather than per call. Between calls the VM is reset as the pool resets it, so a
// callback sees nothing another left behind. The zero value holds nothing; a holder must be
// Released before it is dropped, or the VM it holds is lost to its pool. Not safe for
// concurrent use.
type Holder struct {
	c *chunk
	v *vm
}

// TryHold makes h hold a VM of s, without waiting for one: it reports false when h holds none
// of s and every VM of s is in use (or a new one could not be built). A caller that must not
// wait behind other calls of s, such as a worker serving many channels, then leaves the call
// to a goroutine that may.
func (h *Holder) TryHold(ctx context.Context, s *Script) bool {
	if h.v != nil && h.c == &s.chunk {
		return true
	}
	h.Release()
	v, ok := s.pool.tryGet(ctx)
	if ok {
		h.c, h.v = &s.chunk, v
	}
	return ok
}

// Release gives the held VM back to its pool.
func (h *Holder) Release() {
	if h.v != nil {
		h.c.pool.put(h.v)
		h.c, h.v = nil, nil
	}
}

// take returns the VM for a call of c: h's own when it holds one of c, else one from c's pool
// (kept by h, when h is not nil).
func (h *Holder) take(ctx context.Context, c *chunk) (*vm, error) {
	if h == nil {
		return c.pool.get(ctx)
	}
	if h.v != nil && h.c == c {
		return h.v, nil
	}
	h.Release()
	v, err := c.pool.get(ctx)
	if err != nil {
		return nil, err
	}
	h.c, h.v = c, v
	return v, nil
}

// give ends a call on v: back to the pool without a holder, or when the call broke v.
func (h *Holder) give(v *vm) {
	switch {
	case h == nil:
		v.chunk.pool.put(v)
	case v.broken:
		h.c, h.v = nil, nil
		v.chunk.pool.put(v)
	default:
		v.reset()
	}
}
