package luabind_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/luachan/luachan/luabind"
)

// mustLoadConnect loads src as "socket.lua", failing the test on error.
func mustLoadConnect(tb testing.TB, opts luabind.Options, src string) *luabind.ConnectScript {
	tb.Helper()
	c, err := luabind.LoadConnectSource(opts, "socket.lua", []byte(src))
	if err != nil {
		tb.Fatalf("load: %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

func TestConnect(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		params      map[string]string
		info        luabind.ConnectInfo
		wantOK      bool
		wantAssigns string   // exact JSON
		wantParts   []string // or parts of it, when key order comes from a Go map
		wantID      string
		wantErr     string // substring; "" means no error
		wantLine    int
	}{
		{name: "false", body: "return false"},
		{name: "nil", body: "return nil"},
		{name: "nothing", body: "return"},
		{name: "false ignores the rest", body: "return false, { a = 1 }, 'id'"},
		{name: "true", body: "return true", wantOK: true, wantAssigns: `{}`},
		{name: "true and nils", body: "return true, nil, nil", wantOK: true, wantAssigns: `{}`},
		{
			name:   "assigns and id",
			body:   "return true, { user_id = params.user, n = 1 }, 'user_socket:' .. params.user",
			params: map[string]string{"user": "ann"}, wantOK: true,
			wantAssigns: `{"user_id":"ann","n":1}`, wantID: "user_socket:ann",
		},
		{
			name:   "sees params and info",
			body:   "return true, { params = params, info = info, empty = next(info) == nil }",
			params: map[string]string{"token": "t1", "vsn": "2.0.0"},
			info:   luabind.ConnectInfo{AuthToken: "tok", Origin: "https://example.com", RemoteIP: "10.0.0.1"},
			wantOK: true,
			wantParts: []string{`"token":"t1"`, `"vsn":"2.0.0"`, `"auth_token":"tok"`,
				`"origin":"https://example.com"`, `"remote_ip":"10.0.0.1"`, `"empty":false`},
		},
		{
			name: "empty info fields are nil", body: "return true, { empty = next(info) == nil, params = type(params) }",
			wantOK: true, wantAssigns: `{"empty":true,"params":"table"}`,
		},
		{name: "not a boolean", body: "return 'yes'", wantErr: "connect must return true or false, got string", wantLine: 2},
		{name: "assigns not a table", body: "return true, 'x'", wantErr: "connect's assigns must be a table, got string", wantLine: 2},
		{name: "assigns not data", body: "return true, { f = print }", wantErr: "assigns may hold only data", wantLine: 2},
		{name: "id not a string", body: "return true, {}, 42", wantErr: "connect's socket id must be a string, got number", wantLine: 2},
		{name: "too many values", body: "return true, {}, 'id', 'extra'", wantErr: "at most 3 values", wantLine: 2},
		{name: "raises", body: "error('denied')", wantErr: "denied", wantLine: 3},
		{name: "raises a table", body: "error({ code = 4 })", wantErr: `{"code":4}`, wantLine: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, _, _ := testOptions(t)
			c := mustLoadConnect(t, opts, "return {\n connect = function(params, info)\n "+tc.body+"\n end }")
			ok, assigns, id, err := c.Connect(testContext(t), tc.params, tc.info)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
				}
				if se := asScriptError(t, err); se.File != "socket.lua" || se.Line != tc.wantLine {
					t.Errorf("got %#v, want socket.lua:%d", se, tc.wantLine)
				}
				if ok || assigns != nil || id != "" {
					t.Errorf("an error also gave %v %v %q", ok, assigns, id)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.wantOK || id != tc.wantID {
				t.Errorf("ok %v id %q, want %v %q", ok, id, tc.wantOK, tc.wantID)
			}
			if !tc.wantOK {
				if assigns != nil {
					t.Errorf("a refusal gave assigns")
				}
				return
			}
			data, err := assigns.JSON()
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantParts != nil {
				for _, part := range tc.wantParts {
					if !strings.Contains(string(data), part) {
						t.Errorf("assigns %s lack %s", data, part)
					}
				}
				return
			}
			assertJSON(t, data, tc.wantAssigns)
		})
	}
}

func TestLoadConnect(t *testing.T) {
	tests := []struct {
		name, src, wantMsg string
		wantLine           int
	}{
		{"syntax error", "return {\n connect = function() end end }", "near 'end'", 2},
		{"returns nothing", "local x = 1", "must return a table with a connect function, got nil", 0},
		{"no connect", "return { join = function() end }", "connect must be a function, got nil", 0},
		{"connect not a function", "return { connect = true }", "connect must be a function, got boolean", 0},
		{"connect misspelled", "return { conect = function() end }", `connect must be a function, got nil (the table has "conect": did you mean connect?)`, 0},
		{"raises at load", "\nerror('boom')", "boom", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, _, _ := testOptions(t)
			_, err := luabind.LoadConnectSource(opts, "socket.lua", []byte(tc.src))
			se := asScriptError(t, err)
			if se.File != "socket.lua" || se.Line != tc.wantLine || !strings.Contains(se.Msg, tc.wantMsg) {
				t.Errorf("got %#v, want socket.lua:%d %q", se, tc.wantLine, tc.wantMsg)
			}
		})
	}

	opts, _, _ := testOptions(t)
	writeFile(t, opts.Dir, "lib/auth.lua", "return { ok = function(p) return p.key == 'k' end }")
	path := writeFile(t, opts.Dir, "socket.lua", `local auth = require("lib.auth")
return { connect = function(params) return auth.ok(params) end }`)
	c, err := luabind.LoadConnect(opts, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Name() != "socket.lua" || !slices.Equal(c.Modules(), []string{"lib/auth.lua"}) || len(c.Hash()) != 64 {
		t.Errorf("name %q modules %v hash %q", c.Name(), c.Modules(), c.Hash())
	}
	for key, want := range map[string]bool{"k": true, "x": false} {
		ok, _, _, err := c.Connect(testContext(t), map[string]string{"key": key}, luabind.ConnectInfo{})
		if err != nil || ok != want {
			t.Errorf("key %q: %v %v, want %v", key, ok, err, want)
		}
	}
	if _, err := luabind.LoadConnect(opts, opts.Dir+"/missing.lua"); err == nil {
		t.Error("a missing file loaded")
	}
}

// TestConnectAssignsOwned shows the assigns Connect returns are Go's own: a script that keeps
// the table it returned and changes it later changes nothing the socket holds.
func TestConnectAssignsOwned(t *testing.T) {
	opts, _, _ := testOptions(t)
	opts.MaxVMs = 1
	c := mustLoadConnect(t, opts, `
local kept
return { connect = function(params)
	if kept then kept.user = "changed" kept.list[1] = "changed" end
	kept = { user = params.user, list = { params.user } }
	return true, kept
end }`)
	ctx := testContext(t)
	_, first, _, err := c.Connect(ctx, map[string]string{"user": "ann"}, luabind.ConnectInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := c.Connect(ctx, map[string]string{"user": "bob"}, luabind.ConnectInfo{}); err != nil {
		t.Fatal(err)
	}
	data, _ := first.JSON()
	assertJSON(t, data, `{"user":"ann","list":["ann"]}`)
}

func TestConnectTimeoutAndConcurrency(t *testing.T) {
	opts, _, _ := testOptions(t)
	opts.Timeout = 50 * time.Millisecond
	opts.MaxVMs = 3
	c := mustLoadConnect(t, opts, `return { connect = function(params)
		if params.spin then while true do end end
		return true, { user = params.user }, params.user
	end }`)
	ctx := testContext(t)
	_, _, _, err := c.Connect(ctx, map[string]string{"spin": "1"}, luabind.ConnectInfo{})
	if se := asScriptError(t, err); !se.Timeout {
		t.Errorf("got %#v, want a timeout", se)
	}

	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("u%d", i)
			for range 20 {
				ok, a, id, err := c.Connect(ctx, map[string]string{"user": user}, luabind.ConnectInfo{})
				if err != nil || !ok || id != user {
					t.Errorf("%v %v %q", ok, err, id)
					return
				}
				if data, _ := a.JSON(); string(data) != `{"user":"`+user+`"}` {
					t.Errorf("assigns %s", data)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestConnectCalls: Calls counts every connect, and as failed those whose script raised, not
// those whose client left before connect could run.
func TestConnectCalls(t *testing.T) {
	opts, _, _ := testOptions(t)
	c, err := luabind.LoadConnectSource(opts, "socket.lua", []byte(`return { connect = function(params)
  if params.boom then error("boom") end
  return true
end }`))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testContext(t)
	c.Connect(ctx, nil, luabind.ConnectInfo{})
	c.Connect(ctx, map[string]string{"boom": "1"}, luabind.ConnectInfo{})
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, _, err := c.Connect(gone, nil, luabind.ConnectInfo{}); err == nil {
		t.Fatal("a connect whose client left ran")
	}
	if calls, failed := c.Calls(); calls != 3 || failed != 1 {
		t.Errorf("Calls() = %d, %d; want 3 connects, 1 failed", calls, failed)
	}
}
