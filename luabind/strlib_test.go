package luabind_test

import (
	"strings"
	"testing"
)

// luaCase is a Lua expression and the JSON of the list of values it gives, or an error.
type luaCase struct{ expr, want, wantErr string }

// runLuaCases evaluates each case as { expr } in one script and compares.
func runLuaCases(t *testing.T, tests []luaCase) {
	t.Helper()
	opts, _, _ := testOptions(t)
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			s := mustLoad(t, opts, "return { topic = 'a', join = function() return true end,\n"+
				" handle_in = function() return 'ok', { v = { "+tc.expr+" } } end }")
			_, reply, err := s.HandleIn(testContext(t), newFakeSocket("a"), nil, "x", jsonPayload(`{}`))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
				}
				if se := asScriptError(t, err); se.Line != 2 {
					t.Errorf("error at line %d, want 2: %v", se.Line, se)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertJSON(t, reply.Data, `{"v":`+tc.want+`}`)
		})
	}
}

func TestPatterns(t *testing.T) {
	runLuaCases(t, []luaCase{
		{`string.find("hello world", "wor")`, `[7,9]`, ""},
		{`string.find("hello", "l+")`, `[3,4]`, ""},
		{`string.find("hello", "xyz")`, `{}`, ""},
		{`string.find("a.b", ".", 1, true)`, `[2,2]`, ""},
		{`string.find("a.b", "%.")`, `[2,2]`, ""},
		{`string.find("abc", "b", -1)`, `{}`, ""},
		{`string.find("abc", "c", -1)`, `[3,3]`, ""},
		{`string.find("abc", "", 10)`, `[4,3]`, ""},
		{`string.find("abc", "", -10)`, `[1,0]`, ""},
		{`string.find("a+b", "+", 1, true)`, `[2,2]`, ""},
		{`string.find("key=val", "(%w+)=(%w+)")`, `[1,7,"key","val"]`, ""},
		{`string.find("abc", "^b")`, `{}`, ""},
		{`string.find("abc", "^a")`, `[1,1]`, ""},
		{`string.find("a$b", "$b")`, `[2,3]`, ""},
		{`string.find("ab", "b$")`, `[2,2]`, ""},
		{`string.match("key=value", "(%w+)=(%w+)")`, `["key","value"]`, ""},
		{`string.match("  trim me  ", "^%s*(.-)%s*$")`, `["trim me"]`, ""},
		{`string.match("2024-01-05", "(%d+)-(%d+)-(%d+)")`, `["2024","01","05"]`, ""},
		{`string.match("hello", "()ll()")`, `[3,5]`, ""},
		{`string.match("THE (quick) fox", "%((%a+)%)")`, `["quick"]`, ""},
		{`string.match("x [[y] z] w", "%b[]")`, `["[[y] z]"]`, ""},
		{`string.match("THE (quick) fox", "%f[%a]%a+", 5)`, `["quick"]`, ""},
		{`string.match("hello", "l", 4)`, `["l"]`, ""},
		{`string.match("hello", ".", -1)`, `["o"]`, ""},
		{`string.match("<a><b>", "<(.-)>")`, `["a"]`, ""},
		{`string.match("<a><b>", "<(.*)>")`, `["a><b"]`, ""},
		{`string.match("color colour", "colou?r")`, `["color"]`, ""},
		{`string.match("say 'hi' ok", "(['\"])(.-)%1")`, `["'","hi"]`, ""},
		{`string.match("aB1 .\t", "%u"), string.match("aB1 .", "%l"), string.match("aB1", "%d"), string.match("a .", "%p")`, `["B","a","1","."]`, ""},
		{`string.match("zzbeefzz", "%x+"), string.match("ab1", "%A"), string.match("a  b", "%s+"), string.match("x\0y", "%z") == "\0"`, `["beef","1","  ",true]`, ""},
		{`string.match("xxabcabd", "[a-c]+"), string.match("a]b", "[]]"), string.match("a]b", "[%]]"), string.match("a-b", "[a-]", 2)`, `["abcab","]","]","-"]`, ""},
		{`string.match("hello world", "[^%s]+"), string.match("a1_b", "[%w_]+"), string.match("abc", "[^a]")`, `["hello","a1_b","b"]`, ""},
		{`string.match("hello", "")`, `[""]`, ""},
		{`string.match("abc", "a*b-c")`, `["abc"]`, ""},
		{`string.gsub("hello world", "o", "0")`, `["hell0 w0rld",2]`, ""},
		{`string.gsub("hello world", "(%w+)", "<%1>")`, `["<hello> <world>",2]`, ""},
		{`string.gsub("abc", "", "-")`, `["-a-b-c-",4]`, ""},
		{`string.gsub("hello", "l", { l = "L" })`, `["heLLo",2]`, ""},
		{`string.gsub("hello", "%w", function(c) if c == "l" then return "L" end end)`, `["heLLo",5]`, ""},
		{`string.gsub("abc", "%w", "%0%0")`, `["aabbcc",3]`, ""},
		{`string.gsub("abc", "b", "%%")`, `["a%c",1]`, ""},
		{`string.gsub("abc", "b", "%x")`, `["axc",1]`, ""},
		{`string.gsub("hello world", "o", "0", 1)`, `["hell0 world",1]`, ""},
		{`string.gsub("aaa", "^a", "x")`, `["xaa",1]`, ""},
		{`string.gsub("abc", "()b", "%1")`, `["a2c",1]`, ""},
		{`string.gsub("a,b", "(%w)", 1)`, `["1,1",2]`, ""},
		{`string.gsub("abc", "b", false)`, ``, "string/function/table expected"},
		{`string.gsub("abc", "b", function() return {} end)`, ``, "invalid replacement value (a table)"},
		{`string.gsub("abc", "%w", function() return false end)`, `["abc",3]`, ""},
		{`(function() local r = {} for w in string.gmatch("one two three", "%a+") do r[#r + 1] = w end return unpack(r) end)()`, `["one","two","three"]`, ""},
		{`(function() local r = {} for k, v in ("a=1, b=2"):gmatch("(%w+)=(%w+)") do r[#r + 1] = k .. v end return unpack(r) end)()`, `["a1","b2"]`, ""},
		{`(function() local n = 0 for w in ("abc"):gmatch("") do n = n + 1 end return n end)()`, `[4]`, ""},
		{`("^a"):gmatch("^a")()`, `["^a"]`, ""},
		{`string.gfind("ab", "b")()`, `["b"]`, ""},
		{`string.find("x", "[a")`, ``, "malformed pattern (missing ']')"},
		{`string.find("x", "%")`, ``, "malformed pattern (ends with '%')"},
		{`string.match("x", "(")`, ``, "unfinished capture"},
		{`string.match("x", "x)")`, ``, "invalid pattern capture"},
		{`string.gsub("x", "x", "%2")`, ``, "invalid capture index"},
		{`string.find("x", "%b")`, ``, "unbalanced pattern"},
		{`string.find("x", "%fx")`, ``, "missing '['"},
		{`string.find(("x"):rep(40), ("(x)"):rep(33))`, ``, "too many captures"},
		{`string.find(("x"):rep(300), ("x?"):rep(300))`, ``, "pattern too complex"},
		{`string.find("x", ("x"):rep(20000) .. "(")`, ``, "pattern too long"},
	})
}

func TestFormat(t *testing.T) {
	runLuaCases(t, []luaCase{
		{`string.format("%d %i %d", 3.7, -5, -0.5)`, `["3 -5 0"]`, ""},
		{`string.format("%5d|%-5d|%05d|%+d", 42, 42, 42, 42)`, `["   42|42   |00042|+42"]`, ""},
		{`string.format("%x %X %o %u %#x %#x %#o", 255, 255, 8, 3, 255, 0, 0)`, `["ff FF 10 3 0xff 0 0"]`, ""},
		{`string.format("%5.2f|%.0f|%f", 3.14159, 2.5, 1)`, `[" 3.14|2|1.000000"]`, ""},
		{`string.format("%g %g %g %g", 0.1, 1e20, 1/3, 100)`, `["0.1 1e+20 0.333333 100"]`, ""},
		{`string.format("%e %.2E", 12345.678, 0.5)`, `["1.234568e+04 5.00E-01"]`, ""},
		{`string.format("%f %f %g", 1/0, -1/0, 0/0):gsub("-nan", "nan")`, `["inf -inf nan",0]`, ""},
		{`string.format("%s|%10s|%-10s|%.2s|%5.1s", "ab", "ab", "ab", "abc", "abc")`, `["ab|        ab|ab        |ab|    a"]`, ""},
		{`string.format("%s %s %s", 1, true, nil)`, `["1 true nil"]`, ""},
		{`string.format("%s", ("x"):rep(150)) == ("x"):rep(150)`, `[true]`, ""},
		{`string.format("%q", 'he said "hi"\n\0\r\\')`, `["\"he said \\\"hi\\\"\\\n\\000\\r\\\\\""]`, ""},
		{`string.format("%c%c%c", 72, 105, 33)`, `["Hi!"]`, ""},
		{`string.format("100%% %d%%", 5)`, `["100% 5%"]`, ""},
		{`string.format("%5s|", "é")`, `["   é|"]`, ""},
		{`string.format("no directives")`, `["no directives"]`, ""},
		{`string.format("%y", 1)`, ``, "invalid option '%y' to 'format'"},
		{`string.format("%123d", 1)`, ``, "invalid format (width or precision too long)"},
		{`string.format("%.123f", 1)`, ``, "invalid format (width or precision too long)"},
		{`string.format("%------d", 1)`, ``, "invalid format (repeated flags)"},
		{`string.format("%d")`, ``, "bad argument #2"},
		{`string.format("%d", "x")`, ``, "number expected"},
		{`string.format("%d", "10")`, `["10"]`, ""},
		{`string.format("%")`, ``, "invalid option"},
	})
}

func TestConcat(t *testing.T) {
	runLuaCases(t, []luaCase{
		{`"a" .. "b" .. "c"`, `["abc"]`, ""},
		{`1 .. 2, 1.5 .. "", -0.25 .. "x", 2^53 .. ""`, `["12","1.5","-0.25x","9007199254740992"]`, ""},
		{`"x" .. (function() return "y", "z" end)()`, `["xy"]`, ""},
		{`(function(...) return "x" .. ... end)("y", "z")`, `["xy"]`, ""},
		{`(function() return "t" .. "ail" end)()`, `["tail"]`, ""},
		{`setmetatable({}, { __concat = function(a, b) return "mm" end }) .. "x"`, `["mm"]`, ""},
		{`"x" .. setmetatable({}, { __concat = function(a, b) return type(a) .. "+" .. type(b) end })`, `["string+table"]`, ""},
		{`"a" .. "b" .. setmetatable({}, { __concat = function(a, b) return "[" .. type(a) .. "," .. b .. "]" end }) .. "c" .. "d"`, `["ab[table,cd]"]`, ""},
		{`("a" .. "b") .. ("c" .. "d")`, `["abcd"]`, ""},
		{`"x" .. nil`, ``, "attempt to concatenate a nil value"},
		{`{} .. "x"`, ``, "attempt to concatenate a table value"},
		{`"x" .. true`, ``, "attempt to concatenate a boolean value"},
		{`table.concat({ 1, "b", 3 }, ", "), table.concat({}, "x"), table.concat({ "a", "b", "c" }, "", 2, 3)`, `["1, b, 3","","bc"]`, ""},
		{`table.concat({ 1, {} })`, ``, "invalid value (at index 2) in table for 'concat'"},
		{`string.rep("ab", 3), string.rep("x", 0), string.rep("x", -1), string.rep("", 1e9)`, `["ababab","","",""]`, ""},
		{`(function() local t = { 3, 1, 2 } table.sort(t) return unpack(t) end)()`, `[1,2,3]`, ""},
		{`(function() local t = { "b", "c", "a" } table.sort(t, function(a, b) return a > b end) return unpack(t) end)()`, `["c","b","a"]`, ""},
		{`(function() local t = { 1, "x" } table.sort(t) end)()`, ``, "attempt to compare"},
		{`(function() local t = {} table.insert(t, "a") table.insert(t, 1, "b") return unpack(t) end)()`, `["b","a"]`, ""},
	})
}
