package luabind_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/luachan/luachan/luabind"
)

func TestAssignsJSON(t *testing.T) {
	a := luabind.NewAssigns()
	data, err := a.JSON()
	if err != nil {
		t.Fatal(err)
	}
	assertJSON(t, data, `{}`)

	for _, in := range []string{``, `null`} {
		a, err := luabind.AssignsFromJSON([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		data, _ := a.JSON()
		assertJSON(t, data, `{}`)
	}
	for _, in := range []string{`[1]`, `"x"`, `{"a":`} {
		if _, err := luabind.AssignsFromJSON([]byte(in)); !errors.Is(err, luabind.ErrPayload) {
			t.Errorf("%q: got %v, want ErrPayload", in, err)
		}
	}
}

func TestAssignsClone(t *testing.T) {
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, `return { topic = 'a', join = function(topic, p, socket)
		socket.assigns.user = p.user
		socket.assigns.tags[#socket.assigns.tags + 1] = p.user
		socket.assigns.count = socket.assigns.count + 1
		return true
	end }`)
	base, err := luabind.AssignsFromJSON([]byte(`{"tags":["base"],"count":10,"z":null}`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	for _, user := range []string{"u1", "u2"} {
		a := base.Clone()
		if ok, _, err := s.Join(ctx, newFakeSocket("a"), a, "a", jsonPayload(`{"user":"`+user+`"}`)); !ok || err != nil {
			t.Fatalf("join: %v %v", ok, err)
		}
		data, _ := a.JSON()
		assertJSON(t, data, `{"tags":["base","`+user+`"],"count":11,"z":null,"user":"`+user+`"}`)
	}
	data, _ := base.JSON()
	assertJSON(t, data, `{"tags":["base"],"count":10,"z":null}`)
}

func TestAssignsOnlyData(t *testing.T) {
	tests := []struct{ name, stmt string }{
		{"function", "socket.assigns.f = print"},
		{"nested function", "socket.assigns.t = { { g = function() end } }"},
		{"socket", "socket.assigns.s = socket"},
		{"metatable", "socket.assigns.m = setmetatable({}, { __index = function() end })"},
		{"boolean key", "socket.assigns[true] = 1"},
		{"table key", "socket.assigns[{}] = 1"},
		{"cycle", "local t = {} t.self = t socket.assigns.t = t"},
		{"replaced with a function inside", "socket.assigns = { f = print }"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, _, _ := testOptions(t)
			s := mustLoad(t, opts, "return { topic = 'a', join = function(topic, p, socket) "+tc.stmt+" return true end }")
			_, _, err := s.Join(testContext(t), newFakeSocket("a"), luabind.NewAssigns(), "a", jsonPayload(`{}`))
			if err == nil || !strings.Contains(err.Error(), "assigns may hold only data") {
				t.Errorf("got %v", err)
			}
			asScriptError(t, err)
		})
	}

	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, `return { topic = 'a', join = function(topic, p, socket)
		local shared = { 1 }
		socket.assigns.data = { s = "x", n = 1.5, b = false, z = luachan.null, list = { 1, { 2 } }, a = shared, b2 = shared, [3] = "three" }
		return true end }`)
	a := luabind.NewAssigns()
	if _, _, err := s.Join(testContext(t), newFakeSocket("a"), a, "a", jsonPayload(`{}`)); err != nil {
		t.Fatal(err)
	}
	data, _ := a.JSON()
	if !strings.Contains(string(data), `"z":null`) || !strings.Contains(string(data), `"3":"three"`) {
		t.Errorf("assigns %s", data)
	}
}

// TestAssignsAcrossVMs runs one channel's callbacks on different VMs: its assigns follow it.
func TestAssignsAcrossVMs(t *testing.T) {
	opts, _, _ := testOptions(t)
	opts.MaxVMs = 2
	s := mustLoad(t, opts, `
local vm = tostring({}) -- differs per VM
return { topic = 'a', join = function() return true end,
	handle_in = function(event, p, socket)
		if event == "block" then socket:push("x") return end
		socket.assigns.n = (socket.assigns.n or 0) + 1
		socket.assigns.vms = socket.assigns.vms or {}
		socket.assigns.vms[vm] = true
		local seen = 0
		for _ in pairs(socket.assigns.vms) do seen = seen + 1 end
		return "ok", { n = socket.assigns.n, vms = seen }
	end }`)
	ctx, a := testContext(t), luabind.NewAssigns()
	call := func() string {
		t.Helper()
		_, reply, err := s.HandleIn(ctx, newFakeSocket("a"), a, "count", jsonPayload(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		return string(reply.Data)
	}
	// hold runs a blocking callback on one VM until the returned func is called.
	hold := func() func() {
		release := make(chan struct{})
		b := &blockingSocket{fakeSocket: newFakeSocket("a"), entered: make(chan struct{}), release: release}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if _, _, err := s.HandleIn(ctx, b, nil, "block", jsonPayload(`{}`)); err != nil {
				t.Error(err)
			}
		}()
		<-b.entered
		return func() { close(release); <-done }
	}

	first := call() // on the VM Load built
	releaseA := hold()
	second := call() // that VM is busy: a second one
	releaseB := hold()
	releaseA()
	third := call()
	releaseB()
	if first != `{"n":1,"vms":1}` || second != `{"n":2,"vms":2}` || third != `{"n":3,"vms":2}` {
		t.Errorf("replies %s %s %s", first, second, third)
	}

	// Many channels at once, each with its own assigns.
	var wg sync.WaitGroup
	channels := make([]*luabind.Assigns, 8)
	for i := range channels {
		channels[i] = luabind.NewAssigns()
		wg.Add(1)
		go func(a *luabind.Assigns) {
			defer wg.Done()
			for range 50 {
				if _, _, err := s.HandleIn(ctx, newFakeSocket("a"), a, "count", jsonPayload(`{}`)); err != nil {
					t.Error(err)
					return
				}
			}
		}(channels[i])
	}
	wg.Wait()
	for _, a := range channels {
		data, _ := a.JSON()
		if !strings.HasPrefix(string(data), `{"n":50,`) {
			t.Errorf("assigns %s", data)
		}
	}
}
