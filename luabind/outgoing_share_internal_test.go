package luabind

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

// TestPayloadLent: a held VM lends a lendable handle_out the payload, one table for every
// call of a broadcast, unless a field that may leave the call is a table; others get copies.
func TestPayloadLent(t *testing.T) {
	ctx := context.Background()
	load := func(handleOut string) *Script {
		s, err := LoadSource(Options{}, "test.lua", []byte(`local function seen(m) return type(m) end
			return { topic = 'a', join = function() return true end, handle_out = `+handleOut+` }`))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	out := func(data string) *Outgoing {
		o, err := NewOutgoing(Payload{Data: []byte(data)})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	// lentTables runs handle_out of s for o on one held VM three times, and returns the
	// tables the calls got.
	lentTables := func(s *Script, o *Outgoing) []*lua.LTable {
		var h Holder
		defer h.Release()
		if !h.TryHold(ctx, s) {
			t.Fatal("no VM")
		}
		var got []*lua.LTable
		for range 3 {
			v, l := h.v.payloadFor(o)
			if l != nil {
				l.restore(h.v.outPlan.written)
			}
			got = append(got, v.(*lua.LTable))
		}
		return got
	}
	same := func(ts []*lua.LTable) bool { return ts[0] == ts[1] && ts[1] == ts[2] }

	edit := load(`function(event, payload, socket) payload.to = socket.id socket:push(event, payload) end`)
	if ts := lentTables(edit, out(`{"a":1,"m":{"x":1}}`)); !same(ts) {
		t.Error("a lendable handle_out got a copy per call")
	}
	keep := load(`function(event, payload, socket) _G.kept = payload end`)
	if ts := lentTables(keep, out(`{"a":1}`)); ts[0] == ts[1] {
		t.Error("a handle_out that keeps its payload was lent it")
	}
	passes := load(`function(event, payload, socket) if seen(payload.m) then socket:push(event, payload) end end`)
	if ts := lentTables(passes, out(`{"a":1,"m":"scalar"}`)); !same(ts) {
		t.Error("a field passed on that is not a table: got a copy per call")
	}
	if ts := lentTables(passes, out(`{"a":1,"m":{"x":1}}`)); ts[0] == ts[1] {
		t.Error("a field passed on that is a table: lent")
	}
}

// sentPayloads is a Socket that keeps what is pushed to it.
type sentPayloads struct {
	id   string
	sent []string
}

func (s *sentPayloads) Topic() string   { return "a" }
func (s *sentPayloads) JoinRef() string { return "1" }
func (s *sentPayloads) ID() string      { return s.id }
func (s *sentPayloads) Push(event string, p Payload) error {
	s.sent = append(s.sent, event+" "+string(p.Data))
	return nil
}
func (s *sentPayloads) Broadcast(string, Payload, bool) error { return nil }

// TestLentPayloadLooksCopied: calls on a held VM, lent the payload, push exactly what calls
// given copies push (fields set in either order, removed, changed, a call that fails after
// a change), over more broadcasts at once than a VM keeps lent; and a handle_out that keeps
// its payload, or changes a table a field holds, still gets copies.
func TestLentPayloadLooksCopied(t *testing.T) {
	ctx := context.Background()
	s, err := LoadSource(Options{}, "test.lua", []byte(`
		local kept = {}
		local function bump(m) if type(m) == "table" then m.n = (m.n or 0) + 1 return m.n end return 0 end
		return { topic = 'a', join = function() return true end,
		handle_out = function(event, payload, socket)
			if event == "ab" then payload.a = 1 payload.b = 2
			elseif event == "ba" then payload.b = 2 payload.a = 1
			elseif event == "drop" then payload.s = nil
			elseif event == "change" then payload.s = socket.id
			elseif event == "fail" then payload.x = 1 error("no")
			elseif event == "same" then payload.s = payload.s
			elseif event == "readd" then local s = payload.s payload.s = nil payload.a = 1 payload.s = s payload.a = nil
			elseif event == "nested" then payload.m = { k = { 1, 2 } }
			end
			socket:push(event, payload)
		end }`))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var outs []*Outgoing
	for i := range lentSlots + 8 {
		o, err := NewOutgoing(Payload{Data: fmt.Appendf(nil, `{"s":%d,"m":{"k":[1,2]},"z":"zed"}`, i)})
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, o)
	}
	events := []string{"ab", "ba", "none", "drop", "change", "fail", "none", "same", "readd", "nested"}
	var h Holder
	defer h.Release()
	if !h.TryHold(ctx, s) {
		t.Fatal("no VM")
	}
	calls := 0
	// A few broadcasts at a time, each lent to call after call; then all of them, more
	// than the VM keeps lent.
	for round := range 3 * len(events) {
		window := outs[:5]
		if round >= 2*len(events) {
			window = outs
		}
		for j, o := range window {
			event := events[(round+j)%len(events)]
			id := fmt.Sprintf("s%d", calls)
			calls++
			held, copied := &sentPayloads{id: id}, &sentPayloads{id: id}
			herr := s.HandleOutHeld(ctx, &h, held, nil, event, o)
			cerr := s.HandleOut(ctx, copied, nil, event, o)
			if (herr == nil) != (cerr == nil) || !slices.Equal(held.sent, copied.sent) {
				t.Fatalf("%s on broadcast %d: held pushed %q (%v), with a copy %q (%v)", event, j, held.sent, herr, copied.sent, cerr)
			}
		}
	}
	// The calls were lent the payload: the VM holds lent tables of the last broadcasts.
	lentOut := 0
	for _, l := range h.v.lent {
		if l.t != nil {
			lentOut++
		}
	}
	if lentOut != lentSlots {
		t.Fatalf("%d of the VM's %d lent slots hold a table; want all", lentOut, lentSlots)
	}

	// Copies where lending would show: a kept payload, and a field's table changed.
	s2, err := LoadSource(Options{}, "test.lua", []byte(`
		local kept = {}
		local function bump(m) if type(m) == "table" then m.n = (m.n or 0) + 1 return m.n end return 0 end
		return { topic = 'a', join = function() return true end,
		handle_out = function(event, payload, socket)
			if event == "keep" then
				kept[#kept + 1] = payload
				payload.to = socket.id
			elseif event == "report" then
				for _, p in ipairs(kept) do socket:push("kept", { to = p.to }) end
			end
		end }`))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	s3, err := LoadSource(Options{}, "test.lua", []byte(`
		local function bump(m) if type(m) == "table" then m.n = (m.n or 0) + 1 return m.n end return 0 end
		return { topic = 'a', join = function() return true end,
		handle_out = function(event, payload, socket) socket:push(event, { n = bump(payload.m) }) end }`))
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	var h2, h3 Holder
	defer h2.Release()
	defer h3.Release()
	sock := &sentPayloads{}
	for i := range 3 {
		sock.id = fmt.Sprint(i)
		if err := s2.HandleOutHeld(ctx, &h2, sock, nil, "keep", outs[0]); err != nil {
			t.Fatal(err)
		}
		if err := s3.HandleOutHeld(ctx, &h3, sock, nil, "bump", outs[0]); err != nil {
			t.Fatal(err)
		}
		if err := s2.HandleOutHeld(ctx, &h2, sock, nil, "report", outs[0]); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		`bump {"n":1}`, `kept {"to":"0"}`,
		`bump {"n":1}`, `kept {"to":"0"}`, `kept {"to":"1"}`,
		`bump {"n":1}`, `kept {"to":"0"}`, `kept {"to":"1"}`, `kept {"to":"2"}`,
	}
	if !slices.Equal(sock.sent, want) {
		t.Fatalf("pushed %q\nwant %q", sock.sent, want)
	}
}

// TestLentPayloadRandomHandleOuts runs random handle_out functions, made of statements that
// read, set, keep, pass on and push the payload and the tables in it, on a VM that lends
// payloads when planShare allows it and on one that always copies, over the same calls of
// a few broadcasts: every push must be the same. (Kept tables are pushed again later, so a
// payload lent where it was kept, or a field's table changed through a lent payload, shows.)
func TestLentPayloadRandomHandleOuts(t *testing.T) {
	stmts := []string{
		`local x = p.a`,
		`if p.b then p.c = 1 end`,
		`p.a = s.id`,
		`p.b = nil`,
		`p.n = p.a`,
		`p.m = nil`,
		`p.m.k = s.id`,
		`kept[#kept + 1] = p`,
		`kept[#kept + 1] = p.m`,
		`last = p`,
		`keep(p.m)`,
		`keep(p.a)`,
		`s:push("e", p)`,
		`s:push("m", p.m)`,
		`s:push("e", { a = p.a, m = p.m })`,
		`for _, q in ipairs(kept) do s:push("kept", q) end`,
		`if last then s:push("last", last) end`,
		`local f = function() return p end kept[#kept + 1] = f()`,
		`local q = p if s.id == "c3" then q = {} end q.z = 1`,
		`local q = p.m if type(q) == "table" then q.z = s.id end`,
		`p[s.id] = true`,
		`s:push("e", p) p.a = "after"`,
		`keep(p.m.k)`,
		`byKey[p.m] = true`,
		`local x = T + p`,
		`local x = T + p.m`,
		`local x = p.n - T`,
		`local x = T[p]`,
		`local x = T[p.m]`,
		`local k = "a" local f = function() k = "m" end f() keep(p[k])`,
		`keep(p[1]) s:push("first", p[1])`,
		`local q local f = function() kept[#kept + 1] = q end q = p f()`,
		`for q in pairs(byKey) do if type(q) == "table" then q.hit = (q.hit or 0) + 1 s:push("key", q) end end`,
	}
	var outs []*Outgoing
	for _, data := range []string{
		`{"a":"x","b":true,"m":{"k":[1,2]},"n":1}`,
		`{"a":"y","m":"str"}`,
		`{"m":{"k":{"deep":true}},"b":false}`,
		`[{"a":1},{"b":2}]`,
	} {
		o, err := NewOutgoing(Payload{Data: []byte(data)})
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, o)
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	lentSome := 0
	for n := range 2000 {
		var body strings.Builder
		for range 1 + rng.IntN(6) {
			body.WriteString(stmts[rng.IntN(len(stmts))])
			body.WriteString("\n")
		}
		src := `local kept, last, byKey = {}, nil, {}
			local function keep(m) if type(m) == "table" then m.seen = (m.seen or 0) + 1 end kept[#kept + 1] = m end
			local function both(a, b) keep(a) keep(b) return 0 end
			local T = setmetatable({}, { __add = both, __sub = both, __index = function(t, k) keep(k) end })
			return { topic = 'a', join = function() return true end,
			handle_out = function(event, p, s)
			` + body.String() + ` end }`
		s, err := LoadSource(Options{}, "test.lua", []byte(src))
		if err != nil {
			t.Fatalf("%s: %v", body.String(), err)
		}
		var lending, copying Holder
		if !lending.TryHold(ctx, s) || !copying.TryHold(ctx, s) {
			t.Fatal("no VM")
		}
		copying.v.outPlan = sharePlan{}
		if lending.v.outPlan.ok {
			lentSome++
		}
		for call := range 12 {
			o := outs[call%len(outs)]
			a, b := &sentPayloads{id: fmt.Sprintf("c%d", call)}, &sentPayloads{id: fmt.Sprintf("c%d", call)}
			aerr := s.HandleOutHeld(ctx, &lending, a, nil, "x", o)
			berr := s.HandleOutHeld(ctx, &copying, b, nil, "x", o)
			if (aerr == nil) != (berr == nil) || !slices.Equal(a.sent, b.sent) {
				t.Fatalf("body %d:\n%s\ncall %d: lent pushed %q (%v)\ncopies pushed %q (%v)\nplan %+v",
					n, body.String(), call, a.sent, aerr, b.sent, berr, lending.v.outPlan)
			}
		}
		lending.Release()
		copying.Release()
		s.Close()
	}
	if lentSome < 200 {
		t.Fatalf("only %d of 2000 random handle_outs were lent their payload: the test shows little", lentSome)
	}
}
