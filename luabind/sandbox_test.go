package luabind_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/luachan/luachan/luabind"
)

func TestSandboxGlobals(t *testing.T) {
	forbidden := []string{
		"load", "loadstring", "dofile", "loadfile", "getfenv", "setfenv", "collectgarbage",
		"_printregs", "module", "newproxy", "os", "io", "debug", "coroutine", "channel", "package",
		"string.dump",
	}
	allowed := []string{
		"print", "pairs", "ipairs", "pcall", "error", "type", "tostring", "tonumber", "select",
		"setmetatable", "getmetatable", "rawget", "unpack", "require", "luachan",
		"string.format", "string.rep", "table.insert", "table.concat", "math.floor", "math.random",
	}
	opts, _, _ := testOptions(t)
	for _, tc := range []struct {
		names []string
		want  string
	}{{forbidden, "nil"}, {allowed, "present"}} {
		for _, name := range tc.names {
			t.Run(name, func(t *testing.T) {
				s := mustLoad(t, opts, exprScript(name+` == nil and "nil" or "present"`))
				_, reply, err := s.HandleIn(testContext(t), newFakeSocket("a"), nil, "x", jsonPayload(`{}`))
				if err != nil {
					t.Fatal(err)
				}
				assertJSON(t, reply.Data, `{"v":"`+tc.want+`"}`)
			})
		}
	}
}

func TestPrintAndLog(t *testing.T) {
	opts, _, logs := testOptions(t)
	s := mustLoad(t, opts, `return { topic = 'a', join = function() return true end,
		handle_in = function(event)
			if event == "print" then print("hello", 42, luachan.null, nil) end
			if event == "log" then luachan.log("warn", "careful", { user = "u1", n = 3, f = 1.5, ok = true, t = { 1, 2 }, z = luachan.null }) end
			if event == "bad level" then luachan.log("loud", "x") end
		end }`)
	ctx := testContext(t)
	for _, event := range []string{"print", "log"} {
		if _, _, err := s.HandleIn(ctx, newFakeSocket("a"), nil, event, jsonPayload(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	lines := logs.lines(t)
	if len(lines) != 2 {
		t.Fatalf("got %d log lines: %v", len(lines), lines)
	}
	if l := lines[0]; l["msg"] != "hello\t42\tnull\tnil" || l["level"] != "INFO" || l["script"] != "test.lua" {
		t.Errorf("print logged %v", l)
	}
	l := lines[1]
	want := map[string]any{"msg": "careful", "level": "WARN", "script": "test.lua", "user": "u1", "n": 3.0, "f": 1.5, "ok": true, "t": "[1,2]", "z": nil}
	for k, v := range want {
		if l[k] != v {
			t.Errorf("log field %s = %v (%T), want %v", k, l[k], l[k], v)
		}
	}
	_, _, err := s.HandleIn(ctx, newFakeSocket("a"), nil, "bad level", jsonPayload(`{}`))
	if err == nil || !strings.Contains(err.Error(), "level must be debug, info, warn or error") {
		t.Errorf("got %v", err)
	}
}

func TestStackOverflow(t *testing.T) {
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, `
local function down(n) return 1 + down(n + 1) end
return { topic = 'a', join = function() return true end,
	handle_in = function(event)
		if event == "deep" then down(1) end
		return "ok"
	end }`)
	ctx := testContext(t)
	_, _, err := s.HandleIn(ctx, newFakeSocket("a"), nil, "deep", jsonPayload(`{}`))
	if se := asScriptError(t, err); !strings.Contains(se.Msg, "stack overflow") {
		t.Errorf("got %#v", se)
	}
	if status, _, err := s.HandleIn(ctx, newFakeSocket("a"), nil, "x", jsonPayload(`{}`)); status != "ok" || err != nil {
		t.Errorf("after an overflow: %q %v", status, err)
	}
}

func TestTimeout(t *testing.T) {
	const budget = 100 * time.Millisecond
	tests := []struct{ name, body string }{
		{"busy loop", "while true do end"},
		{"loop catching errors", "while true do pcall(function() while true do end end) end"},
		{"deep string work", "local s = '' while true do s = string.rep('x', 10) .. s:sub(1, 100) end"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, _, _ := testOptions(t)
			opts.Timeout = budget
			opts.MaxVMs = 1
			s := mustLoad(t, opts, `return { topic = 'a', join = function() return true end,
				handle_in = function(event) if event == "spin" then `+tc.body+` end return "ok" end }`)
			ctx := testContext(t)
			start := time.Now()
			_, _, err := s.HandleIn(ctx, newFakeSocket("a"), nil, "spin", jsonPayload(`{}`))
			elapsed := time.Since(start)
			se := asScriptError(t, err)
			if !se.Timeout || se.File != "test.lua" || se.Line == 0 {
				t.Errorf("got %#v, want a timeout with a line", se)
			}
			if elapsed > budget+5*time.Second { // generous: shared CI machines stall
				t.Errorf("took %v for a %v budget", elapsed, budget)
			}
			// The broken VM was replaced; the next call works.
			if status, _, err := s.HandleIn(ctx, newFakeSocket("a"), nil, "x", jsonPayload(`{}`)); status != "ok" || err != nil {
				t.Errorf("after a timeout: %q %v", status, err)
			}
		})
	}
}

func TestCallerContext(t *testing.T) {
	opts, _, _ := testOptions(t)
	opts.MaxVMs = 1
	s := mustLoad(t, opts, `return { topic = 'a', join = function() return true end,
		handle_in = function(event, p, socket) if event == "block" then socket:push("x") end while event == "spin" do end end }`)

	// A canceled caller ends a running callback, and it is no timeout.
	ctx, cancel := context.WithCancel(testContext(t))
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	_, _, err := s.HandleIn(ctx, newFakeSocket("a"), nil, "spin", jsonPayload(`{}`))
	if se := asScriptError(t, err); se.Timeout || !strings.Contains(se.Msg, "canceled") {
		t.Errorf("got %#v", se)
	}

	// With the only VM in use, a caller waits for it until its context ends.
	release := make(chan struct{})
	blocking := &blockingSocket{fakeSocket: newFakeSocket("a"), entered: make(chan struct{}), release: release}
	done := make(chan error, 1)
	go func() {
		_, _, err := s.HandleIn(testContext(t), blocking, nil, "block", jsonPayload(`{}`))
		done <- err
	}()
	<-blocking.entered
	waitCtx, waitCancel := context.WithTimeout(testContext(t), 20*time.Millisecond)
	defer waitCancel()
	_, _, err = s.HandleIn(waitCtx, newFakeSocket("a"), nil, "x", jsonPayload(`{}`))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting for a VM: got %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// blockingSocket blocks Push until release is closed, holding its VM.
type blockingSocket struct {
	*fakeSocket
	entered chan struct{}
	release chan struct{}
}

func (b *blockingSocket) Push(event string, p luabind.Payload) error {
	close(b.entered)
	<-b.release
	return b.fakeSocket.Push(event, p)
}
