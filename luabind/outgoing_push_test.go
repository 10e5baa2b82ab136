package luabind_test

import (
	"strings"
	"testing"

	"github.com/luachan/luachan/luabind"
)

// editScript's handle_out applies the edit named by the event to its payload, pushes the
// payload as luachan.json.encode writes it (event "want", binary) and then the payload itself.
const editScript = `
local edits = {
	none = function(p) end,
	add = function(p) p.to = "x" end,
	change = function(p) p.s = 2 end,
	change_same = function(p) p.s = p.s end,
	change_back = function(p) local s = p.s; p.s = 99; p.s = s end,
	remove = function(p) p.s = nil end,
	remove_readd = function(p) local s = p.s; p.s = nil; p.s = s end,
	nested = function(p) p.o.a = "changed" end,
	nested_add = function(p) p.o.z = 1 end,
	nested_remove = function(p) p.o.a = nil end,
	deep = function(p) p.o.deep.list[2] = 20 end,
	array_append = function(p) table.insert(p.list, 4) end,
	array_remove = function(p) table.remove(p.list) end,
	array_empty = function(p) p.list = {} end,
	empty_mark = function(p) p.empty = {} end,
	same_new_table = function(p) p.o = { a = "b", deep = { list = luachan.array(1, 2) } } end,
	reordered = function(p) local o = p.o; p.o = nil; p.o = o end,
	swap = function(p) p.s, p.t = p.t, p.s end,
	shared = function(p) p.o2 = p.o end,
	number_key = function(p) p[1] = "one" end,
	mark = function(p) p.o = setmetatable({ a = "b", deep = { list = luachan.array(1, 2) } }, {}) end,
	same_mark = function(p) p.empty = luachan.array() end,
	list_unmarked = function(p) p.o.deep.list = { 1, 2 } end,
	cycle = function(p) p.o.self = p end,
	func = function(p) p.f = function() end end,
	nested_func = function(p) p.o.f = function() end end,
	other_table = function(p) return { s = p.s } end,
	nested_only = function(p) return p.o end,
}
return { topic = 'a', join = function() return true end,
	handle_out = function(event, p, socket)
		local q = edits[event](p) or p
		local ok, want = pcall(luachan.json.encode, q)
		if ok then
			socket:push("want", want)
		else
			socket:push("want", "error: " .. want)
		end
		local ok, err = pcall(socket.push, socket, event, q)
		if not ok then
			socket:push("error", err)
		end
	end }`

const editPayload = `{"s":1,"t":"a \"quoted\" é string","o":{"a":"b","deep":{"list":[1,2]}},"list":[1,2,3],"empty":[],"n":null,"f":1.5}`

// TestHandleOutPushEncodesAsTheEncoder checks that however handle_out changes its payload,
// or does not, what it pushes is exactly what encoding the table gives (the reference is
// luachan.json.encode, the same encoder without the payload's bytes to reuse).
func TestHandleOutPushEncodesAsTheEncoder(t *testing.T) {
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, editScript)
	ctx := testContext(t)
	o, err := luabind.NewOutgoing(jsonPayload(editPayload))
	if err != nil {
		t.Fatal(err)
	}
	for _, event := range []string{
		"none", "add", "change", "change_same", "change_back", "remove", "remove_readd",
		"nested", "nested_add", "nested_remove", "deep", "array_append", "array_remove",
		"array_empty", "empty_mark", "same_new_table", "reordered", "swap", "shared",
		"number_key", "mark", "same_mark", "list_unmarked", "cycle", "func", "nested_func", "other_table", "nested_only",
	} {
		t.Run(event, func(t *testing.T) {
			sock := newFakeSocket("a")
			if err := s.HandleOut(ctx, sock, luabind.NewAssigns(), event, o); err != nil {
				t.Fatal(err)
			}
			got := sock.messages()
			if len(got) != 2 || got[0].Event != "want" {
				t.Fatalf("pushed %d messages: %+v", len(got), got)
			}
			want := string(got[0].Payload.Data)
			if msg, failed := strings.CutPrefix(want, "error: "); failed {
				if got[1].Event != "error" {
					t.Fatalf("pushed %s %s, want an error like %q", got[1].Event, got[1].Payload.Data, msg)
				}
				// The same complaint, about the payload rather than the value.
				_, why, _ := strings.Cut(msg, "luachan.json.encode: ")
				why = strings.Replace(why, " at value", " at payload", 1)
				if !strings.Contains(string(got[1].Payload.Data), why) {
					t.Errorf("error %q, want one with %q", got[1].Payload.Data, why)
				}
				return
			}
			if got[1].Event != event || string(got[1].Payload.Data) != want {
				t.Errorf("pushed %s %s\nwant %s", got[1].Event, got[1].Payload.Data, want)
			}
		})
	}
}

// TestHandleOutUnchangedPushIsTheBroadcast checks that a payload pushed unchanged goes out
// as the broadcast's own bytes, and that a change one subscriber's handle_out makes, nested
// or not, reaches neither the next subscriber's copy nor what it pushes.
func TestHandleOutUnchangedPushIsTheBroadcast(t *testing.T) {
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, editScript)
	ctx := testContext(t)
	data := []byte(`{"s":1,"t":"a","o":{"a":"b","deep":{"list":[1,2]}},"list":[1,2,3],"empty":[]}`)
	o, err := luabind.NewOutgoing(luabind.Payload{Data: data})
	if err != nil {
		t.Fatal(err)
	}
	for _, event := range []string{"none", "nested", "none", "deep", "none", "array_append", "none", "add", "none"} {
		sock := newFakeSocket("a")
		if err := s.HandleOut(ctx, sock, luabind.NewAssigns(), event, o); err != nil {
			t.Fatal(err)
		}
		got := sock.messages()[1].Payload.Data
		if event != "none" {
			if string(got) == string(data) {
				t.Errorf("%s: pushed the broadcast unchanged", event)
			}
			continue
		}
		if string(got) != string(data) || &got[0] != &data[0] {
			t.Errorf("%s: pushed %s, want the broadcast's own bytes %s", event, got, data)
		}
	}
}
