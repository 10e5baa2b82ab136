package luachan_test

import (
	"encoding/json"
	"fmt"
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
