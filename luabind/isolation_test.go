package luabind_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/luachan/luachan/luabind"
)

// TestGlobalsPerCall runs calls one after another on a single VM: what one call assigns to
// globals, in any way, the next does not see; the globals the script defined at load stay.
func TestGlobalsPerCall(t *testing.T) {
	opts, _, _ := testOptions(t)
	opts.MaxVMs = 1
	s := mustLoad(t, opts, `
counter = 0
function helper() return "helper" end
return { topic = 'a', join = function() return true end,
	handle_in = function(event)
		if event == "write" then
			counter = counter + 1
			leaked = "plain"
			_G.via_g = "via _G"
			rawset(_G, "via_rawset", "rawset")
			helper = nil
			return "ok", { counter = counter }
		end
		return "ok", { counter = counter, leaked = leaked, via_g = via_g, via_rawset = via_rawset,
			helper = helper and helper(), g_is_env = _G._G == _G, g_meta = getmetatable(_G) }
	end }`)
	ctx := testContext(t)
	for range 2 {
		_, reply, err := s.HandleIn(ctx, newFakeSocket("a"), nil, "write", jsonPayload(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		assertJSON(t, reply.Data, `{"counter":1}`)
		_, reply, err = s.HandleIn(ctx, newFakeSocket("a"), nil, "read", jsonPayload(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		assertJSON(t, reply.Data, `{"counter":0,"helper":"helper","g_is_env":true,"g_meta":"locked"}`)
	}
}

// TestSandboxEscapes tries the ways out of the sandbox and into what a VM keeps between calls:
// each fails, or changes nothing a later call sees.
func TestSandboxEscapes(t *testing.T) {
	tests := []struct{ name, attempt, want string }{
		{"getfenv", `getfenv(pairs)`, "attempt to call"},
		{"setfenv", `setfenv(1, {})`, "attempt to call"},
		{"require os", `require("os")`, "module 'os' not found"},
		{"require debug", `require("debug")`, "module 'debug' not found"},
		{"require a path", `require("lib/../../etc/passwd")`, "not found"},
		{"string.dump", `string.dump(print)`, "attempt to call"},
		{"load", `load("return 1")`, "attempt to call"},
		{"loadstring", `loadstring("return 1")`, "attempt to call"},
		{"setmetatable _G", `setmetatable(_G, { __index = function() return 1 end })`, "cannot change a protected metatable"},
		{"change a library", `string.upper = nil`, "cannot set field upper of a read-only table"},
		{"add to a library", `math.evil = true`, "read-only table"},
		{"change luachan", `luachan.broadcast = print`, "read-only table"},
		{"change luachan.json", `luachan.json.encode = print`, "read-only table"},
		{"rawset a library", `rawset(string, "upper", print)`, "cannot change a read-only table"},
		{"table.insert into a library", `table.insert(table, print)`, "cannot change a read-only table"},
		{"setmetatable of a library", `setmetatable(string, {})`, "cannot change a protected metatable"},
		{"the string metatable", `getmetatable("").__index.upper = print`, "attempt to index"},
		{"metatable of numbers", `setmetatable(1, { __index = function() return "evil" end })`, "table expected"},
		{"metatable of functions", `setmetatable(print, { __call = print })`, "table expected"},
		{"metatable of the socket", `setmetatable(socket, {})`, "table expected"},
		{"metatable of null", `setmetatable(luachan.null, {})`, "table expected"},
		{"collectgarbage", `collectgarbage()`, "attempt to call"},
		{"coroutine", `coroutine.create(print)`, "attempt to index"},
		{"os", `os.exit(1)`, "attempt to index"},
		{"io", `io.open("/etc/passwd")`, "attempt to index"},
		{"debug", `debug.getregistry()`, "attempt to index"},
	}
	opts, _, _ := testOptions(t)
	opts.MaxVMs = 1
	var cases strings.Builder
	for i, tc := range tests {
		fmt.Fprintf(&cases, "if event == %q then %s end\n", fmt.Sprint(i), tc.attempt)
	}
	s := mustLoad(t, opts, `return { topic = 'a', join = function() return true end,
		handle_in = function(event, p, socket)
			`+cases.String()+`
			if event == "check" then
				return "ok", {
					upper = ("x"):upper(), str_upper = string.upper("y"), math_evil = math.evil,
					number_index = pcall(function() return (1).x end),
					broadcast = type(luachan.broadcast), encode = luachan.json.encode({ 1 }),
					table_size = #table, string_fields = next(string) == nil,
				}
			end
		end }`)
	ctx := testContext(t)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.HandleIn(ctx, newFakeSocket("a"), nil, fmt.Sprint(i), jsonPayload(`{}`))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
			// The VM is as it was.
			_, reply, err := s.HandleIn(ctx, newFakeSocket("a"), nil, "check", jsonPayload(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			assertJSON(t, reply.Data, `{"upper":"X","str_upper":"Y","number_index":false,"broadcast":"function","encode":"[1]","table_size":0,"string_fields":true}`)
		})
	}
}

// TestErrorTable is error({...}): the message is the table's JSON, with the line of the
// error call, in every callback.
func TestErrorTable(t *testing.T) {
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, `return { topic = 'a', join = function() error({ code = 1, why = "join" }) end,
		handle_in = function() error({ code = 2 }) end,
		handle_out = function() error({ code = 3, list = { 1, 2 } }) end,
		handle_info = function() error({ f = print }) end,
		leave = function() error(setmetatable({ code = 5 }, { __tostring = function() return "five" end })) end }`)
	ctx, sock, a := testContext(t), newFakeSocket("a"), luabind.NewAssigns()
	o, err := luabind.NewOutgoing(jsonPayload(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	_, _, joinErr := s.Join(ctx, sock, a, "a", jsonPayload(`{}`))
	_, _, inErr := s.HandleIn(ctx, sock, a, "x", jsonPayload(`{}`))
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"join", joinErr, `test.lua:1: {"code":1,"why":"join"}`},
		{"handle_in", inErr, `test.lua:2: {"code":2}`},
		{"handle_out", s.HandleOut(ctx, sock, a, "e", o), `test.lua:3: {"code":3,"list":[1,2]}`},
		{"handle_info", s.HandleInfo(ctx, sock, a, []byte(`1`)), `test.lua:4: table:`},
		{"leave", s.Leave(ctx, sock, a, "closed"), `test.lua:5: {"code":5}`},
	} {
		if se := asScriptError(t, tc.err); !strings.HasPrefix(se.Error(), tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, se.Error(), tc.want)
		}
	}
}

// TestKeptAssignsRace is the hazard of issue 4: a script keeps one channel's socket.assigns in
// a file-level variable and changes it from other channels' callbacks, on other VMs, while that
// channel's own callbacks run. Under -race this shows no two goroutines touch one table.
func TestKeptAssignsRace(t *testing.T) {
	opts, _, _ := testOptions(t)
	opts.MaxVMs = 4
	s := mustLoad(t, opts, `
local kept = {}
return { topic = 'a', join = function() return true end,
	handle_in = function(event, p, socket)
		if event == "keep" then
			kept[#kept + 1] = socket.assigns
			return
		end
		for _, a in ipairs(kept) do a.poked = (a.poked or 0) + 1 a.list = { a.poked } end
		socket.assigns.n = (socket.assigns.n or 0) + 1
		socket.assigns.tags = socket.assigns.tags or {}
		socket.assigns.tags[#socket.assigns.tags + 1] = event
	end }`)
	ctx := testContext(t)
	channels := make([]*luabind.Assigns, 6)
	for i := range channels {
		channels[i] = luabind.NewAssigns()
		for range 4 { // reach every VM
			if _, _, err := s.HandleIn(ctx, newFakeSocket("a"), channels[i], "keep", jsonPayload(`{}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	for i, a := range channels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 40 {
				if _, _, err := s.HandleIn(ctx, newFakeSocket("a"), a, fmt.Sprint(i), jsonPayload(`{}`)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, a := range channels {
		data, err := a.JSON()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(data), `{"n":40,`) || strings.Contains(string(data), "poked") {
			t.Errorf("assigns %s", data)
		}
	}
}

// TestAssignsTransactional: a callback that fails leaves the assigns as they were; one that
// only reads them leaves them too.
func TestAssignsTransactional(t *testing.T) {
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, `return { topic = 'a', join = function() return true end,
		handle_in = function(event, p, socket)
			socket.assigns.n = (socket.assigns.n or 0) + 1
			if event == "fail" then error("after a change") end
			if event == "bad" then socket.assigns.f = print end
		end,
		handle_out = function(event, p, socket) p.n = socket.assigns.n socket:push(event, p) end }`)
	ctx, a := testContext(t), luabind.NewAssigns()
	for _, event := range []string{"ok", "fail", "bad", "ok"} {
		s.HandleIn(ctx, newFakeSocket("a"), a, event, jsonPayload(`{}`))
	}
	data, _ := a.JSON()
	assertJSON(t, data, `{"n":2}`)

	o, _ := luabind.NewOutgoing(jsonPayload(`{}`))
	sock := newFakeSocket("a")
	if err := s.HandleOut(ctx, sock, a, "e", o); err != nil {
		t.Fatal(err)
	}
	if got := sock.messages(); len(got) != 1 || string(got[0].Payload.Data) != `{"n":2}` {
		t.Errorf("pushed %+v", got)
	}
	data, _ = a.JSON()
	assertJSON(t, data, `{"n":2}`)
}
