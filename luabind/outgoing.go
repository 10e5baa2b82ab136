package luabind

import (
	lua "github.com/yuin/gopher-lua"
)

// Outgoing is an intercepted broadcast's payload converted to Lua once; every HandleOut call gets
// its own deep copy, so one subscriber's handle_out editing the payload never affects another's.
// It is immutable and safe for concurrent use.
type Outgoing struct {
	root frozen
}

// NewOutgoing converts p once for any number of HandleOut calls.
func NewOutgoing(p Payload) (*Outgoing, error) {
	v, err := decodePayload(p)
	if err != nil {
		return nil, err
	}
	return &Outgoing{root: freeze(v)}, nil
}

// value returns a fresh copy of the payload for one handle_out call.
func (o *Outgoing) value() lua.LValue {
	return o.root.thaw()
}

// frozen is an immutable Lua value laid out for fast copying into new tables: scalars are kept
// boxed (copying them costs nothing), tables as parallel slices of keys and values in order.
type frozen struct {
	v     lua.LValue // the value itself when it is not a table, else nil
	keys  []string   // field names of an object, parallel to items; nil for a sequence
	items []frozen   // field values of an object, or the items of a sequence
}

// freeze captures v, which holds only data (as decoded from JSON, or validated assigns).
func freeze(v lua.LValue) frozen {
	t, ok := v.(*lua.LTable)
	if !ok {
		return frozen{v: v}
	}
	if n := sequenceLen(t); n > 0 {
		f := frozen{items: make([]frozen, n)}
		for i := range n {
			f.items[i] = freeze(t.RawGetInt(i + 1))
		}
		return f
	}
	var f frozen
	for k, v := t.Next(lua.LNil); k != lua.LNil; k, v = t.Next(k) {
		f.keys = append(f.keys, lua.LVAsString(k))
		f.items = append(f.items, freeze(v))
	}
	if f.keys == nil {
		f.keys = []string{} // an empty object, not a sequence
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
		return t
	}
	t := newTable(0, len(f.keys))
	for i, k := range f.keys {
		t.RawSetString(k, f.items[i].thaw())
	}
	return t
}
