package luabind

import (
	lua "github.com/yuin/gopher-lua"
)

// An intercepted broadcast runs handle_out once per subscriber, and each call gets the payload
// as a table of its own (Outgoing.value), because a script may change it or keep it. Copying
// it is the larger part of an intercepted delivery's allocations. Most handle_out functions do
// neither: they read fields, set a field or two by name, and push the payload. For those, a
// VM that runs many calls in turn (a Holder's) lends every call of a broadcast the same table
// and, after each call, puts back the fields the function sets, so that each call sees the
// payload as a copy would show it, and what it pushes encodes exactly as a copy would.
// Which functions qualify is read off their bytecode: planShare, in outgoing_plan.go.

// lentSlots is how many broadcasts' payloads a VM keeps lent at once. A worker runs each
// channel's waiting broadcasts in turn, so its calls go round a few broadcasts, not one.
const lentSlots = 32

// lent is one broadcast's payload as a VM lends it to its handle_out calls.
type lent struct {
	o    *Outgoing
	t    *lua.LTable  // nil: each call gets a copy (a field that may leave the call is a table)
	keys int          // how many keys t's layout holds as lent
	orig []lua.LValue // the values of outPlan.written as lent, LNil for none
}

// payloadFor returns the payload for a handle_out call of o on v: lent (and l to put back
// after the call) when v's handle_out allows it, else a copy of its own (l nil).
func (v *vm) payloadFor(o *Outgoing) (_ lua.LValue, l *lent) {
	if !v.outPlan.ok || o.root.v != nil {
		return o.value(), nil // a copy, or a string (which nothing can change)
	}
	for i := range v.lent {
		if v.lent[i].o == o {
			l = &v.lent[i]
			break
		}
	}
	if l == nil {
		l = &v.lent[v.lentNext]
		v.lentNext = (v.lentNext + 1) % lentSlots
		*l = lent{o: o}
		if v.outPlan.lendable(&o.root) {
			l.t = o.value().(*lua.LTable)
			l.keys = len(layoutOf(l.t).keys)
			l.orig = make([]lua.LValue, len(v.outPlan.written))
			for i, k := range v.outPlan.written {
				l.orig[i] = l.t.RawGetString(k)
			}
		}
	}
	if l.t == nil {
		return o.value(), nil
	}
	return l.t, l
}

// lendable reports whether f, a payload, may be lent under plan p: no value that may leave
// the call is a table (a field named in p.fields, or with p.anyField any field or item), and
// a payload with fields set is an object.
func (p *sharePlan) lendable(f *frozen) bool {
	if len(p.written) > 0 && f.keys == nil {
		return false
	}
	if p.anyField {
		for i := range f.items {
			if f.items[i].v == nil {
				return false
			}
		}
	}
	for _, k := range p.fields {
		for j, fk := range f.keys {
			if fk == k && f.items[j].v == nil {
				return false
			}
		}
	}
	return true
}

// restore puts back the fields a call may have set: t is as lent again, keys included, so
// the next call's next and pushes see what a copy would show.
func (l *lent) restore(written []string) {
	tl := layoutOf(l.t)
	for i, k := range written {
		if l.orig[i] != lua.LNil {
			tl.strdict[k] = l.orig[i]
			continue
		}
		delete(tl.strdict, k)
		delete(tl.k2i, lua.LString(k))
	}
	if len(tl.keys) > l.keys {
		clear(tl.keys[l.keys:])
		tl.keys = tl.keys[:l.keys]
	}
}

// unchanged reports whether t's fields are as lent (a call may only have set the written
// ones): a push of t then encodes as the broadcast did.
func (l *lent) unchanged(written []string) bool {
	tl := layoutOf(l.t)
	for i, k := range written {
		v, ok := tl.strdict[k]
		if !ok {
			v = lua.LNil
		}
		if v != l.orig[i] {
			return false
		}
	}
	return true
}

// forgetLent drops v's lent payloads, when it goes back to its pool.
func (v *vm) forgetLent() {
	clear(v.lent[:])
	v.lentNext = 0
}
