package luabind

import (
	"fmt"

	lua "github.com/yuin/gopher-lua"
)

// maxAssignsValues bounds how many values the data check after a callback walks, so tables that
// share subtables many times over cannot make the walk explode.
const maxAssignsValues = 1 << 16

// Assigns is one channel's socket.assigns: a table of data owned by Go (by the channel), not by
// any VM, so it survives VM reuse and reloads. No VM ever holds it: each callback that reads
// socket.assigns gets its own deep copy, and when the callback succeeds its copy is checked to
// hold only data (strings, numbers, booleans, luachan.null, tables of those, with no metatable
// but the array mark; no functions,
// userdata or threads, which belong to one VM; else the script error "assigns may hold only
// data") and copied back. So a script that keeps socket.assigns in a file-level variable and
// changes it from another channel's callback changes only a dead copy, never a table another
// goroutine is using. A failed callback leaves the assigns as they were. Only one callback uses
// a given Assigns at a time (the engine guarantees it).
type Assigns struct {
	t *lua.LTable
}

// NewAssigns returns empty assigns.
func NewAssigns() *Assigns {
	return &Assigns{t: newTable(0, 4)}
}

// AssignsFromJSON builds assigns from a JSON object (used for socket-level assigns from connect()).
// Empty text or JSON null give empty assigns.
func AssignsFromJSON(data []byte) (*Assigns, error) {
	if len(data) == 0 {
		return NewAssigns(), nil
	}
	v, err := decodeJSON(data)
	if err != nil {
		return nil, err
	}
	if v == null {
		return NewAssigns(), nil
	}
	t, ok := v.(*lua.LTable)
	if !ok || t.Len() > 0 {
		return nil, fmt.Errorf("%w: assigns must be a JSON object", ErrPayload)
	}
	if isArray(t) { // [], taken as the empty object as before arrays were marked
		return NewAssigns(), nil
	}
	return &Assigns{t: t}, nil
}

// Clone deep-copies (so every channel of a socket starts from the socket's assigns).
func (a *Assigns) Clone() *Assigns {
	return &Assigns{t: a.copyIn()}
}

// JSON encodes assigns (for /api and debugging).
func (a *Assigns) JSON() ([]byte, error) {
	if a.t == nil {
		return []byte("{}"), nil
	}
	return encodeValue(a.t, "assigns")
}

// copyIn returns a callback's own copy of the assigns.
func (a *Assigns) copyIn() *lua.LTable {
	if a.t == nil {
		return newTable(0, 4)
	}
	return copyTable(a.t)
}

// copyOut takes a callback's copy back, if it holds only data. A copy the callback did not
// change (the usual case: handle_out reading socket.assigns.user) costs a comparison only.
func (a *Assigns) copyOut(t *lua.LTable) error {
	if a.t != nil && sameData(t, a.t) {
		return nil
	}
	if err := checkData(t); err != nil {
		return err
	}
	a.t = copyTable(t)
	return nil
}

// copyTable deep-copies a table of data, keeping key types, order and array marks. Assigns hold no cycles
// (checkData rejects them by depth), so plain recursion ends. With LTable's layout known (see
// table.go) each table is cloned whole and its subtables replaced by copies, unless fields were
// removed from it: gopher-lua keeps a removed key's slot in next's order for good, and a clone
// would carry it on, callback after callback. Otherwise the table is rebuilt from its live
// fields, its parts sized exactly: a table's first string key otherwise costs a 32-entry map.
func copyTable(t *lua.LTable) *lua.LTable {
	if tablesByLayout && !hasRemovedKeys(t) {
		c := cloneTable(t)
		l := layoutOf(c)
		for i, v := range l.array {
			if sub, ok := v.(*lua.LTable); ok {
				l.array[i] = copyTable(sub)
			}
		}
		for k, v := range l.strdict {
			if sub, ok := v.(*lua.LTable); ok {
				l.strdict[k] = copyTable(sub)
			}
		}
		for k, v := range l.dict {
			if sub, ok := v.(*lua.LTable); ok {
				l.dict[k] = copyTable(sub)
			}
		}
		return c
	}
	n, fields := t.Len(), 0
	for k, _ := t.Next(lua.LNil); k != lua.LNil; k, _ = t.Next(k) {
		fields++
	}
	c := newTable(n, fields-min(n, fields))
	c.Metatable = dataMeta(t)
	for k, v := t.Next(lua.LNil); k != lua.LNil; k, v = t.Next(k) {
		if sub, ok := v.(*lua.LTable); ok {
			v = copyTable(sub)
		}
		c.RawSet(k, v)
	}
	return c
}

// sameData reports whether t holds the same data as owned, a table of data: the same keys,
// equal strings, numbers and booleans, and subtables holding the same data. It allocates
// nothing. owned is finite and acyclic, so the walk ends whatever t is.
func sameData(t, owned *lua.LTable) bool {
	if t.Metatable != owned.Metatable { // owned has none, or the array mark
		return false
	}
	n := 0
	for k, v := t.Next(lua.LNil); k != lua.LNil; k, v = t.Next(k) {
		n++
		w := owned.RawGet(k)
		if v == w {
			continue
		}
		sub, ok1 := v.(*lua.LTable)
		osub, ok2 := w.(*lua.LTable)
		if !ok1 || !ok2 || !sameData(sub, osub) {
			return false
		}
	}
	for k, _ := owned.Next(lua.LNil); k != lua.LNil; k, _ = owned.Next(k) {
		n--
	}
	return n == 0
}

// errNotData is the message of the script error for assigns holding more than data.
const errNotData = "assigns may hold only data"

// checkData reports whether t holds only data, no deeper than maxDepth and with at most
// maxAssignsValues values: what may move between VMs and be copied and encoded.
func checkData(t *lua.LTable) error {
	budget := maxAssignsValues
	if !dataOK(t, 1, &budget) {
		return fmt.Errorf("%s", errNotData)
	}
	return nil
}

func dataOK(t *lua.LTable, depth int, budget *int) bool {
	if depth > maxDepth || (t.Metatable != lua.LNil && !isArray(t)) {
		return false
	}
	for k, v := t.Next(lua.LNil); k != lua.LNil; k, v = t.Next(k) {
		if *budget--; *budget < 0 {
			return false
		}
		switch k.(type) {
		case lua.LString, lua.LNumber:
		default:
			return false
		}
		switch v := v.(type) {
		case lua.LString, lua.LNumber, lua.LBool:
		case *lua.LTable:
			if !dataOK(v, depth+1, budget) {
				return false
			}
		default:
			if v != null {
				return false
			}
		}
	}
	return true
}
