package luachan_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestMultinodeTopicNames: over three nodes, topics whose names a broker could read as
// more than one name (NATS subjects split on dots and match '*' and '>'; spaces end a
// subject; "=41" is what an escaped "A" looks like) each reach exactly their own
// subscribers on every node, once, in order per sender.
func TestMultinodeTopicNames(t *testing.T) {
	t.Parallel()
	forEachBroker(t, testMultinodeTopicNames)
}

func testMultinodeTopicNames(t *testing.T, rs testBroker) {
	nodes := startNodes(t, 3, multinodeScripts(t), rs.url())
	topics := []string{"mn:a.b", "mn:a", "mn:*", "mn:a.*", "mn:>", "mn:a.>", "mn:with space", "mn:A", "mn:=41", "mn:é\t"}
	subs := make([][]*wsClient, len(topics)) // topic -> one subscriber per node
	for i, topic := range topics {
		for n, node := range nodes {
			subs[i] = append(subs[i], joinAs(t, node, topic, "1", fmt.Sprintf("u%d", n)))
		}
	}
	// Every subscriber broadcasts on its topic, 3 times; each topic's subscribers get
	// their topic's 9 messages, each sender's in order, and nothing else.
	const each = 3
	for i, topic := range topics {
		for n, c := range subs[i] {
			for k := range each {
				c.send(fmt.Sprintf(`["1",null,%s,"msg",{"t":%d,"n":%d,"k":%d}]`, jsonString(topic), i, n, k))
			}
		}
	}
	for i, topic := range topics {
		for n, c := range subs[i] {
			next := make([]int, len(nodes))
			for range each * len(nodes) {
				f := c.readArray()
				p, _ := f[4].(map[string]any)
				var from, k, ti int
				fmt.Sscan(fmt.Sprint(p["n"]), &from)
				fmt.Sscan(fmt.Sprint(p["k"]), &k)
				fmt.Sscan(fmt.Sprint(p["t"]), &ti)
				if f[2] != topic || ti != i || from < 0 || from >= len(nodes) || k != next[from] {
					t.Fatalf("subscriber of %q on node %d got %v, want a msg on its topic, next from each node %v", topic, n+1, f, next)
				}
				next[from]++
			}
			c.heartbeat("h") // and nothing more
		}
	}
}

// jsonString is s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestPerNodeStateIsAWarning: with a broker that shares broadcasts but not topics' states
// (NATS), a script with topic state loads with a warning saying each node keeps its own,
// so an auction written for one state per topic is not wrong without a word; with Redis,
// which shares them, and for a script without topic state, there is none.
func TestPerNodeStateIsAWarning(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, b testBroker) {
		dir := writeScripts(t, map[string]string{
			"state.lua": `return { topic = "s:*", join = function() return true end,
  handle_call = function(msg, state) return msg, state end }`,
			"plain.lua": `return { topic = "p:*", join = function() return true end }`,
		})
		s := startServer(t, dir, "-pubsub", b.url(), "-api-key", "k")
		want := 0
		if _, nats := b.(*natsBroker); nats {
			want = 1
		}
		if n := s.log.count("script warning", "script=state.lua", "topic state is per node"); n != want {
			t.Errorf("%d per-node state warnings for state.lua, want %d:\n%s", n, want, s.log)
		}
		// and on /api/scripts, where the console shows a script's warnings
		_, scripts := getScripts(t, s, "k")
		if n := len(scripts["state.lua"].Warnings); n != want || n == 1 && !strings.Contains(scripts["state.lua"].Warnings[0], "topic state is per node") {
			t.Errorf("state.lua's /api/scripts warnings %q, want %d naming the per-node state", scripts["state.lua"].Warnings, want)
		}
		if w := scripts["plain.lua"].Warnings; len(w) != 0 {
			t.Errorf("plain.lua's /api/scripts warnings %q, want none", w)
		}
		if n := s.log.count("script=plain.lua", "topic state is per node"); n != 0 {
			t.Errorf("a per-node state warning for plain.lua, which has no state:\n%s", s.log)
		}
	})
}
