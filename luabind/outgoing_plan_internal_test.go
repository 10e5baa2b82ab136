package luabind

import (
	"context"
	"slices"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

// compileHandleOut compiles a handle_out(event, payload, socket) whose body is body, as a
// script's is compiled (the loader rewrites some operators), after prelude, and with the
// upvalues a script's module would give it.
func compileHandleOut(t *testing.T, prelude, body string) *lua.LFunction {
	t.Helper()
	fn := `function(event, payload, socket) ` + body + ` end`
	s, err := LoadSource(Options{}, "test.lua", []byte(`local kept, helper, ignoring, other = {}, print, print, {}
		`+prelude+`
		return { topic = 'a', join = function() return true end, handle_out = `+fn+` }`))
	if err != nil {
		t.Fatalf("%s: %v", fn, err)
	}
	t.Cleanup(s.Close)
	var h Holder
	defer h.Release()
	if !h.TryHold(context.Background(), s) {
		t.Fatal("no VM")
	}
	return h.v.fns[cbHandleOut]
}

// TestPlanShare: which handle_out functions may be lent their payload, and on what terms.
func TestPlanShare(t *testing.T) {
	lendable := []struct {
		prelude, body   string
		written, fields []string
		anyField        bool
	}{
		{body: `payload.to = socket.join_ref socket:push(event, payload)`, written: []string{"to"}},
		{body: `payload.is_editable = payload.uid ~= nil and payload.uid == socket.assigns.user
			socket:push(event, payload)`, written: []string{"is_editable"}},
		{body: `if not ignoring(socket, payload.user_id) then socket:push(event, payload) end`, fields: []string{"user_id"}},
		{body: `socket:push(event, { s = payload.text:upper() })`, fields: []string{"text"}},
		{body: `local k = "x" helper(payload[k])`, fields: []string{"x"}},
		{body: `helper(payload[socket.id])`, anyField: true},
		{body: `other.last = payload.meta`, fields: []string{"meta"}}, // a copy when meta is a table
		{body: `local k = "a" if socket.id then k = "b" end helper(payload[k])`, anyField: true},
		{body: `return socket:push(event, payload)`},
		{body: `if payload.n > 1 and #payload.list > 0 then payload.n = payload.n - 1 end
			payload.s = nil socket:push(event, payload)`, written: []string{"n", "s"}},
		{body: `local p = payload if p.x then socket:push(event, p) end`},
		{body: `socket:push(event, payload.inner)`},
		{body: `payload.x = payload.meta socket:push(event, payload)`, written: []string{"x"}, fields: []string{"meta"}},
		{body: `local n = payload.n - 1 + payload.m`, fields: []string{"m"}},                                                       // n - 1: a constant and data have no metamethod
		{prelude: "local T = setmetatable({}, { __add = print })", body: `local q = T + payload.n q.z = 1`, fields: []string{"n"}}, // a copy when n is a table
		{prelude: "local T = {}", body: `local x = T[payload.m]`, fields: []string{"m"}},
		{body: `local k = "a" local f = function() k = "m" end f() helper(payload[k])`, anyField: true}, // k captured: any field
		{body: `local s = "" for i = 1, 3 do s = s .. tostring(i) end payload.s = s socket:push(event, payload)`, written: []string{"s"}},
	}
	for _, tc := range lendable {
		p := planShare(compileHandleOut(t, tc.prelude, tc.body))
		if !p.ok || !slices.Equal(p.written, tc.written) || !slices.Equal(p.fields, tc.fields) || p.anyField != tc.anyField {
			t.Errorf("%s:\nplan %+v, want lendable, written %v, fields %v, anyField %v", tc.body, p, tc.written, tc.fields, tc.anyField)
		}
	}
	// T is a table with metamethods that get what they are given.
	const metaT = `local T = setmetatable({}, { __add = print, __sub = print, __pow = print, __index = print })`
	copied := []struct{ prelude, body string }{
		{"", `kept[#kept + 1] = payload`},                                               // stored in a table that outlives the call
		{"", `last_seen = payload`},                                                     // a global
		{"", `kept = payload`},                                                          // an upvalue
		{"", `helper(payload)`},                                                         // passed to a function
		{"", `payload.meta.seen = true socket:push(event, payload)`},                    // a table in it changed
		{"", `payload[socket.id] = 1`},                                                  // a field named by a computed key
		{"", `payload[1] = "one"`},                                                      // not a string key
		{"", `socket:after(10, function() socket:push(event, payload) end)`},            // captured by a closure
		{"", `socket.push(socket, event, payload)`},                                     // push, not as a method: not recognised
		{"", `socket = other socket:push(event, payload)`},                              // socket is not the socket any more
		{"", `local t = { payload }`},                                                   // in a table constructor
		{"", `for k, v in pairs(payload) do end`},                                       // passed to pairs
		{"", `for k, v in next, payload do end`},                                        // iterated by next
		{"", `socket:broadcast(event, payload)`},                                        // a method that is not push
		{"", `local m = payload.meta helper(m.inner)`},                                  // a value read from a field's value
		{"", `payload.copy = payload`},                                                  // the payload stored in itself
		{"", `kept[payload] = true`},                                                    // a key of a table
		{"", `local q local f = function() kept[1] = q end q = payload f()`},            // captured before it held the payload
		{"", `local f = function() socket = other end f() socket:push(event, payload)`}, // the socket changed by a closure
		{"", `socket:push(event, payload, payload)`},                                    // push with a third argument
		{metaT, `local x = T + payload`},                                                // an operand of another's metamethod
		{metaT, `local x = payload - T`},                                                // ... on either side
		{metaT, `payload.x = T local y = payload.x ^ payload`},                          // ... through a field set to it
		{metaT, `local x = T[payload]`},                                                 // a key given to another's __index
		{metaT, `local x = T[payload.m.k]`},                                             // ... read from a field's value
	}
	for _, c := range copied {
		if p := planShare(compileHandleOut(t, c.prelude, c.body)); p.ok {
			t.Errorf("%s:\nplan %+v, want a copy", c.body, p)
		}
	}
	// The payload not in a parameter of its own.
	L := lua.NewState()
	defer L.Close()
	if err := L.DoString(`return function(event, ...) local p = ... end`); err != nil {
		t.Fatal(err)
	}
	if p := planShare(L.Get(-1).(*lua.LFunction)); p.ok {
		t.Errorf("handle_out(event, ...): plan %+v, want a copy", p)
	}
}
