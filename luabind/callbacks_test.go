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
	"github.com/luachan/luachan/store"
)

func TestJoin(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantOK    bool
		wantReply string // "" means no reply
		binary    bool
		wantErr   string
	}{
		{"true", "return true", true, "", false, ""},
		{"true and reply", "return true, { welcome = p.user }", true, `{"welcome":"ann"}`, false, ""},
		{"false", "return false", false, "", false, ""},
		{"false and reply", "return false, { reason = 'banned' }", false, `{"reason":"banned"}`, false, ""},
		{"string reply is binary", "return true, 'raw\\0bytes'", true, "raw\x00bytes", true, ""},
		{"empty table reply", "return true, {}", true, `{}`, false, ""},
		{"nothing", "return", false, "", false, "join must return true or false, got nil"},
		{"a string", "return 'yes'", false, "", false, "join must return true or false, got string"},
		{"reply a number", "return true, 42", false, "", false, "join reply must be a table or a string, got number"},
		{"reply a function", "return true, { f = print }", false, "", false, "cannot encode function at reply.f"},
		{"raises", "error('nope')", false, "", false, "test.lua:1: nope"},
		{"raises a table", "error({ code = 7 })", false, "", false, `test.lua:1: {"code":7}`},
		// assert takes a message of any type, as Lua 5.2's does (gopher-lua's wants a string)
		{"asserts with a table", "assert(nil, { code = 8 })", false, "", false, `test.lua:1: {"code":8}`},
		{"asserts with a string", "assert(false, 'why')", false, "", false, `test.lua:1: why`},
		{"asserts with none", "assert(false)", false, "", false, `test.lua:1: assertion failed!`},
		{"assert passes its arguments on", "local a, b = assert(true, { welcome = 'x' }) return a, b", true, `{"welcome":"x"}`, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, _, _ := testOptions(t)
			s := mustLoad(t, opts, "return { topic = 'rooms:*', join = function(topic, p, socket) "+tc.body+" end }")
			ok, reply, err := s.Join(testContext(t), newFakeSocket("rooms:1"), luabind.NewAssigns(), "rooms:1", jsonPayload(`{"user":"ann"}`))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
				}
				asScriptError(t, err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.wantOK {
				t.Errorf("ok = %v, want %v", ok, tc.wantOK)
			}
			switch {
			case tc.wantReply == "" && reply != nil:
				t.Errorf("reply %s, want none", reply.Data)
			case tc.wantReply != "" && reply == nil:
				t.Errorf("no reply, want %s", tc.wantReply)
			case reply != nil:
				assertJSON(t, reply.Data, tc.wantReply)
				if reply.Binary != tc.binary {
					t.Errorf("binary = %v, want %v", reply.Binary, tc.binary)
				}
			}
		})
	}
}

func TestJoinArguments(t *testing.T) {
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, `return { topic = 'rooms:*', join = function(topic, p, socket)
		return true, { topic = topic, user = p.user, kind = type(p), n = p.n }
	end }`)
	_, reply, err := s.Join(testContext(t), newFakeSocket("rooms:1"), nil, "rooms:1", jsonPayload(`{"user":"ann","n":3}`))
	if err != nil {
		t.Fatal(err)
	}
	assertJSON(t, reply.Data, `{"topic":"rooms:1","user":"ann","kind":"table","n":3}`)

	_, reply, err = s.Join(testContext(t), newFakeSocket("rooms:1"), nil, "rooms:1", luabind.Payload{})
	if err != nil {
		t.Fatal(err)
	}
	assertJSON(t, reply.Data, `{"topic":"rooms:1","kind":"table"}`)

	_, _, err = s.Join(testContext(t), newFakeSocket("rooms:1"), nil, "rooms:1", jsonPayload(`{"user":`))
	if err == nil {
		t.Error("a malformed payload was accepted")
	}
}

func TestHandleIn(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		payload    luabind.Payload
		wantStatus string
		wantReply  string
		binary     bool
		wantErr    string
	}{
		{"nothing", "", jsonPayload(`{}`), "", "", false, ""},
		{"nil", "return nil", jsonPayload(`{}`), "", "", false, ""},
		{"ok", "return 'ok'", jsonPayload(`{}`), "ok", `{}`, false, ""},
		{"ok and table", "return 'ok', { echo = p.x }", jsonPayload(`{"x":[1,2]}`), "ok", `{"echo":[1,2]}`, false, ""},
		{"error and table", "return 'error', { reason = 'no' }", jsonPayload(`{}`), "error", `{"reason":"no"}`, false, ""},
		{"binary in", "return 'ok', { kind = type(p), len = #p }", luabind.Payload{Data: []byte{0, 1, 2}, Binary: true}, "ok", `{"kind":"string","len":3}`, false, ""},
		{"binary out", "return 'ok', 'xyz'", jsonPayload(`{}`), "ok", "xyz", true, ""},
		{"event argument", "return 'ok', { event = event }", jsonPayload(`{}`), "ok", `{"event":"ping"}`, false, ""},
		{"status not a string", "return true", jsonPayload(`{}`), "", "", false, "must return nothing or a status string, got boolean"},
		{"empty status", "return ''", jsonPayload(`{}`), "", "", false, "status string"},
		{"bad response", "return 'ok', 5", jsonPayload(`{}`), "", "", false, "handle_in reply must be a table or a string, got number"},
		{"runtime error", "local x = nil\n return x.y", jsonPayload(`{}`), "", "", false, "test.lua:3: attempt to index"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, _, _ := testOptions(t)
			s := mustLoad(t, opts, "return { topic = 'a', join = function() return true end,\n handle_in = function(event, p, socket) "+tc.body+" end }")
			status, reply, err := s.HandleIn(testContext(t), newFakeSocket("a"), luabind.NewAssigns(), "ping", tc.payload)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
				}
				asScriptError(t, err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if status != tc.wantStatus {
				t.Errorf("status %q, want %q", status, tc.wantStatus)
			}
			if tc.wantReply == "" {
				if reply != nil {
					t.Errorf("reply %s, want none", reply.Data)
				}
				return
			}
			if reply == nil {
				t.Fatalf("no reply, want %s", tc.wantReply)
			}
			assertJSON(t, reply.Data, tc.wantReply)
			if reply.Binary != tc.binary {
				t.Errorf("binary = %v, want %v", reply.Binary, tc.binary)
			}
		})
	}
}

func TestUndefinedCallbacks(t *testing.T) {
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, "return { topic = 'a', join = function() return true end }")
	ctx, sock, a := testContext(t), newFakeSocket("a"), luabind.NewAssigns()
	if status, reply, err := s.HandleIn(ctx, sock, a, "x", jsonPayload(`{}`)); status != "" || reply != nil || err != nil {
		t.Errorf("HandleIn = %q %v %v", status, reply, err)
	}
	o, err := luabind.NewOutgoing(jsonPayload(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.HandleOut(ctx, sock, a, "x", o); err != nil {
		t.Error(err)
	}
	if err := s.HandleInfo(ctx, sock, a, []byte(`1`)); err != nil {
		t.Error(err)
	}
	if err := s.Leave(ctx, sock, a, "leave"); err != nil {
		t.Error(err)
	}
}

func TestHandleOutCopies(t *testing.T) {
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, `return { topic = 'a', join = function() return true end,
		handle_out = function(event, p, socket)
			if type(p) == "string" then socket:push(event, p) return end
			p.seen = (p.seen or 0) + 1
			p.list[#p.list + 1] = socket.assigns.user
			p.nested.deep.x = socket.assigns.user
			socket:push(event, p)
		end }`)
	o, err := luabind.NewOutgoing(jsonPayload(`{"list":["a"],"nested":{"deep":{"x":0}}}`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	for _, user := range []string{"u1", "u2"} {
		sock := newFakeSocket("a")
		a, err := luabind.AssignsFromJSON([]byte(`{"user":"` + user + `"}`))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.HandleOut(ctx, sock, a, "new:msg", o); err != nil {
			t.Fatal(err)
		}
		got := sock.messages()
		if len(got) != 1 || got[0].Event != "new:msg" || got[0].Broadcast {
			t.Fatalf("sent %+v", got)
		}
		assertJSON(t, got[0].Payload.Data, `{"list":["a","`+user+`"],"nested":{"deep":{"x":"`+user+`"}},"seen":1}`)
	}

	bin, err := luabind.NewOutgoing(luabind.Payload{Data: []byte("\x00\xff"), Binary: true})
	if err != nil {
		t.Fatal(err)
	}
	sock := newFakeSocket("a")
	if err := s.HandleOut(ctx, sock, luabind.NewAssigns(), "bin", bin); err != nil {
		t.Fatal(err)
	}
	if got := sock.messages(); len(got) != 1 || !got[0].Payload.Binary || string(got[0].Payload.Data) != "\x00\xff" {
		t.Errorf("sent %+v", got)
	}

	if _, err := luabind.NewOutgoing(jsonPayload(`{"a":`)); err == nil {
		t.Error("NewOutgoing accepted malformed JSON")
	}
}

func TestHandleInfoAndLeave(t *testing.T) {
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, `return { topic = 'a', join = function() return true end,
		handle_info = function(msg, socket) socket:push("info", { msg = msg }) end,
		leave = function(reason, socket) socket:push("bye", { reason = reason }) end }`)
	ctx, sock, a := testContext(t), newFakeSocket("a"), luabind.NewAssigns()
	for _, msg := range []string{`"tick"`, `{"n":1}`, `[1,2]`, `null`, `3.5`} {
		if err := s.HandleInfo(ctx, sock, a, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Leave(ctx, sock, a, "closed"); err != nil {
		t.Fatal(err)
	}
	want := []string{`{"msg":"tick"}`, `{"msg":{"n":1}}`, `{"msg":[1,2]}`, `{"msg":null}`, `{"msg":3.5}`, `{"reason":"closed"}`}
	got := sock.messages()
	if len(got) != len(want) {
		t.Fatalf("sent %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		assertJSON(t, got[i].Payload.Data, want[i])
	}
	if got[len(got)-1].Event != "bye" {
		t.Errorf("last event %q", got[len(got)-1].Event)
	}
}

func TestSocket(t *testing.T) {
	opts, host, _ := testOptions(t)
	s := mustLoad(t, opts, `
local kept
return { topic = 'rooms:*', join = function() return true end,
	handle_in = function(event, p, socket)
		if event == "fields" then
			return "ok", { topic = socket.topic, join_ref = socket.join_ref, id = socket.id,
				assigns = type(socket.assigns), str = tostring(socket) }
		elseif event == "send" then
			socket:push("pushed", { n = 1 })
			socket:reply("replied", { n = 2 })
			socket:broadcast("all", { n = 3 })
			socket:broadcast_from("others", { n = 4 })
			socket:push("empty")
			socket:push("bin", "\1\2")
			luachan.broadcast("rooms:superadmin", "copy", { n = 5 })
		elseif event == "keep" then
			kept = socket
		elseif event == "stale" then
			kept:push("late", {})
		elseif event == "stale field" then
			return "ok", { topic = kept.topic }
		elseif event == "far miss" then
			return "ok", { x = socket.nope }
		elseif event == "field miss" then
			return "ok", { x = socket.topik }
		elseif event == "method miss" then
			socket:pussh("x", {})
		elseif event == "module miss" then
			luachan.brodcast("rooms:7", "x", {})
		elseif event == "submodule miss" then
			luachan.store.gett("k")
		elseif event == "far module miss" then
			local x = luachan.zzz
		elseif event == "dot call" then
			socket.push("x", {})
		elseif event == "set field" then
			socket.topic = "other"
		elseif event == "replace assigns" then
			socket.assigns = { fresh = true }
		elseif event == "bad payload" then
			socket:push("x", { f = function() end })
		end
	end }`)
	ctx, a := testContext(t), luabind.NewAssigns()
	sock := &fakeSocket{topic: "rooms:7", joinRef: "3", id: "user_socket:9"}
	call := func(event string) (*luabind.Payload, error) {
		t.Helper()
		_, reply, err := s.HandleIn(ctx, sock, a, event, jsonPayload(`{}`))
		return reply, err
	}

	reply, err := call("fields")
	if err != nil {
		t.Fatal(err)
	}
	assertJSON(t, reply.Data, `{"topic":"rooms:7","join_ref":"3","id":"user_socket:9","assigns":"table","str":"socket: rooms:7"}`)
	sock.id = ""
	reply, _ = call("fields")
	if strings.Contains(string(reply.Data), `"id"`) {
		t.Errorf("an empty id is not nil: %s", reply.Data)
	}

	if _, err := call("send"); err != nil {
		t.Fatal(err)
	}
	want := []sent{
		{Topic: "rooms:7", Event: "pushed", Payload: jsonPayload(`{"n":1}`)},
		{Topic: "rooms:7", Event: "replied", Payload: jsonPayload(`{"n":2}`)},
		{Topic: "rooms:7", Event: "all", Payload: jsonPayload(`{"n":3}`), Broadcast: true},
		{Topic: "rooms:7", Event: "others", Payload: jsonPayload(`{"n":4}`), Broadcast: true, ExcludeSelf: true},
		{Topic: "rooms:7", Event: "empty", Payload: jsonPayload(`{}`)},
		{Topic: "rooms:7", Event: "bin", Payload: luabind.Payload{Data: []byte{1, 2}, Binary: true}},
	}
	got := sock.messages()
	if len(got) != len(want) {
		t.Fatalf("sent %+v", got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Topic != w.Topic || g.Event != w.Event || string(g.Payload.Data) != string(w.Payload.Data) ||
			g.Payload.Binary != w.Payload.Binary || g.Broadcast != w.Broadcast || g.ExcludeSelf != w.ExcludeSelf {
			t.Errorf("message %d: got %+v, want %+v", i, g, w)
		}
	}
	if hs := host.messages(); len(hs) != 1 || hs[0].Topic != "rooms:superadmin" || hs[0].Event != "copy" || string(hs[0].Payload.Data) != `{"n":5}` {
		t.Errorf("host got %+v", hs)
	}

	if _, err := call("replace assigns"); err != nil {
		t.Fatal(err)
	}
	data, _ := a.JSON()
	assertJSON(t, data, `{"fresh":true}`)

	if _, err := call("keep"); err != nil {
		t.Fatal(err)
	}
	errTests := []struct{ event, want string }{
		{"stale", "socket used after its callback returned"},
		{"stale field", "socket used after its callback returned"},
		// a misspelled name raises naming it, where a plain table's nil would fail later with
		// "attempt to call a non-function object"
		{"far miss", "socket.nope does not exist"},
		{"field miss", "socket.topik does not exist (did you mean socket.topic?)"},
		{"method miss", "socket:pussh does not exist (did you mean socket:push?)"},
		{"module miss", "luachan.brodcast does not exist (did you mean luachan.broadcast?)"},
		{"submodule miss", "luachan.store.gett does not exist (did you mean luachan.store.get?)"},
		{"far module miss", "luachan.zzz does not exist"},
		{"dot call", "socket expected"},
		{"set field", "socket.topic is read-only"},
		{"bad payload", "cannot encode function at payload.f"},
	}
	for _, tc := range errTests {
		t.Run(tc.event, func(t *testing.T) {
			_, err := call(tc.event)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if se := asScriptError(t, err); se.Line == 0 {
				t.Errorf("no line in %#v", se)
			}
		})
	}
}

func TestNoHost(t *testing.T) {
	opts, _, _ := testOptions(t)
	opts.Host = nil
	s := mustLoad(t, opts, `return { topic = 'a', join = function() luachan.broadcast("b", "e", {}) return true end }`)
	_, _, err := s.Join(testContext(t), newFakeSocket("a"), nil, "a", jsonPayload(`{}`))
	if err == nil || !strings.Contains(err.Error(), "no host") {
		t.Errorf("got %v", err)
	}
}

// TestConcurrentHandleOut runs one Outgoing through many VMs at once, as a broadcast to many
// subscribers does; run under -race it shows the shared payload and luachan.null are only read.
func TestConcurrentHandleOut(t *testing.T) {
	opts, _, _ := testOptions(t)
	opts.MaxVMs = 4
	s := mustLoad(t, opts, `return { topic = 'a', join = function() return true end,
		handle_out = function(event, p, socket)
			p.who = socket.assigns.user
			p.null_text = tostring(p.z) .. tostring(luachan.null)
			p.list[#p.list + 1] = socket.assigns.user
			socket:push(event, p)
		end }`)
	o, err := luabind.NewOutgoing(jsonPayload(`{"z":null,"list":[1]}`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("u%d", i)
			a, _ := luabind.AssignsFromJSON([]byte(`{"user":"` + user + `"}`))
			sock := newFakeSocket("a")
			for range 50 {
				if err := s.HandleOut(ctx, sock, a, "m", o); err != nil {
					t.Error(err)
					return
				}
			}
			want := `{"z":null,"list":[1,"` + user + `"],"who":"` + user + `","null_text":"nullnull"}`
			for _, m := range sock.messages() {
				if string(m.Payload.Data) != want {
					t.Errorf("got %s, want %s", m.Payload.Data, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// A Holder keeps one VM across calls: globals a call writes are gone at the next, a call
// that ran out of budget gives its broken VM up (the next call gets a fresh one), and the
// pool sees the VM again only after Release.
func TestHolder(t *testing.T) {
	opts, _, _ := testOptions(t)
	opts.MaxVMs = 1
	opts.Timeout = 50 * time.Millisecond
	s := mustLoad(t, opts, `return { topic = 'rooms:*', join = function() return true end,
		handle_out = function(event, p, socket)
			if event == "spin" then while true do end end
			socket:push(event, { leftover = leftover ~= nil })
			leftover = true
		end }`)
	ctx := testContext(t)
	sock := newFakeSocket("rooms:1")
	out, err := luabind.NewOutgoing(jsonPayload(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	var h luabind.Holder
	for range 3 {
		if err := s.HandleOutHeld(ctx, &h, sock, nil, "ev", out); err != nil {
			t.Fatal(err)
		}
	}
	// The one VM is held: a call without the holder waits for it.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	err = s.HandleOut(short, sock, nil, "ev", out)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "waiting for a VM") {
		t.Fatalf("HandleOut while the VM is held: got %v, want a wait for a VM", err)
	}
	err = s.HandleOutHeld(ctx, &h, sock, nil, "spin", out)
	if se := asScriptError(t, err); !se.Timeout {
		t.Fatalf("spin: got %v, want a timeout", err)
	}
	if err := s.HandleOutHeld(ctx, &h, sock, nil, "ev", out); err != nil {
		t.Fatalf("after a timeout: %v", err)
	}
	// TryHold does not wait: with the one VM held elsewhere it says no.
	var other luabind.Holder
	if other.TryHold(ctx, s) {
		t.Fatal("TryHold got a VM while the only one is held")
	}
	h.Release()
	if err := s.HandleOut(ctx, sock, nil, "ev", out); err != nil {
		t.Fatalf("after Release: %v", err)
	}
	if !other.TryHold(ctx, s) || !other.TryHold(ctx, s) {
		t.Fatal("TryHold got no VM while one is free, or lost the one it held")
	}
	other.Release()
	msgs := sock.messages()
	if len(msgs) != 5 {
		t.Fatalf("%d pushes, want 5", len(msgs))
	}
	for _, m := range msgs {
		assertJSON(t, m.Payload.Data, `{"leftover":false}`)
	}
}

// waitStore is a store whose reads take a while, like Redis across a network.
type waitStore struct {
	*store.Memory
	wait time.Duration
}

func (s waitStore) Get(key string) ([]byte, bool, error) {
	time.Sleep(s.wait)
	return s.Memory.Get(key)
}

// HandleOutWait follows how long handle_out waits on the store: up after calls that read a
// slow store, back down after calls that do not use it; time spent computing does not count.
func TestHandleOutWait(t *testing.T) {
	opts, _, _ := testOptions(t)
	opts.Host = &waitHost{
		hookHost: &hookHost{presence: &recPresence{}},
		store:    waitStore{store.NewMemory(), 5 * time.Millisecond},
	}
	s := mustLoad(t, opts, `return { topic = 'rooms:*', join = function() return true end,
		handle_out = function(event, p, socket)
			if event == "read" then luachan.store.get("k") end
			if event == "compute" then local t = luachan.now(); while luachan.now() - t < 10 do end end
		end }`)
	ctx := testContext(t)
	sock := newFakeSocket("rooms:1")
	call := func(event string, n int) time.Duration {
		t.Helper()
		for range n {
			if err := s.HandleOut(ctx, sock, nil, event, nil); err != nil {
				t.Fatal(err)
			}
		}
		return s.HandleOutWait()
	}
	if got := call("compute", 3); got != 0 {
		t.Fatalf("wait after calls that only compute: %v, want 0", got)
	}
	waited := call("read", 4)
	if waited < time.Millisecond { // 5 ms each, 1 - (7/8)^4 of it
		t.Fatalf("wait after reading a 5 ms store 4 times: %v, want at least 1ms", waited)
	}
	if got := call("none", 100); got > waited/100 {
		t.Fatalf("wait after 100 calls without the store: %v (it was %v)", got, waited)
	}
}

// waitHost is a hookHost whose store is a waitStore.
type waitHost struct {
	*hookHost
	store luabind.Store
}

func (h *waitHost) Store() luabind.Store { return h.store }

// TestReplyStatusNearMiss: a status that looks like a slip for "ok" or "error" still goes to
// the client (Phoenix passes any status) but is a warning, once per script version and
// status; a custom status, short ones like ack or err included, is no warning.
func TestReplyStatusNearMiss(t *testing.T) {
	opts, _, logs := testOptions(t)
	s := mustLoad(t, opts, `return { topic = 'a', join = function() return true end,
		handle_in = function(event) return event, {} end }`)
	for _, status := range []string{"okk", "okk", "OK", "eror", "ok", "error", "retry_later", "ack", "nak", "nok", "okay", "err", "mirror"} {
		got, _, err := s.HandleIn(testContext(t), newFakeSocket("a"), luabind.NewAssigns(), status, jsonPayload(`{}`))
		if err != nil || got != status {
			t.Fatalf("status %q: got %q, %v", status, got, err)
		}
	}
	var warned []string
	for _, l := range logs.lines(t) {
		if l["msg"] == "script warning" {
			warned = append(warned, fmt.Sprint(l["warning"]))
		}
	}
	want := []string{
		`handle_in replied with status "okk": did you mean ok? (the client's receive("ok") never matches it)`,
		`handle_in replied with status "OK": did you mean ok? (the client's receive("ok") never matches it)`,
		`handle_in replied with status "eror": did you mean error? (the client's receive("error") never matches it)`,
	}
	if !slices.Equal(warned, want) {
		t.Errorf("warnings %q, want %q", warned, want)
	}
}

// TestHandleCallHasNoAssigns: handle_call's socket is the caller's channel without its
// assigns; reading or setting socket.assigns there is an error saying what to do, where an
// empty table would have kept nothing written to it.
func TestHandleCallHasNoAssigns(t *testing.T) {
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, `return { topic = 'a', join = function() return true end,
		handle_call = function(msg, state, socket)
			if msg == "read" then return socket.assigns.user, state end
			if msg == "set" then socket.assigns = { user = "x" } return nil, state end
			return socket.topic, state
		end }`)
	ctx := testContext(t)
	if reply, _, err := s.HandleCall(ctx, newFakeSocket("a"), []byte(`"topic"`), []byte(`{}`)); err != nil || string(reply) != `"a"` {
		t.Fatalf("socket.topic in handle_call: %s, %v", reply, err)
	}
	for _, msg := range []string{`"read"`, `"set"`} {
		_, _, err := s.HandleCall(ctx, newFakeSocket("a"), []byte(msg), []byte(`{}`))
		if err == nil || !strings.Contains(err.Error(), "socket.assigns is not available in handle_call") {
			t.Errorf("%s socket.assigns in handle_call: %v, want an error saying it is not available", msg, err)
		}
	}
}
