package luabind_test

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/luachan/luachan/luabind"
)

// asScriptError fails the test unless err is a *ScriptError.
func asScriptError(tb testing.TB, err error) *luabind.ScriptError {
	tb.Helper()
	var se *luabind.ScriptError
	if !errors.As(err, &se) {
		tb.Fatalf("got %v (%T), want a *ScriptError", err, err)
	}
	return se
}

func TestLoadValidation(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		wantLine int
		wantMsg  string // substring of the message; "" means the load succeeds
	}{
		{"syntax error", "local room = {\n topic = 'a'\n join = 1 }\nreturn room", 3, "near 'join'"},
		{"syntax error at end", "local x = {", 1, "'}' expected near '<eof>'"},
		{"runtime error at load", "local x = nil\nlocal y = x.field\nreturn {}", 2, "attempt to index"},
		{"error() at load", "error('boom')", 1, "boom"},
		{"returns nothing", "local x = 1", 0, "must return a channel table, got nil"},
		{"returns a string", "return 'rooms'", 0, "got string"},
		{"no topic", "return { join = function() return true end }", 0, "needs a string topic"},
		{"topic not a string", "return { topic = 5, join = function() return true end }", 0, "got number"},
		{"empty topic", "return { topic = '', join = function() return true end }", 0, "bad topic"},
		{"star in the middle", "return { topic = 'rooms:*:x', join = function() return true end }", 0, "bad topic"},
		{"two stars", "return { topic = 'rooms:**', join = function() return true end }", 0, "bad topic"},
		{"history", "return { topic = 'a', history = { size = 10, ttl = 30 }, join = function() return true end }", 0, ""},
		{"history not a table", "return { topic = 'a', history = 10, join = function() return true end }", 0, "history must be a table"},
		{"history size missing", "return { topic = 'a', history = { ttl = 30 }, join = function() return true end }", 0, "history.size must be a whole number from 1 to 100000, got nil"},
		{"history ttl missing", "return { topic = 'a', history = { size = 10 }, join = function() return true end }", 0, "history.ttl must be a number of seconds above 0 and at most 86400, got nil"},
		{"history size fractional", "return { topic = 'a', history = { size = 1.5, ttl = 30 }, join = function() return true end }", 0, "history.size"},
		{"history size too big", "return { topic = 'a', history = { size = 1e9, ttl = 30 }, join = function() return true end }", 0, "history.size"},
		{"history ttl zero", "return { topic = 'a', history = { size = 5, ttl = 0 }, join = function() return true end }", 0, "history.ttl"},
		{"history ttl a string", "return { topic = 'a', history = { size = 5, ttl = '30' }, join = function() return true end }", 0, `history.ttl must be a number of seconds above 0 and at most 86400, got "30"`},
		{"no join", "return { topic = 'rooms:lobby' }", 0, "join"},
		{"join misspelled", "return { topic = 'rooms:lobby', Join = function() return true end }", 0, `join must be a function, got nil (the table has "Join": did you mean join?)`},
		{"join not a function", "return { topic = 'rooms:lobby', join = true }", 0, "join must be a function, got boolean"},
		{"handle_in not a function", "return { topic = 'a', join = function() end, handle_in = {} }", 0, "handle_in must be a function, got table"},
		{"intercept not a table", "return { topic = 'a', join = function() end, intercept = 'new:msg' }", 0, "intercept must be a list of strings"},
		{"intercept with a number", "return { topic = 'a', join = function() end, intercept = { 'a', 2 } }", 0, "intercept must be a list of strings"},
		{"intercept with keys", "return { topic = 'a', join = function() end, intercept = { x = 'a' } }", 0, "intercept must be a list of strings"},
		{"ok exact", "return { topic = 'rooms:lobby', join = function() return true end }", 0, ""},
		{"ok prefix", "return { topic = 'rooms:*', join = function() return true end, intercept = {} }", 0, ""},
		{"ok catch-all", "return { topic = '*', join = function() return true end, handle_out = function() end, intercept = { 'a', 'b' } }", 0, ""},
		{"intercept without handle_out", "return { topic = 'a', join = function() end, intercept = { 'a' } }", 0, "no handle_out function"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, _, _ := testOptions(t)
			s, err := luabind.LoadSource(opts, "rooms.lua", []byte(tc.src))
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				s.Close()
				return
			}
			if err == nil {
				t.Fatal("load succeeded, want an error")
			}
			se := asScriptError(t, err)
			if se.File != "rooms.lua" || se.Line != tc.wantLine || !strings.Contains(se.Msg, tc.wantMsg) {
				t.Errorf("got %#v, want rooms.lua line %d with %q", se, tc.wantLine, tc.wantMsg)
			}
			if strings.Contains(se.Error(), "@") || strings.Contains(se.Error(), "stack traceback") {
				t.Errorf("error text %q holds a chunk marker or a traceback", se.Error())
			}
		})
	}
}

func TestLoadTimesOut(t *testing.T) {
	opts, _, _ := testOptions(t)
	opts.Timeout = 20 * 1e6 // 20ms
	_, err := luabind.LoadSource(opts, "loop.lua", []byte("while true do end"))
	if se := asScriptError(t, err); !se.Timeout {
		t.Errorf("got %#v, want a timeout", se)
	}
}

func TestLoadFile(t *testing.T) {
	opts, _, _ := testOptions(t)
	path := writeFile(t, opts.Dir, "rooms.lua", "return { topic = 'rooms:*',\n join = function() return true end,\n handle_in = function() error('bad') end }")
	s, err := luabind.Load(opts, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Name() != "rooms.lua" || s.Topic() != "rooms:*" {
		t.Errorf("name %q topic %q", s.Name(), s.Topic())
	}
	if len(s.Hash()) != 64 {
		t.Errorf("hash %q is not hex sha256", s.Hash())
	}
	_, _, err = s.HandleIn(testContext(t), newFakeSocket("rooms:1"), luabind.NewAssigns(), "x", jsonPayload(`{}`))
	if se := asScriptError(t, err); se.Error() != "rooms.lua:3: bad" {
		t.Errorf("got %q, want %q", se.Error(), "rooms.lua:3: bad")
	}

	_, err = luabind.Load(opts, filepath.Join(opts.Dir, "missing.lua"))
	if se := asScriptError(t, err); se.File != "missing.lua" {
		t.Errorf("got %#v", se)
	}
}

func TestScriptFlags(t *testing.T) {
	const join = "join = function() return true end"
	tests := []struct {
		name       string
		fields     string
		hasIn      bool
		hasLeave   bool
		intercepts map[string]bool
	}{
		{"join only", "", false, false, map[string]bool{"a": false, "b": false}},
		{"handle_out catch-all", "handle_out = function() end", false, false, map[string]bool{"a": true, "b": true}},
		{"handle_out intercept", "handle_out = function() end, intercept = { 'a' }", false, false, map[string]bool{"a": true, "b": false}},
		{"empty intercept", "handle_out = function() end, intercept = {}", false, false, map[string]bool{"a": false}},
		{"in and leave", "handle_in = function() end, leave = function() end", true, true, map[string]bool{"a": false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, _, _ := testOptions(t)
			src := "return { topic = 'a', " + join
			if tc.fields != "" {
				src += ", " + tc.fields
			}
			s := mustLoad(t, opts, src+" }")
			if s.HasHandleIn() != tc.hasIn || s.HasLeave() != tc.hasLeave {
				t.Errorf("HasHandleIn %v HasLeave %v", s.HasHandleIn(), s.HasLeave())
			}
			for event, want := range tc.intercepts {
				if got := s.Intercepts(event); got != want {
					t.Errorf("Intercepts(%q) = %v, want %v", event, got, want)
				}
			}
		})
	}
}

func TestModules(t *testing.T) {
	opts, _, _ := testOptions(t)
	writeFile(t, opts.Dir, "lib/util.lua", "local M = {}\nfunction M.double(x) return 2 * x end\nreturn M")
	writeFile(t, opts.Dir, "lib/deep/name.lua", "local util = require('lib.util')\nreturn { value = util.double(21) }")
	writeFile(t, opts.Dir, "lib/broken.lua", "return {")
	writeFile(t, opts.Dir, "lib/raises.lua", "local x = nil\nreturn x.y")
	src := `
local deep = require("lib.deep.name")
local lc = require("luachan")
local room = { topic = "a" }
function room.join() return lc == luachan end
function room.handle_in(event)
  if event == "value" then return "ok", { value = deep.value } end
  require(event)
end
return room`
	s := mustLoad(t, opts, src)
	if got, want := s.Modules(), []string{"lib/deep/name.lua", "lib/util.lua"}; !slices.Equal(got, want) {
		t.Errorf("Modules() = %v, want %v", got, want)
	}

	// The hash covers the modules.
	other, err := luabind.LoadSource(opts, "test.lua", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
	writeFile(t, opts.Dir, "lib/util.lua", "local M = {}\nfunction M.double(x) return x + x end\nreturn M")
	changed, err := luabind.LoadSource(opts, "test.lua", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	changed.Close()
	if s.Hash() != other.Hash() || s.Hash() == changed.Hash() {
		t.Errorf("hashes: same source %v, changed module %v", s.Hash() == other.Hash(), s.Hash() == changed.Hash())
	}

	ctx, sock, a := testContext(t), newFakeSocket("a"), luabind.NewAssigns()
	if ok, _, err := s.Join(ctx, sock, a, "a", jsonPayload(`{}`)); !ok || err != nil {
		t.Fatalf("require('luachan') is not the global: %v %v", ok, err)
	}
	if _, reply, err := s.HandleIn(ctx, sock, a, "value", jsonPayload(`{}`)); err != nil {
		t.Fatal(err)
	} else {
		assertJSON(t, reply.Data, `{"value":42}`)
	}

	tests := []struct {
		module, file string
		line         int
		msg          string
	}{
		{"os", "test.lua", 8, "module 'os' not found"},
		{"io", "test.lua", 8, "module 'io' not found"},
		{"lib.missing", "test.lua", 8, "module 'lib.missing' not found"},
		{"lib..util", "test.lua", 8, "not found"},
		{"lib/util", "test.lua", 8, "not found"},
		{"lib.broken", "lib/broken.lua", 1, "'}' expected near '<eof>'"},
		{"lib.raises", "lib/raises.lua", 2, "attempt to index"},
	}
	for _, tc := range tests {
		t.Run(tc.module, func(t *testing.T) {
			_, _, err := s.HandleIn(ctx, sock, a, tc.module, jsonPayload(`{}`))
			se := asScriptError(t, err)
			if se.File != tc.file || se.Line != tc.line || !strings.Contains(se.Msg, tc.msg) {
				t.Errorf("got %#v, want %s:%d %q", se, tc.file, tc.line, tc.msg)
			}
		})
	}
}

func TestCloseKeepsWorking(t *testing.T) {
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, "return { topic = 'a', join = function(t, p, s) s.assigns.n = (s.assigns.n or 0) + 1; return true end }")
	s.Close()
	a := luabind.NewAssigns()
	for range 3 {
		if ok, _, err := s.Join(testContext(t), newFakeSocket("a"), a, "a", jsonPayload(`{}`)); !ok || err != nil {
			t.Fatalf("join after Close: %v %v", ok, err)
		}
	}
	data, _ := a.JSON()
	assertJSON(t, data, `{"n":3}`)
}

func TestScriptHistory(t *testing.T) {
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, "return { topic = 'a', history = { size = 7, ttl = 1.5 }, join = function() return true end }")
	if h, ok := s.History(); !ok || h.Size != 7 || h.TTL != 1500*time.Millisecond {
		t.Fatalf("History() = %+v, %v; want size 7, ttl 1.5s", h, ok)
	}
	s = mustLoad(t, opts, "return { topic = 'a', join = function() return true end }")
	if _, ok := s.History(); ok {
		t.Fatal("a script without history has one")
	}
}
