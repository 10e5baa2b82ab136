package luachan_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// historyLua keeps a history of feed:* topics; "secret" goes through handle_out, which
// pushes it only to the user it is for.
const historyLua = `
local feed = { topic = "feed:*", history = { size = 5000, ttl = 60 }, intercept = { "secret" } }

function feed.join(topic, payload, socket)
  socket.assigns.user = payload.user
  return true
end

function feed.handle_in(event, payload, socket)
  if event == "say" then
    socket:broadcast("msg", payload)
  elseif event == "say_from" then
    socket:broadcast_from("msg", payload)
  elseif event == "global" then
    luachan.broadcast(socket.topic, "msg", payload)
  elseif event == "history" then
    local list, ok = luachan.history(socket.topic, { since = payload.since, limit = payload.limit })
    local positions = luachan.array()
    for i, e in ipairs(list) do positions[i] = e.position .. " " .. e.event .. " " .. tostring(e.payload.n) end
    return "ok", { positions = positions, recovered = ok }
  end
  return "ok"
end

function feed.handle_out(event, payload, socket)
  if payload.to == socket.assigns.user then socket:push(event, payload) end
end

return feed
`

const historyKey = "history-key"

// joinFeed joins topic with payload and returns the join reply's response.
func joinFeed(tb testing.TB, c *wsClient, topic, joinRef, payload string) map[string]any {
	tb.Helper()
	c.send(fmt.Sprintf(`[%q,%q,%q,"phx_join",%s]`, joinRef, joinRef, topic, payload))
	var f []any
	if err := json.Unmarshal(c.read().data, &f); err != nil || len(f) != 5 || f[3] != "phx_reply" {
		tb.Fatalf("join reply: %v %v", f, err)
	}
	reply := f[4].(map[string]any)
	if reply["status"] != "ok" {
		tb.Fatalf("join refused: %v", reply)
	}
	return reply["response"].(map[string]any)
}

// readPush reads the next frame and returns its ref, event and payload.
func readPush(tb testing.TB, c *wsClient) (ref any, event string, payload map[string]any) {
	tb.Helper()
	var f []any
	if err := json.Unmarshal(c.read().data, &f); err != nil || len(f) != 5 {
		tb.Fatalf("frame: %v %v", f, err)
	}
	p, _ := f[4].(map[string]any)
	return f[1], f[3].(string), p
}

// position n of the epoch of pos.
func positionAt(tb testing.TB, pos any, n int) string {
	tb.Helper()
	s, ok := pos.(string)
	i := strings.LastIndexByte(s, ':')
	if !ok || i < 0 {
		tb.Fatalf("position %v is not epoch:n", pos)
	}
	return s[:i+1] + strconv.Itoa(n)
}

// TestHistoryPositions: every broadcast on a history topic, whatever sent it, carries
// the topic's next position as its ref, and a handle_out push carries its broadcast's.
func TestHistoryPositions(t *testing.T) {
	s := startServer(t, writeScripts(t, map[string]string{"feed.lua": historyLua}), "-api-key", historyKey)
	a, b := s.dial(t, "vsn=2.0.0"), s.dial(t, "vsn=1.0.0")
	resp := joinFeed(t, a, "feed:1", "1", `{"user":"a"}`)
	pos := resp["position"]
	if pos != positionAt(t, pos, 0) || resp["recovered"] != nil {
		t.Fatalf("first join's response %v: want position at 0, no recovered", resp)
	}
	b.send(`{"topic":"feed:1","event":"phx_join","payload":{"user":"b"},"ref":"1"}`)
	b.read()

	a.send(`["1","2","feed:1","say",{"n":1}]`)
	a.send(`["1","3","feed:1","global",{"n":2}]`)
	if got := s.post(t, "/api/broadcast", historyKey, `{"topic":"feed:1","event":"msg","payload":{"n":3}}`); got != http.StatusAccepted {
		t.Fatalf("POST /api/broadcast: %d", got)
	}
	a.send(`["1","4","feed:1","say",{"n":4,"to":"b"}]`) // only its position: not a secret
	a.send(`["1","5","feed:1","say_from",{"n":5}]`)
	seen := map[int]bool{}
	var refs []string
	for len(seen) < 5 { // b gets 1..5 (a's say_from too), in the order of their positions
		f := b.read()
		var m struct {
			Ref, Event string
			Payload    struct{ N int }
		}
		if err := json.Unmarshal(f.data, &m); err != nil {
			t.Fatal(err)
		}
		if m.Event == "msg" {
			seen[m.Payload.N] = true
			refs = append(refs, m.Ref)
		}
	}
	for i, ref := range refs {
		if want := positionAt(t, pos, i+1); ref != want {
			t.Errorf("broadcast %d: ref %q, want %q", i+1, ref, want)
		}
	}
	// An intercepted broadcast's push carries the broadcast's position.
	s.post(t, "/api/broadcast", historyKey, `{"topic":"feed:1","event":"secret","payload":{"n":6,"to":"b"}}`)
	for {
		f := b.read()
		if strings.Contains(string(f.data), `"event":"secret"`) {
			want := fmt.Sprintf(`{"topic":"feed:1","event":"secret","payload":{"n":6,"to":"b"},"ref":%q}`, positionAt(t, pos, 6))
			if msg := mismatch(want, f); msg != "" {
				t.Fatalf("handle_out push %s, want %s (%s)", f, want, msg)
			}
			break
		}
	}
}

// TestHistoryRecovery: a join with since gets what it missed after its reply, through
// handle_out with its own assigns, then live broadcasts; a since it cannot recover
// from gets recovered false and nothing replayed.
func TestHistoryRecovery(t *testing.T) {
	s := startServer(t, writeScripts(t, map[string]string{"feed.lua": historyLua}), "-api-key", historyKey)
	pub := func(event, payload string) {
		t.Helper()
		if got := s.post(t, "/api/broadcast", historyKey, `{"topic":"feed:r","event":"`+event+`","payload":`+payload+`}`); got != http.StatusAccepted {
			t.Fatalf("POST /api/broadcast: %d", got)
		}
	}
	pub("msg", `{"n":1}`)
	pub("msg", `{"n":2}`)
	pub("secret", `{"n":3,"to":"a"}`)
	pub("secret", `{"n":4,"to":"b"}`)
	pub("msg", `{"n":5}`)

	c := s.dial(t, "vsn=2.0.0")
	cur := joinFeed(t, c, "feed:r", "1", `{"user":"x"}`)["position"]
	if cur != positionAt(t, cur, 5) {
		t.Fatalf("position %v, want n 5", cur)
	}
	resp := joinFeed(t, c, "feed:r", "2", fmt.Sprintf(`{"user":"b","since":%q}`, positionAt(t, cur, 1)))
	c.expect(`["1","1","feed:r","phx_close",{}]`)
	if resp["recovered"] != true || resp["position"] != cur {
		t.Fatalf("join with since: %v", resp)
	}
	for _, n := range []int{2, 4, 5} { // 3 was for a: handle_out left it out
		ref, _, p := readPush(t, c)
		if ref != positionAt(t, cur, n) || p["n"] != float64(n) {
			t.Fatalf("replayed %v %v, want n %d", ref, p, n)
		}
	}
	pub("msg", `{"n":6}`)
	if ref, _, p := readPush(t, c); ref != positionAt(t, cur, 6) || p["n"] != float64(6) {
		t.Fatalf("live after replay: %v %v", ref, p)
	}

	for i, since := range []string{
		`"nope:1"`, `"` + positionAt(t, cur, 100) + `"`, `"` + positionAt(t, cur, -1) + `"`, `12`, `{}`, `""`,
		`"` + positionAt(t, cur, 0) + `999999999999999999999"`, `"` + strings.Replace(positionAt(t, cur, 1), ":", "", 1) + `"`,
	} {
		d := s.dial(t, "vsn=2.0.0")
		resp := joinFeed(t, d, "feed:r", strconv.Itoa(i+1), `{"user":"b","since":`+since+`}`)
		if resp["recovered"] != false || resp["position"] != positionAt(t, cur, 6+i) {
			t.Errorf("since %s: %v, want recovered false", since, resp)
		}
		pub("msg", fmt.Sprintf(`{"n":%d}`, 7+i)) // the next frame is live, nothing replayed
		if ref, _, p := readPush(t, d); ref != positionAt(t, cur, 7+i) {
			t.Errorf("since %s: got %v %v, want the live broadcast", since, ref, p)
		}
	}
}

// TestHistoryRecoveryUnderLoad: while a publisher broadcasts up to 1,000 a second, clients
// leave and rejoin with since in a loop; each sees every position once, in order.
func TestHistoryRecoveryUnderLoad(t *testing.T) {
	s := startServer(t, writeScripts(t, map[string]string{"feed.lua": historyLua}), "-max-rate", "0")
	recoveryUnderLoad(t, []*server{s}, 20)
}

// recoveryUnderLoad runs the recovery load on servers: a socket on the first broadcasts
// on feed:load at up to 1,000 a second while clients, spread over the servers, leave and
// rejoin with since in a loop (loadClient). It runs for 4 seconds and on until the clients
// have rejoined three times each on average, or fails at 60 seconds (with -short: 1
// second, once each, 15 seconds).
//
// The publisher goes only as fast as the server delivers, as the load tool does (its
// -lead): at most maxInFlight says unanswered, and at most maxLead broadcasts ahead of the
// slowest client's last position. A channel whose events pile up 1,024 deep is closed
// ("channel cannot keep up"), and a rejoin holds live broadcasts in its mailbox until its
// replay is sent: under -race on a busy 2-core box, a publisher at a fixed rate got
// there, which is the server doing what it should, not a recovery bug.
func recoveryUnderLoad(t *testing.T, servers []*server, clients int) {
	const (
		maxInFlight = 256
		maxLead     = 512
	)
	duration, minRejoins, hardStop := 4*time.Second, 3, time.Minute // minRejoins: per client
	if testing.Short() {
		duration, minRejoins, hardStop = time.Second, 1, 15*time.Second
	}
	pub := servers[0].dial(t, "vsn=2.0.0")
	cur := joinFeed(t, pub, "feed:load", "1", `{"user":"pub"}`)["position"].(string)
	colon := strings.LastIndexByte(cur, ':')
	epoch := cur[:colon+1]
	base, err := strconv.ParseInt(cur[colon+1:], 10, 64)
	if err != nil {
		t.Fatalf("position %q", cur)
	}

	lasts := make([]atomic.Int64, clients) // each client's last position, -1 until its first join
	for i := range lasts {
		lasts[i].Store(-1)
	}
	slowest := func() int64 { // the lowest last position of the clients that have joined, or -1
		low := int64(-1)
		for i := range lasts {
			if l := lasts[i].Load(); l >= 0 && (low < 0 || l < low) {
				low = l
			}
		}
		return low
	}

	inFlight := make(chan struct{}, maxInFlight)
	var stop, stopPub atomic.Bool // the clients stop first, the publisher once they have
	stopping := make(chan struct{})
	var published atomic.Int64
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		began := time.Now()
		for n := int64(1); !stopPub.Load(); {
			<-tick.C
			// As many as keep the rate at 1,000 a second since the start (a tick that
			// came late sends the ones it missed), as long as the slowest client keeps up;
			// once the clients stop, each needs at most one more to return.
			for due := int64(time.Since(began)/time.Millisecond) + 1; n <= due; n++ {
				if low := slowest(); low >= 0 && base+n-low > maxLead && !stop.Load() {
					break
				}
				select {
				case inFlight <- struct{}{}:
				case <-stopping:
					return
				}
				if err := pub.conn.WriteMessage(1, []byte(fmt.Sprintf(`["1","%d","feed:load","say",{"n":%d}]`, n, n))); err != nil {
					return
				}
				published.Add(1)
			}
		}
	}()
	pubErr := make(chan error, 1)
	go func() { // the publisher's replies, and its copies of the broadcasts
		for {
			_, data, err := pub.conn.ReadMessage()
			if err != nil {
				pubErr <- err
				return
			}
			if bytes.Contains(data, []byte(`"phx_reply"`)) {
				<-inFlight
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, clients)
	failed := make(chan struct{}) // closed when a client fails: no use going on
	var failOnce sync.Once
	var rejoins atomic.Int64
	start := time.Now()
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := loadClient(servers[i%len(servers)], i, epoch, &stop, &rejoins, &lasts[i])
			if err != nil {
				failOnce.Do(func() { close(failed) })
			}
			errs <- err
		}()
	}
	tick := time.NewTicker(10 * time.Millisecond)
	for enough := false; !enough; {
		select {
		case <-failed:
			enough = true
		case <-tick.C:
			elapsed := time.Since(start)
			enough = elapsed >= hardStop || elapsed >= duration && rejoins.Load() >= int64(clients*minRejoins)
		}
	}
	tick.Stop()
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	stopPub.Store(true)
	close(stopping)
	<-pubDone
	select {
	case err := <-pubErr:
		t.Errorf("the publisher's socket closed while it published: %v", err)
	default:
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d broadcasts in %v (%.0f/s), %d rejoins with since", published.Load(), elapsed.Round(time.Millisecond),
		float64(published.Load())/elapsed.Seconds(), rejoins.Load())
	if rejoins.Load() < int64(clients*minRejoins) {
		t.Errorf("only %d rejoins in %v", rejoins.Load(), elapsed.Round(time.Millisecond))
	}
}

// loadClient joins, reads a while, disconnects and rejoins with since, until stop;
// every position it sees must be the one after the last, which it also stores in seen.
func loadClient(s *server, i int, epoch string, stop *atomic.Bool, rejoins, seen *atomic.Int64) error {
	last := -1
	for round := 0; !stop.Load(); round++ {
		d := websocket.Dialer{HandshakeTimeout: readTimeout}
		conn, _, err := d.Dial(s.wsURL("vsn=2.0.0"), nil)
		if err != nil {
			return err
		}
		since := ""
		if last >= 0 {
			since = fmt.Sprintf(`,"since":"%s%d"`, epoch, last)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		join := fmt.Sprintf(`["1","1","feed:load","phx_join",{"user":"c%d"%s}]`, i, since)
		if err := conn.WriteMessage(1, []byte(join)); err != nil {
			conn.Close()
			return err
		}
		reads := 20 + (i*7+round*13)%80
		for r := 0; r < reads && !stop.Load(); r++ {
			_, data, err := conn.ReadMessage()
			if err != nil {
				conn.Close()
				return fmt.Errorf("client %d: %v", i, err)
			}
			var f []any
			if err := json.Unmarshal(data, &f); err != nil || len(f) != 5 {
				conn.Close()
				return fmt.Errorf("client %d: frame %s", i, data)
			}
			if f[3] == "phx_reply" {
				resp := f[4].(map[string]any)["response"].(map[string]any)
				if last >= 0 && resp["recovered"] != true {
					conn.Close()
					return fmt.Errorf("client %d: rejoin since %d not recovered: %v", i, last, resp)
				}
				if last < 0 {
					n, _ := strconv.Atoi(strings.TrimPrefix(resp["position"].(string), epoch))
					last = n
					seen.Store(int64(n))
				} else {
					rejoins.Add(1)
				}
				continue
			}
			ref, _ := f[1].(string)
			n, err := strconv.Atoi(strings.TrimPrefix(ref, epoch))
			if err != nil || !strings.HasPrefix(ref, epoch) {
				conn.Close()
				return fmt.Errorf("client %d: ref %q", i, ref)
			}
			if n != last+1 {
				conn.Close()
				return fmt.Errorf("client %d round %d: position %d after %d", i, round, n, last)
			}
			last = n
			seen.Store(int64(n))
		}
		conn.Close()
	}
	return nil
}

// TestHistoryRead: luachan.history and GET /api/history.
func TestHistoryRead(t *testing.T) {
	s := startServer(t, writeScripts(t, map[string]string{"feed.lua": historyLua}), "-api-key", historyKey)
	for n := 1; n <= 5; n++ {
		s.post(t, "/api/broadcast", historyKey, fmt.Sprintf(`{"topic":"feed:h","event":"msg","payload":{"n":%d}}`, n))
	}
	c := s.dial(t, "vsn=2.0.0")
	cur := joinFeed(t, c, "feed:h", "1", `{}`)["position"]
	c.send(fmt.Sprintf(`["1","2","feed:h","history",{"since":%q,"limit":2}]`, positionAt(t, cur, 2)))
	c.expect(fmt.Sprintf(`["1","2","feed:h","phx_reply",{"status":"ok","response":{"recovered":true,"positions":[%q,%q]}}]`,
		positionAt(t, cur, 3)+" msg 3", positionAt(t, cur, 4)+" msg 4"))
	c.send(`["1","3","feed:h","history",{"since":"old:1"}]`)
	c.expect(`["1","3","feed:h","phx_reply",{"status":"ok","response":{"recovered":false,"positions":[]}}]`)

	get := func(query, key string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.url("/api/history?"+query), nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body)), resp.Header
	}
	q := url.Values{"topic": {"feed:h"}, "since": {positionAt(t, cur, 3)}}.Encode()
	code, body, h := get(q, historyKey)
	want := fmt.Sprintf(`[{"position":%q,"event":"msg","payload":{"n":4}},{"position":%q,"event":"msg","payload":{"n":5}}]`,
		positionAt(t, cur, 4), positionAt(t, cur, 5))
	if code != http.StatusOK || body != want || h.Get("X-History-Position") != cur {
		t.Errorf("GET /api/history: %d %s %v, want 200 %s", code, body, h.Get("X-History-Position"), want)
	}
	if code, body, _ := get("topic=feed:h&limit=1", historyKey); code != http.StatusOK || !strings.Contains(body, `{"n":5}`) || strings.Contains(body, `{"n":4}`) {
		t.Errorf("latest 1: %d %s", code, body)
	}
	for _, tc := range []struct {
		query, key string
		code       int
	}{
		{q, "", http.StatusUnauthorized},
		{"topic=nohistory:1", historyKey, http.StatusNotFound},
		{"topic=feed:h&since=old:1", historyKey, http.StatusGone},
		{"topic=feed:h&limit=x", historyKey, http.StatusBadRequest},
		{"", historyKey, http.StatusBadRequest},
	} {
		if code, body, _ := get(tc.query, tc.key); code != tc.code {
			t.Errorf("GET /api/history?%s: %d %s, want %d", tc.query, code, body, tc.code)
		}
	}
}

// TestHistoryTwoNodesMemory: without a shared history, each node positions what its
// subscribers get, the other nodes' broadcasts too, so a client of one node still sees
// every position once, in order, and recovers from that node's history.
func TestHistoryTwoNodesMemory(t *testing.T) {
	t.Parallel()
	forEachBroker(t, testHistoryTwoNodesMemory)
}

func testHistoryTwoNodesMemory(t *testing.T, rs testBroker) {
	nodes := startNodes(t, 2, writeScripts(t, map[string]string{"feed.lua": historyLua}), rs.url(), "-api-key", historyKey)
	c := nodes[1].dial(t, "vsn=2.0.0")
	cur := joinFeed(t, c, "feed:m", "1", `{}`)["position"]
	for n := 1; n <= 4; n++ {
		if got := nodes[0].post(t, "/api/broadcast", historyKey, fmt.Sprintf(`{"topic":"feed:m","event":"msg","payload":{"n":%d}}`, n)); got != http.StatusAccepted {
			t.Fatalf("POST /api/broadcast: %d", got)
		}
	}
	for n := 1; n <= 4; n++ {
		if ref, _, p := readPush(t, c); ref != positionAt(t, cur, n) || p["n"] != float64(n) {
			t.Fatalf("broadcast %d from the other node: %v %v, want %s", n, ref, p, positionAt(t, cur, n))
		}
	}
	d := nodes[1].dial(t, "vsn=2.0.0")
	if resp := joinFeed(t, d, "feed:m", "1", fmt.Sprintf(`{"since":%q}`, positionAt(t, cur, 2))); resp["recovered"] != true {
		t.Fatalf("rejoin: %v", resp)
	}
	for n := 3; n <= 4; n++ {
		if ref, _, _ := readPush(t, d); ref != positionAt(t, cur, n) {
			t.Fatalf("replayed %v, want %s", ref, positionAt(t, cur, n))
		}
	}
}

// TestHistoryRejoinAfterTheNodeLeft: a node whose last subscriber on a topic left no longer
// hears the other nodes' broadcasts on it (NATS brings a subject's messages only while
// subscribed). A client that rejoins that node with a position read before must not be told
// it recovered everything: with Redis the shared history replays what it missed; with NATS
// (each node's history in memory) the node forgot the topic, and the join says recovered
// false.
func TestHistoryRejoinAfterTheNodeLeft(t *testing.T) {
	t.Parallel()
	forEachBroker(t, testHistoryRejoinAfterTheNodeLeft)
}

func testHistoryRejoinAfterTheNodeLeft(t *testing.T, rs testBroker) {
	nodes := startNodes(t, 2, writeScripts(t, map[string]string{"feed.lua": historyLua}), rs.url(), "-api-key", historyKey)
	post := func(n int) {
		t.Helper()
		if got := nodes[1].post(t, "/api/broadcast", historyKey, fmt.Sprintf(`{"topic":"feed:l","event":"msg","payload":{"n":%d}}`, n)); got != http.StatusAccepted {
			t.Fatalf("POST /api/broadcast: %d", got)
		}
	}
	c := nodes[0].dial(t, "vsn=2.0.0")
	joinFeed(t, c, "feed:l", "1", `{}`)
	post(1)
	seen, _, _ := readPush(t, c)
	c.send(`["1","2","feed:l","phx_leave",{}]`)
	c.expect(`["1","2","feed:l","phx_reply",{"status":"ok","response":{}}]`)
	c.expect(`["1","1","feed:l","phx_close",{}]`)
	err := poll(5*time.Second, func() error {
		if n := scrapeMetrics(t, nodes[0])["luachan_topics"]; n != 0 {
			return fmt.Errorf("node 0 still has %v topics", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	post(2)
	post(3)

	d := nodes[0].dial(t, "vsn=2.0.0")
	resp := joinFeed(t, d, "feed:l", "1", fmt.Sprintf(`{"since":%q}`, seen))
	_, nats := rs.(*natsBroker)
	if nats {
		if resp["recovered"] != false {
			t.Fatalf("rejoin with NATS after the node stopped hearing the topic: %v, want recovered false", resp)
		}
	} else {
		if resp["recovered"] != true {
			t.Fatalf("rejoin with Redis: %v, want recovered", resp)
		}
		for n := 2; n <= 3; n++ {
			if ref, _, p := readPush(t, d); ref != positionAt(t, seen, n) || p["n"] != float64(n) {
				t.Fatalf("replayed %v %v, want n %d at %s", ref, p, n, positionAt(t, seen, n))
			}
		}
	}

	// A position read from a node that never had a subscriber (a page rendered from
	// /api/history, then joined): what the node held then was kept without hearing the
	// other nodes either.
	req, _ := http.NewRequest(http.MethodGet, nodes[0].url("/api/history?topic=feed:r"), nil)
	req.Header.Set("Authorization", "Bearer "+historyKey)
	hr, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	read := hr.Header.Get("X-History-Position")
	if got := nodes[1].post(t, "/api/broadcast", historyKey, `{"topic":"feed:r","event":"msg","payload":{"n":1}}`); got != http.StatusAccepted {
		t.Fatalf("POST /api/broadcast: %d", got)
	}
	e := nodes[0].dial(t, "vsn=2.0.0")
	resp = joinFeed(t, e, "feed:r", "1", fmt.Sprintf(`{"since":%q}`, read))
	if nats {
		if resp["recovered"] != false {
			t.Fatalf("join with NATS from a position read while the node had no subscriber: %v, want recovered false", resp)
		}
		return
	}
	if ref, _, p := readPush(t, e); resp["recovered"] != true || ref != positionAt(t, read, 1) || p["n"] != 1.0 {
		t.Fatalf("join with Redis from a position read over the API: %v, replayed %v %v; want n 1 recovered", resp, ref, p)
	}
}
