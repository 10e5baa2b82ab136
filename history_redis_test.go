package luachan_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// historyFrame is a broadcast as a client of a history topic gets it.
type historyFrame struct {
	Ref, Event string
	N          int
}

// readHistoryFrame reads c's next broadcast, skipping replies: its ref (the position)
// and n.
func readHistoryFrame(tb testing.TB, c *wsClient) historyFrame {
	tb.Helper()
	for {
		if f := readFrameOf(tb, c); f.Event != "phx_reply" {
			return f
		}
	}
}

func readFrameOf(tb testing.TB, c *wsClient) historyFrame {
	tb.Helper()
	f := c.read()
	var m struct {
		Ref, Event string
		Payload    struct{ N int }
	}
	if strings.HasPrefix(string(f.data), "[") { // V2: [join_ref, ref, topic, event, payload]
		var a [5]json.RawMessage
		if err := json.Unmarshal(f.data, &a); err != nil {
			tb.Fatalf("frame %s: %v", f.data, err)
		}
		_ = json.Unmarshal(a[1], &m.Ref)
		_ = json.Unmarshal(a[3], &m.Event)
		_ = json.Unmarshal(a[4], &m.Payload)
	} else if err := json.Unmarshal(f.data, &m); err != nil {
		tb.Fatalf("frame %s: %v", f.data, err)
	}
	return historyFrame{Ref: m.Ref, Event: m.Event, N: m.Payload.N}
}

// TestHistoryRedisTwoNodes: with Redis, broadcasts sent on either node, by a socket or
// the API, get one position each, and both nodes deliver them in that order.
func TestHistoryRedisTwoNodes(t *testing.T) {
	t.Parallel()
	historyTwoNodes(t, startRedis(t).url())
}

// historyTwoNodes is TestHistoryRedisTwoNodes on the Redis at url (one Redis, or a
// Cluster).
func historyTwoNodes(t *testing.T, url string) {
	t.Helper()
	nodes := startNodes(t, 2, writeScripts(t, map[string]string{"feed.lua": historyLua}), url, "-api-key", historyKey)
	a := nodes[0].dial(t, "vsn=2.0.0")
	b := nodes[1].dial(t, "vsn=2.0.0")
	cur := joinFeed(t, a, "feed:two", "1", `{"user":"a"}`)["position"]
	if resp := joinFeed(t, b, "feed:two", "1", `{"user":"b"}`); resp["position"] != cur {
		t.Fatalf("the nodes disagree on the position: %v and %v", cur, resp["position"])
	}
	const each = 10
	for i := 1; i <= each; i++ { // from both sockets and both nodes' API, interleaved
		a.send(fmt.Sprintf(`["1",null,"feed:two","say",{"n":%d}]`, i))
		b.send(fmt.Sprintf(`["1",null,"feed:two","say",{"n":%d}]`, 100+i))
		if got := nodes[i%2].post(t, "/api/broadcast", historyKey, fmt.Sprintf(`{"topic":"feed:two","event":"msg","payload":{"n":%d}}`, 200+i)); got != http.StatusAccepted {
			t.Fatalf("POST /api/broadcast: %d", got)
		}
	}
	var got [2][]historyFrame
	for i, c := range []*wsClient{a, b} {
		for range 3 * each {
			got[i] = append(got[i], readHistoryFrame(t, c))
		}
	}
	seen := map[int]bool{}
	for k, f := range got[0] {
		if want := positionAt(t, cur, k+1); f.Ref != want {
			t.Fatalf("node 0's broadcast %d: position %q, want %q", k+1, f.Ref, want)
		}
		if got[1][k] != f {
			t.Fatalf("broadcast %d: node 0 got %+v, node 1 %+v", k+1, f, got[1][k])
		}
		seen[f.N] = true
	}
	if len(seen) != 3*each {
		t.Fatalf("got %d distinct broadcasts, want %d: %v", len(seen), 3*each, got[0])
	}
	// broadcast_from skips its sender on its node only.
	a.send(`["1",null,"feed:two","say_from",{"n":999}]`)
	if f := readHistoryFrame(t, b); f.N != 999 || f.Ref != positionAt(t, cur, 3*each+1) {
		t.Fatalf("node 1 got %+v, want the say_from at %s", f, positionAt(t, cur, 3*each+1))
	}
	b.send(`["1",null,"feed:two","say",{"n":1000}]`)
	for _, c := range []*wsClient{a, b} {
		if f := readHistoryFrame(t, c); f.N != 1000 || f.Ref != positionAt(t, cur, 3*each+2) {
			t.Fatalf("got %+v, want n 1000 at %s", f, positionAt(t, cur, 3*each+2))
		}
	}
}

// TestHistoryRedisRestart: the history, its epoch included, outlives every node: a
// client that was on a node that stopped rejoins a new node with since and recovers.
func TestHistoryRedisRestart(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	dir := writeScripts(t, map[string]string{"feed.lua": historyLua})
	nodes := startNodes(t, 2, dir, rs.url(), "-api-key", historyKey)
	c := nodes[1].dial(t, "vsn=2.0.0")
	cur := joinFeed(t, c, "feed:restart", "1", `{}`)["position"]
	pub := func(s *server, n int) {
		t.Helper()
		if got := s.post(t, "/api/broadcast", historyKey, fmt.Sprintf(`{"topic":"feed:restart","event":"msg","payload":{"n":%d}}`, n)); got != http.StatusAccepted {
			t.Fatalf("POST /api/broadcast: %d", got)
		}
	}
	for n := 1; n <= 3; n++ {
		pub(nodes[0], n)
	}
	for n := 1; n <= 3; n++ {
		if f := readHistoryFrame(t, c); f.Ref != positionAt(t, cur, n) || f.N != n {
			t.Fatalf("broadcast %d: %+v", n, f)
		}
	}
	nodes[1].stop(t) // c's node goes; c misses 4 and 5
	for n := 4; n <= 5; n++ {
		pub(nodes[0], n)
	}
	// The sends are queued: wait until the history has them, then stop the last node.
	if err := poll(readTimeout, func() error {
		if _, pos := historyOf(t, nodes[0], "feed:restart"); pos != positionAt(t, cur, 5) {
			return fmt.Errorf("position %v", pos)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	nodes[0].stop(t)

	fresh := startServer(t, dir, "-pubsub", rs.url(), "-api-key", historyKey)
	d := fresh.dial(t, "vsn=2.0.0")
	resp := joinFeed(t, d, "feed:restart", "1", fmt.Sprintf(`{"since":%q}`, positionAt(t, cur, 3)))
	if resp["recovered"] != true || resp["position"] != positionAt(t, cur, 5) {
		t.Fatalf("rejoin on a new node: %v, want recovered at %s (same epoch)", resp, positionAt(t, cur, 5))
	}
	for n := 4; n <= 5; n++ {
		if f := readHistoryFrame(t, d); f.Ref != positionAt(t, cur, n) || f.N != n {
			t.Fatalf("replayed %+v, want n %d at %s", f, n, positionAt(t, cur, n))
		}
	}
	pub(fresh, 6)
	if f := readHistoryFrame(t, d); f.Ref != positionAt(t, cur, 6) || f.N != 6 {
		t.Fatalf("live after replay: %+v", f)
	}
}

// historyOf reads GET /api/history for topic: the events' positions and the current
// position.
func historyOf(tb testing.TB, s *server, topic string) ([]string, string) {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url("/api/history?topic="+topic), nil)
	req.Header.Set("Authorization", "Bearer "+historyKey)
	resp, err := httpClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var entries []struct {
		Position string `json:"position"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&entries); err != nil {
		tb.Fatalf("GET /api/history: %d %v", resp.StatusCode, err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Position)
	}
	return out, resp.Header.Get("X-History-Position")
}

// TestHistoryRedisRecoveryUnderLoad: while a socket on one node broadcasts up to 1,000
// a second, 100 clients on two nodes leave and rejoin with since in a loop; each sees
// every position once, in order, across rejoins and nodes.
func TestHistoryRedisRecoveryUnderLoad(t *testing.T) {
	rs := startRedis(t)
	nodes := startNodes(t, 2, writeScripts(t, map[string]string{"feed.lua": historyLua}), rs.url(), "-max-rate", "0")
	recoveryUnderLoad(t, nodes, 100)
}

// TestHistoryRedisDown: while Redis is down, a broadcast on a history topic is not
// delivered (it cannot get a position), counted and logged, and a join with since
// answers recovered false instead of risking a gap. Once Redis is back, broadcasts
// flow again.
func TestHistoryRedisDown(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	s := startServer(t, writeScripts(t, map[string]string{"feed.lua": historyLua}), "-pubsub", rs.url(), "-api-key", historyKey)
	a := s.dial(t, "vsn=2.0.0")
	cur := joinFeed(t, a, "feed:down", "1", `{}`)["position"]

	rs.kill(t)
	s.log.waitFor(t, readTimeout, logRedisLost)
	if got := s.post(t, "/api/broadcast", historyKey, `{"topic":"feed:down","event":"msg","payload":{"n":1}}`); got != http.StatusAccepted {
		t.Fatalf("POST /api/broadcast while Redis is down: %d, want 202", got)
	}
	s.log.waitFor(t, 2*readTimeout, `msg="history broadcasts not delivered"`)
	b := s.dial(t, "vsn=2.0.0")
	if resp := joinFeed(t, b, "feed:down", "1", fmt.Sprintf(`{"since":%q}`, cur)); resp["recovered"] != false {
		t.Fatalf("join with since while Redis is down: %v, want recovered false", resp)
	}

	rs.start(t) // an empty Redis: the history starts again, in a new epoch
	s.log.waitFor(t, 3*readTimeout, logRedisBack)
	if got := s.post(t, "/api/broadcast", historyKey, `{"topic":"feed:down","event":"msg","payload":{"n":2}}`); got != http.StatusAccepted {
		t.Fatalf("POST /api/broadcast: %d", got)
	}
	for _, c := range []*wsClient{a, b} {
		if f := readHistoryFrame(t, c); f.N != 2 || !strings.HasSuffix(f.Ref, ":1") {
			t.Fatalf("after Redis is back: %+v, want n 2 at position 1 (n 1 never had one)", f)
		}
	}
}

// TestHistoryRedisRecovery: with Redis, a join with since is replayed through
// handle_out with the subscriber's own assigns, and any since it cannot recover from,
// malformed ones included, answers recovered false with the current position and
// replays nothing.
func TestHistoryRedisRecovery(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	s := startServer(t, writeScripts(t, map[string]string{"feed.lua": historyLua}), "-pubsub", rs.url(), "-api-key", historyKey)
	pub := func(event, payload string) {
		t.Helper()
		if got := s.post(t, "/api/broadcast", historyKey, `{"topic":"feed:rr","event":"`+event+`","payload":`+payload+`}`); got != http.StatusAccepted {
			t.Fatalf("POST /api/broadcast: %d", got)
		}
	}
	c := s.dial(t, "vsn=2.0.0")
	cur := joinFeed(t, c, "feed:rr", "1", `{"user":"x"}`)["position"]
	pub("msg", `{"n":1}`)
	pub("secret", `{"n":2,"to":"a"}`)
	pub("secret", `{"n":3,"to":"b"}`)
	pub("msg", `{"n":4}`)
	for n := 1; n <= 4; n += 3 { // x gets the msgs only
		if f := readHistoryFrame(t, c); f.N != n {
			t.Fatalf("live: %+v, want n %d", f, n)
		}
	}
	d := s.dial(t, "vsn=2.0.0")
	resp := joinFeed(t, d, "feed:rr", "1", fmt.Sprintf(`{"user":"b","since":%q}`, cur))
	if resp["recovered"] != true || resp["position"] != positionAt(t, cur, 4) {
		t.Fatalf("join with since: %v", resp)
	}
	for _, n := range []int{1, 3, 4} { // 2 was for a: handle_out left it out
		if f := readHistoryFrame(t, d); f.N != n || f.Ref != positionAt(t, cur, n) {
			t.Fatalf("replayed %+v, want n %d", f, n)
		}
	}
	for i, since := range []string{
		`"nope:1"`, `"` + positionAt(t, cur, 100) + `"`, `"` + positionAt(t, cur, -1) + `"`, `12`, `{}`, `""`,
		`"` + positionAt(t, cur, 0) + `999999999999999999999"`, `"` + strings.Replace(positionAt(t, cur, 1), ":", "", 1) + `"`,
	} {
		e := s.dial(t, "vsn=2.0.0")
		resp := joinFeed(t, e, "feed:rr", "1", `{"user":"b","since":`+since+`}`)
		if resp["recovered"] != false || resp["position"] != positionAt(t, cur, 4+i) {
			t.Errorf("since %s: %v, want recovered false at %s", since, resp, positionAt(t, cur, 4+i))
		}
		pub("msg", fmt.Sprintf(`{"n":%d}`, 5+i)) // the next frame is live, nothing replayed
		if f := readHistoryFrame(t, e); f.Ref != positionAt(t, cur, 5+i) {
			t.Errorf("since %s: got %+v, want the live broadcast", since, f)
		}
	}
}
