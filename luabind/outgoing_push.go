package luabind

import (
	"bytes"
	"slices"

	lua "github.com/yuin/gopher-lua"
)

// Most handle_out scripts push the payload they were given, unchanged or with a field or two
// added or changed. Encoding it again for every subscriber is most of what socket:push costs,
// so an Outgoing keeps the JSON its copies encode to, once, and a push of a table equal to
// the payload (same fields in the same order, same values, tables compared deeply) gets those
// bytes. A changed object is encoded field by field, each unchanged field copied from them.
// Equality is checked on the table pushed, not assumed from where it came from, so a change
// anywhere in it, however made, is always encoded: the bytes sent are exactly what encoding
// the table would give.

// outJSON is what a push of an Outgoing's copy encodes to.
type outJSON struct {
	all []byte // the JSON of a copy; read-only (it may be the broadcast's own bytes)
	// fields are the bytes "key":value, of each field when the payload is an object with
	// fields (parallel to frozen.keys, slices of all); nil otherwise.
	fields [][]byte
}

// newOutJSON encodes a copy of f, as socket:push would, or returns nil when it would not
// encode or f is not a table. data is the broadcast's JSON, shared when it is the same.
func newOutJSON(f *frozen, data []byte) *outJSON {
	if f.v != nil || !tablesByLayout {
		return nil
	}
	t := f.thaw().(*lua.LTable)
	e := encoderPool.Get().(*encoder)
	defer e.release()
	e.buf = e.buf[:0]
	var ends []int // where each field's bytes end in e.buf
	if f.proto == nil {
		if err := e.encode(t, "payload"); err != nil {
			return nil
		}
	} else {
		// As encoder.table writes an object, keeping where each field ends.
		ends = make([]int, len(f.keys))
		e.buf = append(e.buf, '{')
		e.stack = append(e.stack, t)
		for i, k := range f.keys {
			if err := e.field(lua.LString(k), t.RawGetString(k)); err != nil {
				clear(e.stack)
				e.stack = e.stack[:0]
				return nil
			}
			ends[i] = len(e.buf)
		}
		clear(e.stack)
		e.stack = e.stack[:0]
		e.buf[len(e.buf)-1] = '}'
	}
	if len(e.buf) > maxStringLen {
		return nil
	}
	p := &outJSON{all: data}
	if !bytes.Equal(e.buf, data) {
		p.all = bytes.Clone(e.buf)
	}
	p.all = p.all[:len(p.all):len(p.all)]
	if ends != nil {
		p.fields = make([][]byte, len(ends))
		start := 1
		for i, end := range ends {
			// The last field's comma is the object's closing brace in all; fields carry
			// the comma, as encoder.field writes it.
			if i == len(ends)-1 {
				p.fields[i] = append(p.all[start:end-1:end-1], ',')
			} else {
				p.fields[i] = p.all[start:end:end]
			}
			start = end
		}
	}
	return p
}

// encodeLike encodes t, a table a handle_out call pushes, as encodePushPayload would. It
// reports false when it cannot do better than that (t is not like the payload), and leaves
// the encoding to it. A non-nil written says t is the payload lent (see payloadFor), so
// only those of its fields may differ from the payload's.
func (p *outJSON) encodeLike(f *frozen, t *lua.LTable, written []string) (Payload, bool, error) {
	if written == nil && sameValue(t, f) {
		return Payload{Data: p.all}, true, nil
	}
	if p.fields == nil {
		return Payload{}, false, nil
	}
	l := layoutOf(t)
	// What encoder.table writes as an object with no array part.
	if t.Metatable != lua.LNil || len(l.array) != 0 {
		return Payload{}, false, nil
	}
	e := encoderPool.Get().(*encoder)
	e.buf = append(e.buf[:0], '{')
	e.stack = append(e.stack, t)
	var err *encodeError
	for i, k := range l.keys {
		v := t.RawGetH(k)
		if v == lua.LNil {
			continue
		}
		if i < len(f.keys) {
			if ks, ok := k.(lua.LString); ok && string(ks) == f.keys[i] &&
				((written != nil && !slices.Contains(written, string(ks))) || sameValue(v, &f.items[i])) {
				e.buf = append(e.buf, p.fields[i]...)
				continue
			}
		}
		if err = e.field(k, v); err != nil {
			break
		}
	}
	clear(e.stack)
	e.stack = e.stack[:0]
	if err != nil {
		e.release()
		return Payload{}, true, &ScriptError{Msg: err.msg + " at " + err.where("payload")}
	}
	if len(e.buf) > maxStringLen-1 {
		// Where the limit falls, leave it to the encoder to say so, or not.
		e.release()
		return Payload{}, false, nil
	}
	if e.buf[len(e.buf)-1] == ',' {
		e.buf[len(e.buf)-1] = '}'
	} else {
		e.buf = append(e.buf, '}')
	}
	return Payload{Data: e.buf, enc: e}, true, nil
}

// sameValue reports whether v encodes exactly as a copy of f does: the same scalar, or a
// table with f's fields (or items) in f's order, each the same value, and f's array mark.
func sameValue(v lua.LValue, f *frozen) bool {
	if f.v != nil {
		return v == f.v
	}
	t, ok := v.(*lua.LTable)
	if !ok {
		return false
	}
	l := layoutOf(t)
	if len(l.dict) != 0 {
		return false
	}
	if f.keys == nil { // a sequence
		if (t.Metatable == lua.LValue(arrayMeta)) != f.array || (!f.array && t.Metatable != lua.LNil) {
			return false
		}
		if len(l.strdict) != 0 || len(l.array) < len(f.items) {
			return false
		}
		for i := range f.items {
			if !sameValue(l.array[i], &f.items[i]) {
				return false
			}
		}
		for _, x := range l.array[len(f.items):] {
			if x != lua.LNil {
				return false
			}
		}
		return true
	}
	if t.Metatable != lua.LNil || len(l.strdict) != len(f.keys) {
		return false
	}
	for _, x := range l.array {
		if x != lua.LNil {
			return false
		}
	}
	j := 0
	for _, k := range l.keys {
		ks, ok := k.(lua.LString)
		if !ok {
			continue // a removed non-string key: l.dict is empty
		}
		x, ok := l.strdict[string(ks)]
		if !ok {
			continue // removed
		}
		if j >= len(f.keys) || string(ks) != f.keys[j] || !sameValue(x, &f.items[j]) {
			return false
		}
		j++
	}
	return j == len(f.keys)
}

// encodePush is encodePushPayload for a push in the handle_out call o is the payload of.
func (o *Outgoing) encodePush(v lua.LValue) (Payload, error) {
	if t, ok := v.(*lua.LTable); ok {
		if p, ok, err := o.push.encodeLike(&o.root, t, nil); ok {
			return p, err
		}
	}
	return encodePushPayload(v)
}

// encodeLent is encodePush for a push of l's table, o's payload lent to the call, whose
// function sets only the fields written.
func (o *Outgoing) encodeLent(l *lent, written []string) (Payload, error) {
	if l.unchanged(written) {
		return Payload{Data: o.push.all}, nil
	}
	if p, ok, err := o.push.encodeLike(&o.root, l.t, written); ok {
		return p, err
	}
	return encodePushPayload(l.t)
}
