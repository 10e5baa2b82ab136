package luabind

import (
	"context"
	"fmt"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

// A gopher-lua upgrade that changes LTable's fields turns the fast table building off (see
// table.go); this says so, so that it is noticed and tableLayout updated.
func TestTableLayout(t *testing.T) {
	if !tablesByLayout {
		t.Fatal("lua.LTable is no longer laid out as luabind.tableLayout: payloads are converted through the slow path; update tableLayout")
	}
}

// tableTrace renders everything observable of t through gopher-lua's API: the fields in next's
// order (nested tables likewise), the length, and raw lookups of each key.
func tableTrace(t *lua.LTable) string {
	var b strings.Builder
	fmt.Fprintf(&b, "len=%d {", t.Len())
	for k, v := t.Next(lua.LNil); k != lua.LNil; k, v = t.Next(k) {
		if got := t.RawGet(k); got != v {
			fmt.Fprintf(&b, "!RawGet(%v)=%v ", k, got)
		}
		if nt, ok := v.(*lua.LTable); ok {
			fmt.Fprintf(&b, "%v=%s ", k, tableTrace(nt))
		} else {
			fmt.Fprintf(&b, "%v=%v ", k, v)
		}
	}
	b.WriteString("}")
	return b.String()
}

// edit changes t as a script might: a new field, a changed one, a removed one, then another new
// one (after a removal, next's order still has the removed key's slot).
func edit(t *lua.LTable, keys []string) {
	t.RawSetString("added", lua.LString("a"))
	if len(keys) > 0 {
		t.RawSetString(keys[0], lua.LString("changed"))
		t.RawSetString(keys[len(keys)-1], lua.LNil)
	}
	t.RawSetString("added2", lua.LTrue)
	t.RawSetInt(1, lua.LString("one"))
}

// newObject and copyObject build tables that behave exactly like the ones gopher-lua's API
// builds, before and after scripts edit them, and copies are independent of the original and
// of each other.
func TestObjectsMatchTheAPI(t *testing.T) {
	cases := [][]string{
		{"a"},
		{"seq", "t", "pad"},
		{"a", "b", "a", "c", "b"}, // repeated keys: first place, last value
		{"1", "2", "x"},
		strings.Fields("k1 k2 k3 k4 k5 k6 k7 k8 k9 k10 k11 k12 k13 k14 k15 k16 k17 k18"),
		// The sizes where a copy's own keys slice (newTableWithKeys) changes.
		{"a", "b"},
		strings.Fields("k1 k2 k3 k4 k5 k6"),
		strings.Fields("k1 k2 k3 k4 k5 k6 k7"),
		strings.Fields("k1 k2 k3 k4 k5 k6 k7 k8 k9 k10 k11 k12 k13 k14"),
		strings.Fields("k1 k2 k3 k4 k5 k6 k7 k8 k9 k10 k11 k12 k13 k14 k15"),
	}
	for _, keys := range cases {
		t.Run(strings.Join(keys, ","), func(t *testing.T) {
			vals := make([]lua.LValue, len(keys))
			for i := range vals {
				vals[i] = lua.LNumber(i)
			}
			fast, slow := newObject(keys, vals), newObjectByAPI(keys, vals)
			if got, want := tableTrace(fast), tableTrace(slow); got != want {
				t.Fatalf("newObject:\n got %s\nwant %s", got, want)
			}
			var uniq []string
			for k, _ := fast.Next(lua.LNil); k != lua.LNil; k, _ = fast.Next(k) {
				uniq = append(uniq, string(k.(lua.LString)))
			}
			before := tableTrace(fast)
			c1, c2 := copyObject(fast, uniq), copyObjectByAPI(slow, uniq)
			if got, want := tableTrace(c1), tableTrace(c2); got != want {
				t.Fatalf("copyObject:\n got %s\nwant %s", got, want)
			}
			other := copyObject(fast, uniq)
			edit(c1, uniq)
			edit(c2, uniq)
			if got, want := tableTrace(c1), tableTrace(c2); got != want {
				t.Fatalf("copy after edits:\n got %s\nwant %s", got, want)
			}
			edit(fast, uniq)
			edit(slow, uniq)
			if got, want := tableTrace(fast), tableTrace(slow); got != want {
				t.Fatalf("object after edits:\n got %s\nwant %s", got, want)
			}
			if got := tableTrace(other); got != before {
				t.Fatalf("a copy changed when others were edited:\n got %s\nwant %s", got, before)
			}
			// Past the room a copy's keys slice has.
			for _, k := range []string{"other", "other2", "other3", "other4", "other5"} {
				other.RawSetString(k, lua.LFalse)
			}
			if got, want := tableTrace(c1), tableTrace(c2); got != want {
				t.Fatalf("a copy after another was edited:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// Thawed copies of a frozen payload are independent at every depth.
func TestThawedCopiesAreIndependent(t *testing.T) {
	v, err := decodeJSON([]byte(`{"a":1,"in":{"b":[1,{"c":2}],"d":"x"},"e":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	f := freeze(v)
	want := tableTrace(f.thaw().(*lua.LTable))
	c := f.thaw().(*lua.LTable)
	c.RawSetString("a", lua.LString("changed"))
	c.RawSetString("new", lua.LTrue)
	in := c.RawGetString("in").(*lua.LTable)
	in.RawSetString("d", lua.LNil)
	in.RawGetString("b").(*lua.LTable).RawGetInt(2).(*lua.LTable).RawSetString("c", lua.LNumber(9))
	if got := tableTrace(f.thaw().(*lua.LTable)); got != want {
		t.Fatalf("a fresh copy after editing another:\n got %s\nwant %s", got, want)
	}
	if got := tableTrace(v.(*lua.LTable)); got != want {
		t.Fatalf("the decoded original after editing a copy:\n got %s\nwant %s", got, want)
	}
}

// The encoder walks objects in next's order, whatever was done to them.
func TestEncoderWalksInNextOrder(t *testing.T) {
	v, err := decodeJSON([]byte(`{"a":1,"b":{"c":[1,2],"d":null},"e":"x","f":true}`))
	if err != nil {
		t.Fatal(err)
	}
	o := v.(*lua.LTable)
	o.RawSetString("b", lua.LNil) // removed: its slot stays in next's order
	o.RawSetString("g", lua.LNumber(2.5))
	o.RawSetInt(2, lua.LString("two")) // number keys: the array part, walked first
	o.RawSetInt(1, lua.LString("one"))
	o.RawSetInt(7, lua.LString("seven"))
	o.RawSetString("a", lua.LNil)
	o.RawSetString("a", lua.LFalse) // back, in its first place
	for _, t0 := range []lua.LValue{v, newTable(0, 0), newObject([]string{"z"}, []lua.LValue{lua.LTrue})} {
		fast, slow := &encoder{}, &encoder{viaAPI: true}
		if err := fast.value(t0); err != nil {
			t.Fatal(err.msg)
		}
		if err := slow.value(t0); err != nil {
			t.Fatal(err.msg)
		}
		if string(fast.buf) != string(slow.buf) {
			t.Errorf("encoded by layout %s, by next %s", fast.buf, slow.buf)
		}
	}
}

// copyTable (assigns) gives the same fields in the same order by cloning as by rebuilding,
// and a copy is independent of the original at every depth.
func TestCopyTableMatchesRebuild(t *testing.T) {
	v, err := decodeJSON([]byte(`{"user":"ann","n":3,"tags":["a","b"],"prefs":{"x":{"y":true}},"gone":1}`))
	if err != nil {
		t.Fatal(err)
	}
	orig := v.(*lua.LTable)
	orig.RawSetString("gone", lua.LNil)
	orig.RawSetInt(1, lua.LString("first"))  // the array part
	orig.RawSetInt(10, lua.LString("tenth")) // the dict part
	want := tableTrace(orig)

	c := copyTable(orig)
	if got := tableTrace(c); got != want {
		t.Fatalf("copy:\n got %s\nwant %s", got, want)
	}
	// The rebuilding path, which copyTable takes without the layout, agrees.
	n, fields := orig.Len(), 0
	for k, _ := orig.Next(lua.LNil); k != lua.LNil; k, _ = orig.Next(k) {
		fields++
	}
	r := newTable(n, fields)
	for k, v := orig.Next(lua.LNil); k != lua.LNil; k, v = orig.Next(k) {
		r.RawSet(k, v)
	}
	if got := tableTrace(r); got != want {
		t.Fatalf("rebuilt:\n got %s\nwant %s", got, want)
	}

	c.RawSetString("user", lua.LString("bob"))
	c.RawSetString("new", lua.LTrue)
	c.RawSetInt(1, lua.LString("changed"))
	c.RawSetInt(10, lua.LNil)
	c.RawGetString("tags").(*lua.LTable).Append(lua.LString("c"))
	c.RawGetString("prefs").(*lua.LTable).RawGetString("x").(*lua.LTable).RawSetString("y", lua.LFalse)
	if got := tableTrace(orig); got != want {
		t.Fatalf("the original after editing its copy:\n got %s\nwant %s", got, want)
	}
	if got := tableTrace(copyTable(orig)); got != want {
		t.Fatalf("a second copy:\n got %s\nwant %s", got, want)
	}
}

// quietSocket is a Socket that drops what it is sent.
type quietSocket struct{}

func (quietSocket) Topic() string                         { return "t:1" }
func (quietSocket) JoinRef() string                       { return "1" }
func (quietSocket) ID() string                            { return "" }
func (quietSocket) Push(string, Payload) error            { return nil }
func (quietSocket) Broadcast(string, Payload, bool) error { return nil }

// Fields removed from assigns do not pile up: gopher-lua keeps a removed key's slot in next's
// order, and copying assigns by cloning would carry every slot on from callback to callback (a
// sliding window of 10 keys kept 20,000 slots after 20,000 calls, and each call copied them all).
func TestAssignsForgetRemovedFields(t *testing.T) {
	s, err := LoadSource(Options{}, "w.lua", []byte(`return { topic = 't:*',
		join = function() return true end,
		handle_in = function(event, p, socket)
			local a = socket.assigns
			a.n = (a.n or 0) + 1
			a.win = a.win or {}
			a.win["k" .. a.n] = true
			a.win["k" .. (a.n - 10)] = nil
			return "ok"
		end }`))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := NewAssigns()
	for range 300 {
		if _, _, err := s.HandleIn(context.Background(), quietSocket{}, a, "x", Payload{Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	win := a.t.RawGetString("win").(*lua.LTable)
	if got, want := tableTrace(copyTable(win)), tableTrace(win); got != want {
		t.Fatalf("a copy differs:\n got %s\nwant %s", got, want)
	}
	if n := len(layoutOf(win).keys); n > 20 {
		t.Fatalf("the assigns keep %d key slots for 10 fields", n)
	}
}
