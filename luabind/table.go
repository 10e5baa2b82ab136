package luabind

import (
	"maps"
	"reflect"
	"unsafe"

	lua "github.com/yuin/gopher-lua"
)

// Building tables field by field is most of what converting a payload to Lua costs. For every
// string key gopher-lua's RawSetString keeps three structures (strdict: key -> value; keys:
// the insertion order, which next walks; k2i: key -> position in keys, a map keyed by
// interface values), grows each from empty, and boxes the key anew. A converted payload's
// table is built once and then copied for every subscriber of an intercepted broadcast, so
// luabind builds objects with those structures sized up front, and copies a built one by
// cloning its maps and sharing its keys slice.
//
// That needs LTable's unexported fields. tableLayout mirrors them; tablesByLayout is true
// only when reflection finds lua.LTable laid out exactly so (same names, types and offsets),
// and every function here falls back to the public API otherwise, so a gopher-lua release
// that changes the struct costs speed, never correctness. TestTableLayout fails when it
// happens, so that it does not go unnoticed.

// tableLayout is lua.LTable's layout as of gopher-lua v1.1.2.
type tableLayout struct {
	Metatable lua.LValue
	array     []lua.LValue
	dict      map[lua.LValue]lua.LValue
	strdict   map[string]lua.LValue
	keys      []lua.LValue
	k2i       map[lua.LValue]int
}

// tablesByLayout reports whether lua.LTable is laid out as tableLayout.
var tablesByLayout = sameLayout(reflect.TypeFor[lua.LTable](), reflect.TypeFor[tableLayout]())

func sameLayout(a, b reflect.Type) bool {
	if a.Size() != b.Size() || a.NumField() != b.NumField() {
		return false
	}
	for i := range a.NumField() {
		fa, fb := a.Field(i), b.Field(i)
		if fa.Name != fb.Name || fa.Type != fb.Type || fa.Offset != fb.Offset {
			return false
		}
	}
	return true
}

func layoutOf(t *lua.LTable) *tableLayout { return (*tableLayout)(unsafe.Pointer(t)) }

// newObject returns a table with keys[i] set to vals[i] in order, exactly as RawSetString one
// by one would leave it (a repeated key keeps its first place in next's order and takes its
// last value), with its structures allocated once at their final size. vals holds no nil.
func newObject(keys []string, vals []lua.LValue) *lua.LTable {
	if !tablesByLayout || len(keys) == 0 {
		return newObjectByAPI(keys, vals)
	}
	t := newTable(0, len(keys))
	l := layoutOf(t)
	l.keys = make([]lua.LValue, 0, len(keys))
	l.k2i = make(map[lua.LValue]int, len(keys))
	for i, k := range keys {
		if _, seen := l.strdict[k]; !seen {
			lk := lua.LValue(lua.LString(k))
			l.k2i[lk] = len(l.keys)
			l.keys = append(l.keys, lk)
		}
		l.strdict[k] = vals[i]
	}
	return t
}

// copyObject returns a new table with t's fields (t has string keys only, as newObject
// builds), sharing t's values. The copy is independent of t: its maps are clones, and its
// keys slice is its own, with room for a field or two more (handle_out often adds one),
// allocated with the table; past maxOwnKeys keys, it shares t's, which is full, so a field
// the copy adds goes to a slice of its own.
func copyObject(t *lua.LTable, keys []string) *lua.LTable {
	if !tablesByLayout {
		return copyObjectByAPI(t, keys)
	}
	l := layoutOf(t)
	c := newTableWithKeys(l.keys)
	c.Metatable = lua.LNil
	cl := layoutOf(c)
	cl.strdict = maps.Clone(l.strdict)
	cl.k2i = maps.Clone(l.k2i)
	return c
}

// maxOwnKeys is the most keys a copyObject copy gets a slice of its own for.
const maxOwnKeys = 14

// newTableWithKeys returns a new table whose keys slice holds keys, with room for two more,
// allocated with the table (one allocation, where adding a key to a full slice is two), or
// keys itself, full, when they are more than maxOwnKeys.
func newTableWithKeys(keys []lua.LValue) *lua.LTable {
	var t *lua.LTable
	var own []lua.LValue
	switch n := len(keys); {
	case n <= 2:
		b := &struct {
			t    lua.LTable
			keys [4]lua.LValue
		}{}
		t, own = &b.t, b.keys[:0]
	case n <= 6:
		b := &struct {
			t    lua.LTable
			keys [8]lua.LValue
		}{}
		t, own = &b.t, b.keys[:0]
	case n <= maxOwnKeys:
		b := &struct {
			t    lua.LTable
			keys [16]lua.LValue
		}{}
		t, own = &b.t, b.keys[:0]
	default:
		t = &lua.LTable{}
		layoutOf(t).keys = keys[:len(keys):len(keys)]
		return t
	}
	layoutOf(t).keys = append(own, keys...)
	return t
}

// newObjectByAPI is newObject through gopher-lua's API.
func newObjectByAPI(keys []string, vals []lua.LValue) *lua.LTable {
	t := newTable(0, len(keys))
	for i, k := range keys {
		t.RawSetString(k, vals[i])
	}
	return t
}

// copyObjectByAPI is copyObject through gopher-lua's API.
func copyObjectByAPI(t *lua.LTable, keys []string) *lua.LTable {
	c := newTable(0, len(keys))
	for _, k := range keys {
		c.RawSetString(k, t.RawGetString(k))
	}
	return c
}

// cloneTable returns a new table with t's fields, sharing t's values, in next's order (what
// removing fields left in that order stays in it), and t's array mark. Like copyObject, for
// any table of data.
func cloneTable(t *lua.LTable) *lua.LTable {
	l := layoutOf(t)
	c := &lua.LTable{Metatable: dataMeta(t)}
	cl := layoutOf(c)
	if l.array != nil {
		cl.array = append(make([]lua.LValue, 0, len(l.array)), l.array...)
	}
	cl.dict = maps.Clone(l.dict)
	cl.strdict = maps.Clone(l.strdict)
	cl.keys = l.keys[:len(l.keys):len(l.keys)]
	cl.k2i = maps.Clone(l.k2i)
	return c
}

// hasRemovedKeys reports whether t's keys slice still holds keys whose field was removed (set
// to nil): gopher-lua never takes them out of it.
func hasRemovedKeys(t *lua.LTable) bool {
	l := layoutOf(t)
	return len(l.keys) != len(l.strdict)+len(l.dict)
}

// setField sets t's field k, which t already has, to v.
func setField(t *lua.LTable, k string, v lua.LValue) {
	if tablesByLayout {
		layoutOf(t).strdict[k] = v
		return
	}
	t.RawSetString(k, v)
}
