package luabind_test

import (
	"strings"
	"testing"

	"github.com/luachan/luachan/luabind"
)

// TestCallbackErrors is every way a callback goes wrong: each is one *ScriptError naming the
// file and the line (where the error was raised, or where the callback that returned nonsense
// is defined).
func TestCallbackErrors(t *testing.T) {
	opts, _, _ := testOptions(t)
	writeFile(t, opts.Dir, "lib/cb.lua", "local M = {}\n\nfunction M.join() return 'yes' end\nreturn M")
	s := mustLoad(t, opts, `local cb = require("lib.cb")
local room = { topic = 'a' }
function room.join(topic, p)
	if p.many then return true, {}, 3 end
	return true, print
end
function room.handle_in(event, p, socket)
	if event == "many" then return "ok", {}, "extra" end
	if event == "nil status" then return nil, {} end
	if event == "bad reply" then return "ok", { f = print } end
	if event == "push function" then socket:push("x", { print }) end
end
function room.handle_out(event, p, socket)
	socket:push(event, { bad = 0/0 })
end
function room.leave(reason, socket)
	local x = nil
	return x.y
end
return room`)
	ctx, sock, a := testContext(t), newFakeSocket("a"), luabind.NewAssigns()
	joinErr := func(p string) error { _, _, err := s.Join(ctx, sock, a, "a", jsonPayload(p)); return err }
	inErr := func(event string) error { _, _, err := s.HandleIn(ctx, sock, a, event, jsonPayload(`{}`)); return err }
	o, _ := luabind.NewOutgoing(jsonPayload(`{}`))
	tests := []struct {
		name string
		err  error
		file string
		line int
		msg  string
	}{
		{"join reply a function", joinErr(`{}`), "test.lua", 3, "join reply must be a table or a string, got function"},
		{"join too many values", joinErr(`{"many":true}`), "test.lua", 3, "join must return at most 2 values (ok, reply), got 3"},
		{"handle_in too many values", inErr("many"), "test.lua", 7, "at most 2 values"},
		{"handle_in nil status", inErr("nil status"), "test.lua", 7, "must return nothing or a status string, got nil"},
		{"handle_in reply not encodable", inErr("bad reply"), "test.lua", 7, "cannot encode function at reply.f"},
		{"push not encodable", inErr("push function"), "test.lua", 11, "cannot encode function at payload[1]"},
		{"handle_out push not encodable", s.HandleOut(ctx, sock, a, "e", o), "test.lua", 14, "cannot encode NaN at payload.bad"},
		{"leave raises", s.Leave(ctx, sock, a, "closed"), "test.lua", 18, "attempt to index"},
	}
	fromLib, err := luabind.LoadSource(opts, "lib.lua", []byte(`return { topic = 'b', join = require("lib.cb").join }`))
	if err != nil {
		t.Fatal(err)
	}
	defer fromLib.Close()
	_, _, err = fromLib.Join(ctx, sock, a, "b", jsonPayload(`{}`))
	tests = append(tests, struct {
		name string
		err  error
		file string
		line int
		msg  string
	}{"join defined in a module", err, "lib/cb.lua", 3, "join must return true or false, got string"})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			se := asScriptError(t, tc.err)
			if se.File != tc.file || se.Line != tc.line || !strings.Contains(se.Msg, tc.msg) {
				t.Errorf("got %q, want %s:%d %q", se.Error(), tc.file, tc.line, tc.msg)
			}
			if strings.Count(se.Error(), "\n") > 0 {
				t.Errorf("more than one line: %q", se.Error())
			}
		})
	}
}
