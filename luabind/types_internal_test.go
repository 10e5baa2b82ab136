package luabind

import (
	"slices"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

// TestTypesCoverAPI fails when a function of the luachan module or a socket method
// that scripts can call has no annotation in luachan.d.lua.
func TestTypesCoverAPI(t *testing.T) {
	v, err := (&chunk{opts: Options{}.withDefaults(), name: "types.lua", returns: "a table",
		bind: func(*vm) error { return nil }}).newVMForBench()
	if err != nil {
		t.Fatal(err)
	}
	defer v.close()
	v.openSocket()

	var names []string
	var walk func(prefix string, t *lua.LTable)
	walk = func(prefix string, t *lua.LTable) {
		if mt, ok := t.Metatable.(*lua.LTable); ok { // a read-only view: read what it shows
			if inner, ok := mt.RawGetString("__index").(*lua.LTable); ok {
				t = inner
			}
		}
		t.ForEach(func(k, val lua.LValue) {
			name := prefix + "." + k.String()
			switch val := val.(type) {
			case *lua.LFunction:
				names = append(names, "function "+name+"(")
			case *lua.LTable:
				walk(name, val)
			}
		})
	}
	walk("luachan", v.luachan)
	walk("test", (&testModule{}).open(v)) // luachan.test, as `local test = {}`
	for name := range v.sockFns {
		names = append(names, "function Socket:"+name+"(")
	}
	if len(names) < 15 {
		t.Fatalf("found only %d functions in the module and socket: %v", len(names), names)
	}
	slices.Sort(names)
	for _, want := range names {
		if !strings.Contains(Types(), want) {
			t.Errorf("luachan.d.lua has no annotation %q...)", want)
		}
	}
}
