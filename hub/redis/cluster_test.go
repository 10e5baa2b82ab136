package redis_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/luachan/luachan/hub/redis"
	"github.com/luachan/luachan/internal/hubtest"
	"github.com/luachan/luachan/internal/rediscluster"
)

// TestRedisClusterShardedPubSub: on a three-master Redis Cluster, topics whose channels
// live on different masters cross between two nodes exactly once and in order per
// sender, each on the master that owns it; a topic's last local subscriber leaving
// removes the node's shard subscription there without dropping the connection.
func TestRedisClusterShardedPubSub(t *testing.T) {
	cl := rediscluster.StartCluster(t)
	a := startRedisNode(t, cl.URL(), redis.Config{})
	b := startRedisNode(t, cl.URL(), redis.Config{})

	// One topic per master.
	owners := map[string]string{} // master -> topic
	for i := 0; len(owners) < len(cl.Nodes); i++ {
		topic := fmt.Sprintf("rooms:%d", i)
		if m := cl.MasterOf(t, "luachan:topic:{"+topic+"}"); owners[m] == "" {
			owners[m] = topic
		}
	}
	ca, cb := a.Dial(t, "vsn=2.0.0"), b.Dial(t, "vsn=2.0.0")
	subA, subB := hubtest.NewSub(ca.Conn), hubtest.NewSub(cb.Conn)
	var topics []string
	for _, topic := range owners {
		topics = append(topics, topic)
		a.Hub.Subscribe(topic, subA) // waits for the cluster to confirm
		b.Hub.Subscribe(topic, subB)
	}

	const n = 100
	for i := range n {
		for _, topic := range topics {
			a.Hub.Broadcast(bcast(topic, "from_a", i))
			b.Hub.Broadcast(bcast(topic, "from_b", i))
		}
	}
	for _, c := range []*hubtest.Client{ca, cb} {
		next := map[string]int{}
		for range 2 * n * len(topics) {
			arr := c.ReadV2()
			topic, _ := arr[2].(string)
			event, _ := arr[3].(string)
			key := topic + " " + event
			if fmt.Sprint(arr[4]) != fmt.Sprintf("map[n:%d]", next[key]) {
				t.Fatalf("got %v, want %s #%d next", arr, key, next[key])
			}
			next[key]++
		}
		expectQuiet(c, "1")
	}

	ctx := context.Background()
	shardSubs := func(topic string) int64 {
		t.Helper()
		channel := "luachan:topic:{" + topic + "}"
		owner, err := cl.Client(t).MasterForKey(ctx, channel)
		if err != nil {
			t.Fatal(err)
		}
		got, err := owner.PubSubShardNumSub(ctx, channel).Result()
		if err != nil {
			t.Fatal(err)
		}
		return got[channel]
	}
	for _, topic := range topics {
		if got := shardSubs(topic); got != 2 {
			t.Fatalf("%s: %d shard subscribers on its master, want 2", topic, got)
		}
	}
	b.Hub.Unsubscribe(topics[0], subB)
	err := rediscluster.Poll(rediscluster.Wait, func() error {
		if got := shardSubs(topics[0]); got != 1 {
			return fmt.Errorf("%s: %d shard subscribers after node b left, want 1", topics[0], got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Hub.Broadcast(bcast(topics[1], "after", 1)) // goes through b's subscriber connection's session
	expectBroadcast(ca, topics[1], "after", 1)
	expectBroadcast(cb, topics[1], "after", 1)
	if st := b.ps.Stats(); st.Reconnects != 0 || !st.Connected || st.Topics != len(topics)-1 {
		t.Errorf("node b after its own SUNSUBSCRIBE: %+v, want connected, no reconnect", st)
	}
}
