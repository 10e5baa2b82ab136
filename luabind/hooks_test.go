package luabind_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/luachan/luachan/luabind"
	"github.com/luachan/luachan/store"
)

// recPresence records Presence calls.
type recPresence struct {
	mu    sync.Mutex
	calls []string
}

func (p *recPresence) record(format string, args ...any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, fmt.Sprintf(format, args...))
	return nil
}

func (p *recPresence) Track(s luabind.Socket, key string, meta []byte) error {
	return p.record("track %s %s %s", s.Topic(), key, meta)
}

func (p *recPresence) Update(s luabind.Socket, key string, meta []byte) error {
	return p.record("update %s %s %s", s.Topic(), key, meta)
}

func (p *recPresence) Untrack(s luabind.Socket, key string) error {
	return p.record("untrack %s %s", s.Topic(), key)
}

func (p *recPresence) List(topic string) ([]byte, error) {
	return []byte(`{"u1":{"metas":[{"phx_ref":"r1"}]}}`), p.record("list %s", topic)
}

// hookHost is a Host with a store and presence.
type hookHost struct {
	fakeHost
	store    *store.Memory
	presence *recPresence
}

func (h *hookHost) Store() luabind.Store       { return h.store }
func (h *hookHost) Presence() luabind.Presence { return h.presence }

// timerSocket is a Socket with After.
type timerSocket struct {
	*fakeSocket
	after []string
}

func (s *timerSocket) After(ms int, msg []byte) error {
	s.after = append(s.after, fmt.Sprintf("%d %s", ms, msg))
	return nil
}

func TestHooks(t *testing.T) {
	opts, _, _ := testOptions(t)
	host := &hookHost{store: store.NewMemory(), presence: &recPresence{}}
	opts.Host = host
	s := mustLoad(t, opts, `return { topic = 'rooms:*', join = function() return true end,
		handle_in = function(event, p, socket)
			if event == "store" then
				local store = luachan.store
				store.set("a", { n = 1, list = { 1, 2 } })
				store.set("s", "text")
				local missing = store.get("missing")
				local first, second = store.incr("count"), store.incr("count", 5)
				store.set("gone", 1) store.set("gone", nil)
				store.set("del", 1) store.del("del")
				return "ok", { a = store.get("a"), s = store.get("s"), missing = missing == nil,
					first = first, second = second, gone = store.get("gone") == nil, del = store.get("del") == nil }
			elseif event == "presence" then
				luachan.presence.track(socket, "u1", { online_at = 1 })
				luachan.presence.update(socket, "u1", { status = "away" })
				luachan.presence.track(socket, "u2")
				luachan.presence.untrack(socket, "u1")
				return "ok", { list = luachan.presence.list(socket.topic) }
			elseif event == "after" then
				socket:after(100, { tick = 1 })
				socket:after(0, "s")
				socket:after(5)
			elseif event == "after bad" then
				socket:after(-1, {})
			elseif event == "incr bad" then
				luachan.store.incr("x", 1.5)
			elseif event == "set function" then
				luachan.store.set("x", print)
			elseif event == "list meta" then
				luachan.presence.track(socket, "u", { 1, 2 })
			end
		end }`)
	ctx := testContext(t)
	sock := &timerSocket{fakeSocket: newFakeSocket("rooms:1")}
	call := func(event string) (string, error) {
		_, reply, err := s.HandleIn(ctx, sock, nil, event, jsonPayload(`{}`))
		if reply == nil {
			return "", err
		}
		return string(reply.Data), err
	}

	got, err := call("store")
	if err != nil {
		t.Fatal(err)
	}
	assertJSON(t, []byte(got), `{"a":{"n":1,"list":[1,2]},"s":"text","missing":true,"first":1,"second":6,"gone":true,"del":true}`)
	if v, _, _ := host.store.Get("a"); !strings.Contains(string(v), `"list":[1,2]`) {
		t.Errorf("stored %s", v)
	}

	got, err = call("presence")
	if err != nil {
		t.Fatal(err)
	}
	assertJSON(t, []byte(got), `{"list":{"u1":{"metas":[{"phx_ref":"r1"}]}}}`)
	want := []string{`track rooms:1 u1 {"online_at":1}`, `update rooms:1 u1 {"status":"away"}`, `track rooms:1 u2 {}`, `untrack rooms:1 u1`, `list rooms:1`}
	if fmt.Sprint(host.presence.calls) != fmt.Sprint(want) {
		t.Errorf("presence calls %q", host.presence.calls)
	}

	if _, err := call("after"); err != nil {
		t.Fatal(err)
	}
	if want := []string{`100 {"tick":1}`, `0 "s"`, `5 `}; fmt.Sprint(sock.after) != fmt.Sprint(want) {
		t.Errorf("after calls %q", sock.after)
	}

	for event, want := range map[string]string{
		"after bad":    "milliseconds must be a number",
		"incr bad":     "must be an integer",
		"set function": "cannot encode function",
		"list meta":    "meta must be a table with string keys",
	} {
		if _, err := call(event); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", event, err, want)
		}
	}

	// Without the hooks, scripts get an error saying so.
	opts.Host = &fakeHost{}
	bare := mustLoad(t, opts, `return { topic = 'a', join = function() return true end,
		handle_in = function(event, p, socket)
			if event == "store" then luachan.store.get("x") end
			if event == "presence" then luachan.presence.list("a") end
			if event == "after" then socket:after(1, {}) end
		end }`)
	for event, want := range map[string]string{
		"store":    "luachan.store.get: no store on this server",
		"presence": "luachan.presence.list: no presence on this server",
		"after":    "socket:after is not available",
	} {
		if _, _, err := bare.HandleIn(ctx, newFakeSocket("a"), nil, event, jsonPayload(`{}`)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", event, err, want)
		}
	}
}

// disconnectHost is a Host with Disconnect.
type disconnectHost struct {
	fakeHost
	ids []string
}

func (h *disconnectHost) Disconnect(id string) error {
	h.ids = append(h.ids, id)
	return nil
}

func TestDisconnectHook(t *testing.T) {
	src := `return { topic = 't', join = function() return true end,
		handle_in = function(event, p) luachan.disconnect(p.id) end }`
	t.Run("reaches the host", func(t *testing.T) {
		opts, _, _ := testOptions(t)
		host := &disconnectHost{}
		opts.Host = host
		s := mustLoad(t, opts, src)
		if _, _, err := s.HandleIn(testContext(t), newFakeSocket("t"), nil, "go", jsonPayload(`{"id":"user:7"}`)); err != nil {
			t.Fatal(err)
		}
		if len(host.ids) != 1 || host.ids[0] != "user:7" {
			t.Fatalf("Disconnect got %q, want [user:7]", host.ids)
		}
	})
	t.Run("without the hook it is a script error", func(t *testing.T) {
		opts, _, _ := testOptions(t)
		s := mustLoad(t, opts, src)
		_, _, err := s.HandleIn(testContext(t), newFakeSocket("t"), nil, "go", jsonPayload(`{"id":"x"}`))
		if err == nil || !strings.Contains(err.Error(), "luachan.disconnect is not available") {
			t.Fatalf("err = %v, want 'luachan.disconnect is not available'", err)
		}
	})
}
