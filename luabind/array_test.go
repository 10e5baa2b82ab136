package luabind_test

import (
	"strings"
	"testing"

	"github.com/luachan/luachan/luabind"
)

// TestArray covers luachan.array: what it builds encodes as a JSON array, [] when empty, and
// its mark can be neither read nor removed.
func TestArray(t *testing.T) {
	tests := []struct{ name, expr, want, wantErr string }{
		{"empty", `luachan.array()`, `{"v":[]}`, ""},
		{"elements", `luachan.array(1, "two", luachan.null, { a = 1 })`, `{"v":[1,"two",null,{"a":1}]}`, ""},
		{"nested empty", `{ list = luachan.array(), more = luachan.array(luachan.array()) }`, `{"v":{"list":[],"more":[[]]}}`, ""},
		{"appended to", `(function() local a = luachan.array() table.insert(a, "x") a[#a + 1] = "y" return a end)()`, `{"v":["x","y"]}`, ""},
		{"emptied stays an array", `(function() local a = luachan.array(1, 2) a[2] = nil a[1] = nil return a end)()`, `{"v":[]}`, ""},
		{"a named field makes an object", `(function() local a = luachan.array() a.x = 1 return a end)()`, `{"v":{"x":1}}`, ""},
		{"length and ipairs", `(function() local a, n = luachan.array(5, 6, 7), 0 for _, x in ipairs(a) do n = n + x end return { #a, n } end)()`, `{"v":[3,18]}`, ""},
		{"metatable is hidden", `getmetatable(luachan.array())`, `{"v":"array"}`, ""},
		{"metatable cannot change", `pcall(setmetatable, luachan.array(), {})`, `{"v":false}`, ""},
		{"json.encode", `luachan.json.encode({ a = luachan.array(), b = {} })`, `{"v":"{\"a\":[],\"b\":{}}"}`, ""},
		{"json round trip", `luachan.json.encode(luachan.json.decode('{"a":[],"b":[[],{}],"c":{}}'))`, `{"v":"{\"a\":[],\"b\":[[],{}],\"c\":{}}"}`, ""},
		{"decoded array is marked", `getmetatable(luachan.json.decode("[]"))`, `{"v":"array"}`, ""},
		{"nil element", `luachan.array(1, nil, 3)`, "", "luachan.array: a nil element would leave a hole; use luachan.null"},
	}
	opts, _, _ := testOptions(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustLoad(t, opts, exprScript(tc.expr))
			_, reply, err := s.HandleIn(testContext(t), newFakeSocket("a"), nil, "x", jsonPayload(`{}`))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertJSON(t, reply.Data, tc.want)
		})
	}
}

// TestArrayThroughHandleOut: an intercepted payload's copy keeps its empty arrays, so a
// handle_out pushing it unchanged sends what was broadcast.
func TestArrayThroughHandleOut(t *testing.T) {
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, `return { topic = 'a', join = function() return true end,
		handle_out = function(event, p, socket) socket:push(event, p) end }`)
	const payload = `{"a":[],"b":[[],{}],"c":{},"d":[1,[]]}`
	o, err := luabind.NewOutgoing(jsonPayload(payload))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // every copy, not only the first
		sock := newFakeSocket("a")
		if err := s.HandleOut(testContext(t), sock, luabind.NewAssigns(), "e", o); err != nil {
			t.Fatal(err)
		}
		got := sock.messages()
		if len(got) != 1 {
			t.Fatalf("sent %+v", got)
		}
		assertJSON(t, got[0].Payload.Data, payload)
	}
}

// TestArrayInAssigns: an empty array kept in assigns stays one through the copies every
// callback gets and gives back, through Clone, and through a callback that only reads it;
// replacing it with a plain {} is a change the assigns take.
func TestArrayInAssigns(t *testing.T) {
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, `return { topic = 'a',
		join = function(topic, p, socket) socket.assigns.list = luachan.array() socket.assigns.keep = p.keep return true end,
		handle_in = function(event, p, socket)
			if event == "plain" then socket.assigns.list = {} end
			return "ok", socket.assigns
		end }`)
	ctx := testContext(t)
	a, err := luabind.AssignsFromJSON([]byte(`{"from_connect":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	a = a.Clone()
	if ok, _, err := s.Join(ctx, newFakeSocket("a"), a, "a", jsonPayload(`{"keep":[[]]}`)); !ok || err != nil {
		t.Fatalf("join: %v %v", ok, err)
	}
	const want = `{"from_connect":[],"list":[],"keep":[[]]}`
	data, _ := a.JSON()
	assertJSON(t, data, want)
	for range 2 {
		_, reply, err := s.HandleIn(ctx, newFakeSocket("a"), a, "read", jsonPayload(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		assertJSON(t, reply.Data, want)
	}
	data, _ = a.Clone().JSON()
	assertJSON(t, data, want)

	if _, _, err := s.HandleIn(ctx, newFakeSocket("a"), a, "plain", jsonPayload(`{}`)); err != nil {
		t.Fatal(err)
	}
	data, _ = a.JSON()
	assertJSON(t, data, `{"from_connect":[],"list":{},"keep":[[]]}`)

	// [] as a socket's whole assigns is still the empty object.
	empty, err := luabind.AssignsFromJSON([]byte(`[]`))
	if err != nil {
		t.Fatal(err)
	}
	data, _ = empty.JSON()
	assertJSON(t, data, `{}`)
}
