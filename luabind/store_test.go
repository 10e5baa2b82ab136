package luabind_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/luachan/luachan/store"
)

// stoppedClock is a clock that moves only when told.
type stoppedClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stoppedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stoppedClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// storeScript uses luachan.store on each event and replies with what it saw; "%s" is
// where badStoreCalls's branches go.
const storeScript = `return { topic = 'rooms:*', join = function() return true end,
	handle_in = function(event, p)
		local store = luachan.store
		if event == "cas" then
			local got = {}
			got.absent = store.cas("k", nil, { n = 1 })        -- absent: set
			got.again = store.cas("k", nil, { n = 2 })         -- present now: not set
			local cur = store.get("k")
			got.swap = store.cas("k", cur, { n = cur.n + 1 })  -- what get returned matches
			got.stale = store.cas("k", cur, { n = 99 })        -- no longer the value
			got.value = store.get("k")
			got.del = store.cas("k", store.get("k"), nil)      -- nil new deletes
			got.gone = store.get("k") == nil
			got.null = store.cas("z", nil, luachan.null)        -- null is a value
			got.not_absent = store.cas("z", nil, 1)
			got.is_null = store.cas("z", luachan.null, 1)
			got.counted = store.incr("c", 41) and store.cas("c", 41, 42)
			return "ok", got
		elseif event == "roundtrip" then
			-- what get returns matches what is stored, whatever its shape
			store.set("r", { s = "é😀\n\"", f = 0.1, big = 2^53, list = { 1, luachan.null, {} },
				empty = luachan.array(), nested = { b = { c = true }, a = -0.5 }, [3] = "three" })
			return "ok", { matched = store.cas("r", store.get("r"), 1) }
		elseif event == "ttl" then
			store.set("t", "v", { ttl = 2.5 })
			store.set("plain", 1)
			return "ok", { t = store.ttl("t"), plain = store.ttl("plain"), absent = store.ttl("absent") == nil }
		elseif event == "after" then
			return "ok", { t = store.ttl("t"), v = store.get("t") }
		elseif event == "gone" then
			return "ok", { gone = store.get("t") == nil and store.ttl("t") == nil }
		elseif event == "lease" then
			return "ok", { got = store.cas("lease", nil, p.who, { ttl = 1 }) }
		elseif event == "reset" then
			store.set("t", "v", { ttl = 10 }) store.set("t", "w")
			store.set("ms", 1, { ttl = 0.0001 })
			return "ok", { t = store.ttl("t"), ms = store.ttl("ms") }
		%s
		end
	end }`

// badStoreCalls are calls with bad arguments, each with what its error says.
var badStoreCalls = []struct{ src, want string }{
	{`luachan.store.set("k", 1, 60)`, "luachan.store.set: options must be a table such as { ttl = 60 }, not a number"},
	{`luachan.store.set("k", 1, { ttl = 0 })`, "luachan.store.set: ttl must be a number of seconds above 0 and at most 1e9, not 0"},
	{`luachan.store.set("k", 1, { ttl = -1 })`, "ttl must be a number of seconds above 0"},
	{`luachan.store.set("k", 1, { ttl = 0/0 })`, "ttl must be a number of seconds above 0"},
	{`luachan.store.set("k", 1, { ttl = 1e10 })`, "at most 1e9"},
	{`luachan.store.set("k", 1, { ttl = "5" })`, "luachan.store.set: ttl must be a number of seconds, not a string"},
	{`luachan.store.set("k", 1, { TTL = 5 })`, "luachan.store.set: unknown option TTL: the only one is ttl (seconds)"},
	{`luachan.store.cas("k", nil, 1, { ttl = true })`, "luachan.store.cas: ttl must be a number of seconds, not a boolean"},
	{`luachan.store.cas("k", nil)`, "luachan.store.cas: takes key, old and new (nil as new deletes the key)"},
	{`luachan.store.cas("k", print, 1)`, "luachan.store.cas: cannot encode function at old"},
	{`luachan.store.cas("k", nil, { f = print })`, "luachan.store.cas: cannot encode function at new.f"},
	{`luachan.store.ttl()`, "bad argument #1"},
}

// TestStoreCASAndTTL: luachan.store.cas, set with { ttl } and ttl, as scripts see them.
func TestStoreCASAndTTL(t *testing.T) {
	opts, _, _ := testOptions(t)
	clock := &stoppedClock{now: time.Unix(1_700_000_000, 0)}
	opts.Host = &hookHost{store: store.NewMemoryClock(clock.Now), presence: &recPresence{}}
	var branches strings.Builder
	for i, bad := range badStoreCalls {
		fmt.Fprintf(&branches, "elseif event == \"bad%d\" then %s\n", i, bad.src)
	}
	s := mustLoad(t, opts, fmt.Sprintf(storeScript, branches.String()))
	ctx := testContext(t)
	sock := newFakeSocket("rooms:1")
	call := func(event, payload string) (string, error) {
		t.Helper()
		_, reply, err := s.HandleIn(ctx, sock, nil, event, jsonPayload(payload))
		if reply == nil {
			return "", err
		}
		return string(reply.Data), err
	}
	expect := func(event, payload, want string) {
		t.Helper()
		got, err := call(event, payload)
		if err != nil {
			t.Fatalf("%s: %v", event, err)
		}
		assertJSON(t, []byte(got), want)
	}

	expect("cas", `{}`, `{"absent":true,"again":false,"swap":true,"stale":false,"value":{"n":2},"del":true,"gone":true,"null":true,"not_absent":false,"is_null":true,"counted":true}`)

	expect("roundtrip", `{}`, `{"matched":true}`)

	expect("ttl", `{}`, `{"t":2.5,"plain":false,"absent":true}`)
	clock.advance(time.Second)
	expect("after", `{}`, `{"t":1.5,"v":"v"}`)
	clock.advance(1500 * time.Millisecond)
	expect("gone", `{}`, `{"gone":true}`)

	// A lease: the first to take it holds it until its ttl ends.
	expect("lease", `{"who":"a"}`, `{"got":true}`)
	expect("lease", `{"who":"b"}`, `{"got":false}`)
	clock.advance(time.Second)
	expect("lease", `{"who":"b"}`, `{"got":true}`)

	// A plain set clears the ttl; a ttl under a millisecond is one.
	expect("reset", `{}`, `{"t":false,"ms":0.001}`)

	// Bad arguments say what is wrong.
	for i, bad := range badStoreCalls {
		_, err := call(fmt.Sprint("bad", i), `{}`)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: got %v, want %q", bad.src, err, bad.want)
		}
	}
}
