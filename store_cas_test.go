package luachan_test

// SPEC section 11: luachan.store.cas, set with { ttl } and ttl through the real binary, on
// two nodes sharing a broker (Redis, then NATS).

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

// storeCASLua serves "sc:*": "casincr" adds 1 to payload.key payload.times times, each
// with a get and a cas retried until it wins; "set" sets payload.key (with payload.ttl
// when given); "get" replies with the value and ttl of payload.key.
const storeCASLua = `local sc = { topic = "sc:*" }

function sc.join() return true end

function sc.handle_in(event, p)
  local store = luachan.store
  if event == "casincr" then
    local tries = 0
    for _ = 1, p.times do
      repeat
        tries = tries + 1
        local n = store.get(p.key)
      until store.cas(p.key, n, (n or 0) + 1)
    end
    return "ok", { tries = tries }
  elseif event == "set" then
    store.set(p.key, p.value, p.ttl and { ttl = p.ttl } or nil)
    return "ok", {}
  elseif event == "get" then
    return "ok", { value = store.get(p.key), ttl = store.ttl(p.key) }
  end
end

return sc
`

// TestStoreCASAcrossNodes: cas-increment loops from clients on two nodes end at exactly
// the total, and a value set with a ttl on one node expires on the other.
func TestStoreCASAcrossNodes(t *testing.T) {
	t.Parallel()
	forEachBroker(t, testStoreCASAcrossNodes)
}

func testStoreCASAcrossNodes(t *testing.T, b testBroker) {
	dir := writeScripts(t, map[string]string{"sc.lua": storeCASLua})
	nodes := startNodes(t, 2, dir, b.url(), "-script-timeout", "10s")
	const clients, times = 8, 25
	var (
		mu    sync.Mutex
		tries int
	)
	t.Run("clients", func(t *testing.T) {
		for i := range clients {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				topic := fmt.Sprintf("sc:c%d", i)
				c := joinAs(t, nodes[i%2], topic, "1", fmt.Sprint(i))
				c.send(fmt.Sprintf(`["1","2",%q,"casincr",{"key":"count","times":%d}]`, topic, times))
				f := c.readArray()
				reply, _ := f[4].(map[string]any)
				resp, _ := reply["response"].(map[string]any)
				n, err := strconv.Atoi(fmt.Sprint(resp["tries"]))
				if reply["status"] != "ok" || err != nil {
					t.Fatalf("casincr reply %v", f)
				}
				mu.Lock()
				tries += n
				mu.Unlock()
			})
		}
	})
	if t.Failed() {
		return
	}
	t.Logf("%d cas increments took %d tries", clients*times, tries)
	c := joinAs(t, nodes[1], "sc:check", "1", "check")
	c.send(`["1","2","sc:check","get",{"key":"count"}]`)
	c.expect(fmt.Sprintf(`["1","2","sc:check","phx_reply",{"status":"ok","response":{"value":%d,"ttl":false}}]`, clients*times))

	// A ttl set on one node is seen, and runs out, on the other.
	a := joinAs(t, nodes[0], "sc:a", "1", "a")
	a.send(`["1","2","sc:a","set",{"key":"t","value":"v","ttl":2}]`)
	a.expect(`["1","2","sc:a","phx_reply",{"status":"ok","response":{}}]`)
	c.send(`["1","3","sc:check","get",{"key":"t"}]`)
	resp := replyResponse(t, c)
	var left float64
	if err := json.Unmarshal(resp["ttl"], &left); err != nil || string(resp["value"]) != `"v"` || left <= 0 || left > 2 {
		t.Fatalf("get on the other node = %s, %s; want \"v\" with a ttl in (0, 2]", resp["value"], resp["ttl"])
	}
	ref := 3
	err := poll(10*time.Second, func() error {
		ref++
		c.send(fmt.Sprintf(`["1","%d","sc:check","get",{"key":"t"}]`, ref))
		if r := replyResponse(t, c); len(r) != 0 {
			return fmt.Errorf("still there: %v", r)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the value set with ttl 2 did not expire: %v", err)
	}
}

// replyResponse reads c's next frame, a phx_reply with status ok, and returns its
// response's fields as JSON text.
func replyResponse(tb testing.TB, c *wsClient) map[string]json.RawMessage {
	tb.Helper()
	f := c.read()
	var msg []json.RawMessage
	var reply struct {
		Status   string                     `json:"status"`
		Response map[string]json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal(f.data, &msg); err != nil || len(msg) != 5 || json.Unmarshal(msg[4], &reply) != nil || reply.Status != "ok" {
		tb.Fatalf("want an ok phx_reply, got %s", f)
	}
	return reply.Response
}
