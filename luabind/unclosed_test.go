package luabind_test

import (
	"strings"
	"testing"

	"github.com/luachan/luachan/luabind"
)

// TestSyntaxErrorAtEnd: a file that ends inside a block or a string says which one was left
// open and where, as luac does, with the line where the file ends; other syntax errors keep
// their own line.
func TestSyntaxErrorAtEnd(t *testing.T) {
	tests := []struct {
		name, src string
		line      int
		msg       string
	}{
		{"function", "local r = {}\nfunction r.join()\n  return true\n", 4,
			"'end' expected (to close 'function' at line 2) near '<eof>'"},
		{"if closed, function not", "local r = {}\nfunction r.join(t, p)\n  if p then\n    return true\n  end\n", 6,
			"'end' expected (to close 'function' at line 2) near '<eof>'"},
		{"if", "local r = {}\nfunction r.join(t, p)\n  if p then\n    return true\nend\n", 6,
			"'end' expected (to close 'function' at line 2) near '<eof>'"},
		{"innermost if", "local x = 1\nif x then\n  if x then\n    x = 2\n  else\n    x = 3\nend\n", 8,
			"'end' expected (to close 'if' at line 2) near '<eof>'"},
		{"for", "for i = 1, 3 do\n  print(i)\n", 3, "'end' expected (to close 'for' at line 1) near '<eof>'"},
		{"for with a function in its header", "for _, v in ipairs((function() return {} end)()) do\n  print(v)\n", 3,
			"'end' expected (to close 'for' at line 1) near '<eof>'"},
		{"while", "local n = 0\nwhile n < 3 do\n  n = n + 1\n", 4, "'end' expected (to close 'while' at line 2) near '<eof>'"},
		{"while inside do", "do\n  while true do\n    break\n  end\n", 5, "'end' expected (to close 'do' at line 1) near '<eof>'"},
		{"repeat", "local n = 0\nrepeat\n  n = n + 1\n", 4, "'until' expected (to close 'repeat' at line 2) near '<eof>'"},
		{"table", "return {\n  topic = 'a',\n", 3, "'}' expected (to close '{' at line 1) near '<eof>'"},
		{"call", "print(1,\n  2", 2, "')' expected (to close '(' at line 1) near '<eof>'"},
		{"on the last line", "local x = {", 1, "'}' expected near '<eof>'"},
		{"expression cut short", "local r = {}\nfunction r.join()\n  local x = 1 +\n", 4, "unexpected symbol near '<eof>'"},
		{"string", "local r = {}\nlocal s = 'abc", 2, "unfinished string (starting at line 2)"},
		{"long string", "local r = {}\nlocal s = [[abc\ndef\n", 4, "unfinished long string (starting at line 2)"},
		{"long comment", "local r = {}\n--[[ a\nb\n", 4, "unfinished comment (starting at line 2)"},
		{"not at the end", "local r = {}\nfunction r.join() return ) end\nreturn r\n", 2, "near ')'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, _, _ := testOptions(t)
			s, err := luabind.LoadSource(opts, "rooms.lua", []byte(tc.src))
			if err == nil {
				s.Close()
				t.Fatalf("%q loaded, want a syntax error", tc.src)
			}
			se := asScriptError(t, err)
			if se.File != "rooms.lua" || se.Line != tc.line || !strings.Contains(se.Msg, tc.msg) {
				t.Errorf("got %q, want rooms.lua:%d: ...%s", se.Error(), tc.line, tc.msg)
			}
		})
	}
}
