package luabind

import (
	"fmt"

	lua "github.com/yuin/gopher-lua"
)

// maxAssignsValues bounds how many values the data check after a callback walks, so tables that
// share subtables many times over cannot make the walk explode.
const maxAssignsValues = 1 << 16

// Assigns is one channel's socket.assigns: a Lua table owned by Go (by the channel), not by any
// VM, handed to whichever pooled VM runs the channel's next callback, so it survives VM reuse and
// reloads. Only one callback uses a given Assigns at a time (the engine guarantees it).
// After every callback, luabind checks assigns holds only data (strings, numbers, booleans,
// luachan.null, tables of those; no functions/userdata/threads, which belong to one VM): a
// violation is a script error ("assigns may hold only data").
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
	return &Assigns{t: t}, nil
}

// Clone deep-copies (so every channel of a socket starts from the socket's assigns).
func (a *Assigns) Clone() *Assigns {
	return &Assigns{t: copyTable(a.t)}
}

// JSON encodes assigns (for /api and debugging).
func (a *Assigns) JSON() ([]byte, error) {
	return encodeValue(a.t, "assigns")
}

// table returns the Lua table, creating it for a zero Assigns.
func (a *Assigns) table() *lua.LTable {
	if a.t == nil {
		a.t = newTable(0, 4)
	}
	return a.t
}

// copyTable deep-copies a table of data, keeping key types and order. Assigns hold no cycles
// (checkData rejects them by depth), so plain recursion ends.
func copyTable(t *lua.LTable) *lua.LTable {
	n := t.Len()
	c := newTable(n, 0)
	for k, v := t.Next(lua.LNil); k != lua.LNil; k, v = t.Next(k) {
		if sub, ok := v.(*lua.LTable); ok {
			v = copyTable(sub)
		}
		c.RawSet(k, v)
	}
	return c
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
	if depth > maxDepth || t.Metatable != lua.LNil {
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
