package luabind

import (
	"sync/atomic"

	lua "github.com/yuin/gopher-lua"
)

// Outgoing is an intercepted broadcast's payload converted to Lua once; every HandleOut call gets
// its own deep copy, so one subscriber's handle_out editing the payload never affects another's.
// It also keeps the JSON a push of a copy encodes to (see outJSON).
// It is immutable and safe for concurrent use.
type Outgoing struct {
	root  frozen
	push  *outJSON                   // nil when the payload is not a table or would not encode
	event atomic.Pointer[lua.LValue] // the event of the last call, boxed (see eventValue)
}

// NewOutgoing converts p once for any number of HandleOut calls.
func NewOutgoing(p Payload) (*Outgoing, error) {
	v, err := decodePayload(p)
	if err != nil {
		return nil, err
	}
	o := &Outgoing{root: freeze(v)}
	if !p.Binary {
		o.push = newOutJSON(&o.root, p.Data)
	}
	return o, nil
}

// eventValue returns event as a Lua value, boxed once for the calls of a broadcast rather than
// once for each (they all have its event).
func (o *Outgoing) eventValue(event string) lua.LValue {
	if p := o.event.Load(); p != nil && (*p).(lua.LString) == lua.LString(event) {
		return *p
	}
	v := lua.LValue(lua.LString(event))
	o.event.Store(&v)
	return v
}

// value returns a fresh copy of the payload for one handle_out call.
func (o *Outgoing) value() lua.LValue {
	return o.root.thaw()
}

// frozen is an immutable Lua value laid out for fast copying into new tables: scalars are kept
// boxed (copying them costs nothing); a sequence as its items; an object as a built table, proto,
// holding its scalar fields (and a placeholder for each table-valued one), which is copied
// whole (see copyObject) before its table-valued fields are filled in.
type frozen struct {
	v      lua.LValue  // the value itself when it is not a table, else nil
	keys   []string    // field names of an object, parallel to items; nil for a sequence
	items  []frozen    // field values of an object, or the items of a sequence
	proto  *lua.LTable // an object's table; nil for a sequence or the empty object
	nested []int       // indexes into keys and items of an object's table-valued fields
	array  bool        // a sequence with the array mark (see arrayMeta)
}

// freeze captures v, which holds only data (as decoded from JSON, or validated assigns).
func freeze(v lua.LValue) frozen {
	t, ok := v.(*lua.LTable)
	if !ok {
		return frozen{v: v}
	}
	if n := sequenceLen(t); n > 0 || (isArray(t) && isEmpty(t)) {
		f := frozen{items: make([]frozen, n), array: isArray(t)}
		for i := range n {
			f.items[i] = freeze(t.RawGetInt(i + 1))
		}
		return f
	}
	f := frozen{keys: []string{}} // an empty object, not a sequence, when it has no field
	var vals []lua.LValue
	for k, v := t.Next(lua.LNil); k != lua.LNil; k, v = t.Next(k) {
		item := freeze(v)
		if item.v == nil {
			f.nested = append(f.nested, len(f.items))
			v = lua.LFalse // a placeholder, replaced in every copy
		}
		f.keys = append(f.keys, lua.LVAsString(k))
		f.items = append(f.items, item)
		vals = append(vals, v)
	}
	if len(f.keys) > 0 {
		f.proto = newObject(f.keys, vals)
	}
	return f
}

// thaw builds a new Lua value equal to the frozen one; tables are new, scalars shared.
func (f *frozen) thaw() lua.LValue {
	if f.v != nil {
		return f.v
	}
	if f.keys == nil {
		t := newTable(len(f.items), 0)
		for i := range f.items {
			t.Append(f.items[i].thaw())
		}
		if f.array {
			markArray(t)
		}
		return t
	}
	if f.proto == nil {
		return newTable(0, 0)
	}
	t := copyObject(f.proto, f.keys)
	for _, i := range f.nested {
		setField(t, f.keys[i], f.items[i].thaw())
	}
	return t
}
