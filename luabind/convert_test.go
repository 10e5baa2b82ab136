package luabind_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/luachan/luachan/luabind"
)

// echoScript replies with its payload.
const echoScript = `return { topic = 'a', join = function() return true end,
	handle_in = function(event, p) return "ok", p end }`

// exprScript replies {v = expr}.
func exprScript(expr string) string {
	return `return { topic = 'a', join = function() return true end,
	handle_in = function(event, p, socket) local v = ` + expr + ` return "ok", { v = v } end }`
}

func TestPayloadRoundTrip(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty object", `{}`, `{}`},
		{"empty array", `{"a":[]}`, `{"a":[]}`},
		{"empty arrays nested", `{"a":[[],[{}],{"b":[]}]}`, `{"a":[[],[{}],{"b":[]}]}`},
		{"null", `{"a":null}`, `{"a":null}`},
		{"array of nulls", `{"a":[null,null]}`, `{"a":[null,null]}`},
		{"array", `{"a":[1,"two",true,false]}`, `{"a":[1,"two",true,false]}`},
		{"nested", `{"a":{"b":{"c":[{"d":1}]}}}`, `{"a":{"b":{"c":[{"d":1}]}}}`},
		{"key order kept", `{"z":1,"a":2,"m":3}`, `{"z":1,"a":2,"m":3}`},
		{"duplicate key, last wins", `{"a":1,"b":2,"a":3}`, `{"a":3,"b":2}`},
		{"integers", `{"a":42,"b":-7,"c":0,"d":9007199254740992,"e":-9007199254740992}`, `{"a":42,"b":-7,"c":0,"d":9007199254740992,"e":-9007199254740992}`},
		{"integral floats", `{"a":42.0,"b":1e3,"c":-0}`, `{"a":42,"b":1000,"c":0}`},
		{"floats", `{"a":3.25,"b":-0.5,"c":1e-7,"d":1.5e300,"e":0.1}`, `{"a":3.25,"b":-0.5,"c":1e-7,"d":1.5e+300,"e":0.1}`},
		{"beyond 2^53", `{"a":18014398509481984}`, `{"a":18014398509481984}`},
		{"unicode", `{"s":"héllo ✓ 😀","k✓":1}`, `{"s":"héllo ✓ 😀","k✓":1}`},
		{"escapes", `{"s":"q\" b\\ n\n t\t r\r \u0001 \/ \b \f"}`, `{"s":"q\" b\\ n\n t\t r\r \u0001 / \u0008 \u000c"}`},
		{"unicode escapes", `{"s":"\u00e9\ud83d\ude00"}`, `{"s":"é😀"}`},
		{"lone surrogate", `{"s":"\ud83d"}`, `{"s":"` + "\uFFFD" + `"}`},
		{"whitespace", " \t\n{ \"a\" : [ 1 , 2 ] }\r\n", `{"a":[1,2]}`},
	}
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, echoScript)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, reply, err := s.HandleIn(testContext(t), newFakeSocket("a"), nil, "echo", jsonPayload(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			assertJSON(t, reply.Data, tc.want)
		})
	}
}

func TestBadPayloads(t *testing.T) {
	tests := []struct{ name, in string }{
		{"truncated", `{"a":`},
		{"trailing comma", `{"a":1,}`},
		{"trailing text", `{} x`},
		{"single quotes", `{'a':1}`},
		{"bare word", `{"a":nul}`},
		{"control character", "{\"a\":\"\x01\"}"},
		{"bad escape", `{"a":"\x"}`},
		{"bad unicode escape", `{"a":"\u12"}`},
		{"leading zero", `{"a":01}`},
		{"bare dot", `{"a":1.}`},
		{"bare exponent", `{"a":1e}`},
		{"infinite", `{"a":1e400}`},
		{"too deep", `{"a":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`},
	}
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, echoScript)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.HandleIn(testContext(t), newFakeSocket("a"), nil, "echo", jsonPayload(tc.in))
			if !errors.Is(err, luabind.ErrPayload) {
				t.Errorf("got %v, want ErrPayload", err)
			}
		})
	}

	// 64 levels is the limit, not beyond it.
	deep := strings.Repeat("[", 63) + strings.Repeat("]", 63)
	if _, _, err := s.HandleIn(testContext(t), newFakeSocket("a"), nil, "echo", jsonPayload(`{"a":`+deep+`}`)); err != nil {
		t.Errorf("64 levels: %v", err)
	}
}

func TestLuaToJSON(t *testing.T) {
	tests := []struct{ name, expr, want, wantErr string }{
		{"empty table", `{}`, `{"v":{}}`, ""},
		{"sequence", `{ 1, 2, 3 }`, `{"v":[1,2,3]}`, ""},
		{"sequence built by index", `(function() local t = {} t[2] = "b" t[1] = "a" return t end)()`, `{"v":["a","b"]}`, ""},
		{"holes make an object", `{ 1, nil, 3 }`, `{"v":{"1":1,"3":3}}`, ""},
		{"mixed keys make an object", `(function() local t = { 10, 20 } t.x = 1 return t end)()`, `{"v":{"1":10,"2":20,"x":1}}`, ""},
		{"zero key", `{ [0] = "z" }`, `{"v":{"0":"z"}}`, ""},
		{"float key", `{ [1.5] = "f" }`, `{"v":{"1.5":"f"}}`, ""},
		{"null", `luachan.null`, `{"v":null}`, ""},
		{"integers", `{ 42, -7, 2^53, -(2^53), 2^31 }`, `{"v":[42,-7,9007199254740992,-9007199254740992,2147483648]}`, ""},
		{"floats", `{ 0.5, 1/3, 1e21, 2^53 + 0.5 }`, `{"v":[0.5,0.3333333333333333,1e+21,9007199254740992]}`, ""},
		{"big integral", `{ 2^60 }`, `{"v":[1152921504606847000]}`, ""},
		{"booleans", `{ true, false }`, `{"v":[true,false]}`, ""},
		{"invalid utf-8", `"a\255b"`, `{"v":"a` + "\uFFFD" + `b"}`, ""},
		{"control characters", `"\0\1\31"`, `{"v":"\u0000\u0001\u001f"}`, ""},
		{"shared subtable", `(function() local s = { 1 } return { a = s, b = s } end)()`, `{"v":{"a":[1],"b":[1]}}`, ""},
		{"function", `{ f = print }`, "", "cannot encode function at reply.v.f"},
		{"function in array", `{ 1, { print } }`, "", "cannot encode function at reply.v[2][1]"},
		{"cycle", `(function() local t = { x = {} } t.x.y = t return t end)()`, "", "cannot encode a cycle at reply.v.x.y"},
		{"nan", `{ n = 0/0 }`, "", "cannot encode NaN at reply.v.n"},
		{"infinity", `{ n = 1/0 }`, "", "cannot encode infinity at reply.v.n"},
		{"boolean key", `{ [true] = 1 }`, "", "cannot encode a boolean key at reply.v"},
		{"socket", `{ s = socket }`, "", "cannot encode userdata at reply.v.s"},
		{"too deep", strings.Repeat("{", 64) + strings.Repeat("}", 64), "", "deeper than 64"},
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
	// 64 levels including the reply's own table.
	s := mustLoad(t, opts, exprScript(strings.Repeat("{", 63)+strings.Repeat("}", 63)))
	if _, _, err := s.HandleIn(testContext(t), newFakeSocket("a"), nil, "x", jsonPayload(`{}`)); err != nil {
		t.Errorf("64 levels: %v", err)
	}
}

func TestJSONModule(t *testing.T) {
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, `
local json = luachan.json
return { topic = 'a', join = function() return true end,
	handle_in = function()
		local v = json.decode('{"a":[1,null],"b":null}')
		local bad, msg = json.decode('{"a":')
		local ok, encErr = pcall(json.encode, { f = print })
		return "ok", {
			a2_is_null = v.a[2] == luachan.null,
			b_is_null = v.b == luachan.null,
			null_text = tostring(luachan.null),
			null_meta = getmetatable(luachan.null),
			can_set_meta = pcall(setmetatable, luachan.null, {}),
			top_null = json.decode("null") == luachan.null,
			scalar = json.decode("12.5"),
			encoded = json.encode({ 1, "x", { y = luachan.null } }),
			encoded_nil = json.encode(nil),
			encoded_string = json.encode("q\""),
			bad = bad == nil, msg = msg,
			enc_ok = ok, enc_err = encErr,
			now_is_int = luachan.now() % 1 == 0 and luachan.now() > 1600000000000,
		}
	end }`)
	_, reply, err := s.HandleIn(testContext(t), newFakeSocket("a"), nil, "x", jsonPayload(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	assertJSON(t, reply.Data, `{"a2_is_null":true,"b_is_null":true,"null_text":"null","null_meta":"null","can_set_meta":false,`+
		`"top_null":true,"scalar":12.5,"encoded":"[1,\"x\",{\"y\":null}]","encoded_nil":"null","encoded_string":"\"q\\\"\"",`+
		`"bad":true,"msg":"unexpected end of input at offset 5","enc_ok":false,`+
		`"enc_err":"test.lua:7: luachan.json.encode: cannot encode function at value.f","now_is_int":true}`)
}
