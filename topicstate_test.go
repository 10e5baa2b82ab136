package luachan_test

// SPEC section 11: topic state. handle_call through socket:call, one call at a time per
// topic; handle_tick while the topic has subscribers; terminate after the grace; a crash
// keeps the last good state; a reload keeps the state.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// topicStateLua serves "ts:*": "add" adds one to the topic's counter through socket:call
// and replies the new count, "get" reads it, "boom" makes handle_call raise.
const topicStateLua = `local ts = { topic = "ts:*" }

function ts.init(topic, params) return { n = 0 } end

function ts.join(topic, payload, socket) return true end

function ts.handle_in(event, payload, socket)
  local r, err = socket:call({ op = event })
  if r == nil then return "error", { reason = err } end
  return "ok", r
end

function ts.handle_call(msg, state, socket)
  if msg.op == "add" then
    state.n = state.n + 1
  elseif msg.op == "boom" then
    state.n = -1
    error("boom")
  end
  return { n = state.n, v = 1 }, state
end

return ts
`

// stateTickLua serves "tk:*": a tick every 20 ms broadcasts the tick count; terminate writes the
// count to the store, which "term" in "tk:check" reads.
const stateTickLua = `local tk = { topic = "tk:*", tick = 20 }

function tk.init(topic, params) return { ticks = 0 } end
function tk.join(topic, payload, socket) return true end

function tk.handle_in(event, payload, socket)
  return "ok", { term = luachan.store.get("term:tk:x") }
end

function tk.handle_tick(state, topic)
  state.ticks = state.ticks + 1
  luachan.broadcast(topic, "tick", { n = state.ticks })
  return state
end

function tk.terminate(state, topic)
  luachan.store.set("term:" .. topic, state.ticks)
end

return tk
`

// callReply sends event on topic and returns the reply's status and response. It is safe
// to call from any goroutine (it returns errors rather than failing the test).
func callReply(conn *websocket.Conn, topic, ref, event string) (string, map[string]any, error) {
	return callWithin(conn, topic, ref, event, `{}`, readTimeout)
}

// callWithin sends event with payload on topic and returns the reply's status and
// response, skipping broadcasts, waiting up to wait for each frame; err is a broken or
// silent connection.
func callWithin(conn *websocket.Conn, topic, ref, event, payload string, wait time.Duration) (string, map[string]any, error) {
	msg := fmt.Sprintf(`["1",%q,%q,%q,%s]`, ref, topic, event, payload)
	_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		return "", nil, err
	}
	for {
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		_, data, err := conn.ReadMessage()
		if err != nil {
			return "", nil, fmt.Errorf("waiting for the reply to %s %s: %w", event, ref, err)
		}
		var f []json.RawMessage
		if err := json.Unmarshal(data, &f); err != nil || len(f) != 5 {
			return "", nil, fmt.Errorf("bad frame %s", data)
		}
		var gotRef, ev string
		_ = json.Unmarshal(f[1], &gotRef)
		_ = json.Unmarshal(f[3], &ev)
		if ev != "phx_reply" || gotRef != ref {
			continue // a broadcast
		}
		var r struct {
			Status   string         `json:"status"`
			Response map[string]any `json:"response"`
		}
		if err := json.Unmarshal(f[4], &r); err != nil {
			return "", nil, err
		}
		return r.Status, r.Response, nil
	}
}

func TestTopicState(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ts.lua"), []byte(topicStateLua), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, dir)

	const clients, calls = 10, 50
	socks := make([]*wsClient, clients)
	for i := range socks {
		socks[i] = srv.dial(t, "vsn=2.0.0")
		socks[i].join("ts:a", "1", `{}`, `{}`)
	}
	var mu sync.Mutex
	seen := map[float64]bool{}
	var errs []error
	var wg sync.WaitGroup
	for i, c := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range calls {
				status, r, err := callReply(c.conn, "ts:a", fmt.Sprintf("c%d-%d", i, j), "add")
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case status != "ok":
					errs = append(errs, fmt.Errorf("add: %s %v", status, r))
				case seen[r["n"].(float64)]:
					errs = append(errs, fmt.Errorf("count %v replied twice: calls overlapped", r["n"]))
				default:
					seen[r["n"].(float64)] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	get := func(c *wsClient, topic string) map[string]any {
		t.Helper()
		status, r, err := callReply(c.conn, topic, "g", "get")
		if err != nil || status != "ok" {
			t.Fatalf("get: %s %v %v", status, r, err)
		}
		return r
	}
	if n := get(socks[0], "ts:a")["n"]; n != float64(clients*calls) {
		t.Fatalf("the counter is %v after %d adds", n, clients*calls)
	}

	t.Run("a crash keeps the last good state", func(t *testing.T) {
		status, r, err := callReply(socks[1].conn, "ts:a", "b", "boom")
		if err != nil || status != "error" || !strings.Contains(fmt.Sprint(r["reason"]), "ts.lua:18") {
			t.Fatalf("boom: %s %v %v; want an error naming ts.lua:18", status, r, err)
		}
		srv.log.waitFor(t, readTimeout, `callback=handle_call`, `ts.lua:18`)
		m := metricWithin(t, srv, "luachan_call_errors_total", "1", func(v float64) bool { return v == 1 })
		if m["luachan_calls_total"] < clients*calls+2 || m["luachan_topic_states"] != 1 || m["luachan_topic_states_owned"] != 0 {
			t.Errorf("metrics: calls %v (want at least %d), topic states %v (want 1), owned %v (want 0: no Redis)",
				m["luachan_calls_total"], clients*calls+2, m["luachan_topic_states"], m["luachan_topic_states_owned"])
		}
		if n := get(socks[1], "ts:a")["n"]; n != float64(clients*calls) {
			t.Fatalf("the counter is %v after a failed call; want %d", n, clients*calls)
		}
	})

	t.Run("topics have their own state", func(t *testing.T) {
		c := srv.dial(t, "vsn=2.0.0")
		c.join("ts:b", "1", `{}`, `{}`)
		if n := get(c, "ts:b")["n"]; n != float64(0) {
			t.Fatalf("ts:b starts at %v; want 0", n)
		}
	})

	t.Run("a reload keeps the state", func(t *testing.T) {
		v2 := strings.Replace(topicStateLua, "v = 1", "v = 2", 1)
		if err := os.WriteFile(filepath.Join(dir, "ts.lua"), []byte(v2), 0o644); err != nil {
			t.Fatal(err)
		}
		err := poll(reloadWithin, func() error {
			if r := get(socks[2], "ts:a"); r["v"] != float64(2) {
				return fmt.Errorf("still version %v", r["v"])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := get(socks[2], "ts:a")["n"]; n != float64(clients*calls) {
			t.Fatalf("the counter is %v after the reload; want %d", n, clients*calls)
		}
	})
}

func TestTopicStateTicks(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tk.lua"), []byte(stateTickLua), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, dir)
	c := srv.dial(t, "vsn=2.0.0")
	c.join("tk:x", "1", `{}`, `{}`)
	c.expect(`[null,null,"tk:x","tick",{"n":1}]`)
	c.expect(`[null,null,"tk:x","tick",{"n":2}]`)
	c.send(`["1","2","tk:x","phx_leave",{}]`)
	for f := c.read(); !strings.Contains(string(f.data), `"phx_close"`); f = c.read() {
	}
	// ticks stop with the last subscriber; terminate runs after the grace
	checker := srv.dial(t, "vsn=2.0.0")
	checker.join("tk:check", "1", `{}`, `{}`)
	var term any
	err := poll(terminateWait, func() error {
		_, r, err := callReply(checker.conn, "tk:check", "t", "term")
		if err != nil {
			return err
		}
		if term = r["term"]; term == nil {
			return fmt.Errorf("terminate has not run")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := term.(float64); !ok || n < 2 {
		t.Fatalf("terminate saw %v ticks; want at least 2", term)
	}
	// a new first join starts from init again
	c.join("tk:x", "3", `{}`, `{}`)
	for {
		f := c.read()
		if strings.Contains(string(f.data), `"tick"`) {
			if !strings.Contains(string(f.data), `{"n":1}`) {
				t.Fatalf("after terminate the first tick is %s; want n=1", f)
			}
			break
		}
	}
}

// terminateWait is the 5 s grace before terminate, with slack for a loaded machine.
const terminateWait = 10 * time.Second
