package luachan_test

// SPEC section 12, brokers: -pubsub redis+cluster:// (sharded PubSub, SSUBSCRIBE and
// SPUBLISH, on a real three-master Redis Cluster) and redis+sentinel:// (a master, a
// replica and three Sentinels, through a failover). Each test starts its own set with
// internal/rediscluster.

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/luachan/luachan/internal/rediscluster"
)

// exchange has ann (on one node) and bob (on another), both on topic, broadcast 50
// messages each; every subscriber in everyone gets all of them, exactly once, in order
// per sender.
func exchange(t *testing.T, topic string, ann, bob *wsClient, everyone ...*wsClient) {
	t.Helper()
	const each = 50
	for i := range each {
		ann.send(fmt.Sprintf(`["1",null,%q,"msg",{"by":"ann","i":%d}]`, topic, i))
		bob.send(fmt.Sprintf(`["1",null,%q,"msg",{"by":"bob","i":%d}]`, topic, i))
	}
	for _, c := range everyone {
		next := map[string]int{"ann": 0, "bob": 0}
		for range 2 * each {
			f := c.readArray()
			p, _ := f[4].(map[string]any)
			by, _ := p["by"].(string)
			want, ok := next[by]
			if !ok || f[2] != topic || f[3] != "msg" || fmt.Sprint(p["i"]) != fmt.Sprint(want) {
				t.Fatalf("got %v, want a msg on %s from ann or bob, ann's #%d and bob's #%d next", f, topic, next["ann"], next["bob"])
			}
			next[by]++
		}
		c.heartbeat("hx") // and nothing more
	}
}

// storeIncr has c (on one node) and d (on another) each increment luachan.store's
// "hits" n times, then checks the total from both.
func storeIncr(t *testing.T, topicC, topicD string, c, d *wsClient, n int) {
	t.Helper()
	for i := range n {
		c.send(fmt.Sprintf(`["1","i%d",%q,"incr",{}]`, i, topicC))
		d.send(fmt.Sprintf(`["1","i%d",%q,"incr",{}]`, i, topicD))
	}
	for range n {
		c.readArray()
		d.readArray()
	}
	c.send(fmt.Sprintf(`["1","g",%q,"get",{}]`, topicC))
	c.expect(fmt.Sprintf(`["1","g",%q,"phx_reply",{"status":"ok","response":{"n":%d}}]`, topicC, 2*n))
	d.send(fmt.Sprintf(`["1","g",%q,"get",{}]`, topicD))
	d.expect(fmt.Sprintf(`["1","g",%q,"phx_reply",{"status":"ok","response":{"n":%d}}]`, topicD, 2*n))
}

func TestRedisClusterBroadcastAndStore(t *testing.T) {
	t.Parallel()
	cl := rediscluster.StartCluster(t)
	// Two topics whose channels hash to slots of different masters.
	topics := []string{"mn:s0"}
	first := cl.MasterOf(t, "luachan:topic:{mn:s0}")
	for i := 1; len(topics) < 2; i++ {
		topic := fmt.Sprintf("mn:s%d", i)
		if cl.MasterOf(t, "luachan:topic:{"+topic+"}") != first {
			topics = append(topics, topic)
		}
	}
	nodes := startNodes(t, 2, multinodeScripts(t), cl.URL())
	n1, n2 := nodes[0], nodes[1]
	for _, topic := range topics {
		ann, carl := joinAs(t, n1, topic, "1", "ann"), joinAs(t, n1, topic, "1", "carl")
		bob := joinAs(t, n2, topic, "1", "bob")
		exchange(t, topic, ann, bob, ann, carl, bob)

		// The topic's traffic is sharded PubSub on the master that owns its slot: both
		// nodes hold a shard subscription there.
		channel := "luachan:topic:{" + topic + "}"
		owner, err := cl.Client(t).MasterForKey(context.Background(), channel)
		if err != nil {
			t.Fatal(err)
		}
		got, err := owner.PubSubShardNumSub(context.Background(), channel).Result()
		if err != nil || got[channel] != 2 {
			t.Fatalf("PUBSUB SHARDNUMSUB %s: %v %v, want 2 subscribers", channel, got, err)
		}
	}
	c, d := joinAs(t, n1, "mn:c", "1", "c"), joinAs(t, n2, "mn:d", "1", "d")
	storeIncr(t, "mn:c", "mn:d", c, d, 20)
}

// TestRedisClusterHistory: a topic's history keys and its channel share a slot, so the
// script that appends a broadcast also publishes it (SPUBLISH) to the nodes' sharded
// subscriptions.
func TestRedisClusterHistory(t *testing.T) {
	t.Parallel()
	historyTwoNodes(t, rediscluster.StartCluster(t).URL())
}

// TestRedisClusterTopicState: topic states shared through a Redis Cluster, whose
// nodes' channels are sharded (SSUBSCRIBE, SPUBLISH).
func TestRedisClusterTopicState(t *testing.T) {
	t.Parallel()
	forwardedAcrossNodes(t, rediscluster.StartCluster(t).URL())
}

func TestRedisClusterPresence(t *testing.T) {
	t.Parallel()
	cl := rediscluster.StartCluster(t)
	presenceAcrossNodes(t, cl.URL())
}

// presenceAcrossNodes: alice on one node and bob on another see each other, in
// presence_state, presence_diff and luachan.presence.list; when bob's node dies, alice
// gets his leave.
func presenceAcrossNodes(t *testing.T, url string) {
	t.Helper()
	dir, err := filepath.Abs(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"LUACHAN_PRESENCE_TTL=" + multinodePresenceTTL.String()}
	n1 := startServerEnv(t, env, dir, "-pubsub", url)
	n2 := startServerEnv(t, env, dir, "-pubsub", url)
	const topic = "presence:lobby"
	alice := n1.dial(t, "vsn=2.0.0")
	st, _ := joinPresence(alice, topic, "1", "alice")
	aliceMeta := st.one(t, "alice")
	bob := n2.dial(t, "vsn=2.0.0")
	st = joinPresenceRemote(bob, topic, "1", "bob")
	bobMeta := st.one(t, "bob")
	all := presenceState{
		"alice": {Metas: []map[string]any{aliceMeta}},
		"bob":   {Metas: []map[string]any{bobMeta}},
	}
	if !reflect.DeepEqual(st, all) {
		t.Fatalf("bob's presence_state %+v, want %+v", st, all)
	}
	var d presenceDiff
	expectPush(t, alice.readMsg(), nil, topic, "presence_diff", &d)
	if !reflect.DeepEqual(d.Joins, presenceState{"bob": all["bob"]}) || len(d.Leaves) != 0 {
		t.Fatalf("alice got %+v, want bob's join", d)
	}
	for i, c := range []*wsClient{alice, bob} {
		if got := serverList(c, topic, "1", "2"); !reflect.DeepEqual(got, all) {
			t.Fatalf("luachan.presence.list on node %d: %+v, want %+v", i+1, got, all)
		}
	}
	n2.stopOnce.Do(func() {
		_ = n2.cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-n2.done:
		case <-time.After(stopTimeout):
			t.Fatalf("luachan did not exit after SIGKILL")
		}
	})
	expectPush(t, alice.readMsg(), nil, topic, "presence_diff", &d)
	if want := (presenceDiff{Joins: presenceState{}, Leaves: presenceState{"bob": all["bob"]}}); !reflect.DeepEqual(d, want) {
		t.Fatalf("after bob's node died: got %+v, want %+v", d, want)
	}
	if got, want := serverList(alice, topic, "1", "3"), (presenceState{"alice": all["alice"]}); !reflect.DeepEqual(got, want) {
		t.Fatalf("luachan.presence.list after bob's node died: %+v, want %+v", got, want)
	}
}

// TestRedisClusterFlagRefused: a bad redis+cluster:// or redis+sentinel:// URL, or one
// nothing answers at, is one line on stderr and exit status 2, without the password.
func TestRedisClusterFlagRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // nothing listens there now
	tests := []struct{ name, url, want string }{
		{"cluster unreachable", "redis+cluster://:hunter2@" + closed + "," + closed, "cannot reach Redis"},
		{"cluster with a database", "redis+cluster://:hunter2@" + closed + "/1", "database 0 only"},
		{"cluster bad address", "redis+cluster://:hunter2@127.0.0.1", "want host:port"},
		{"sentinel unreachable", "redis+sentinel://:hunter2@mymaster@" + closed + "/0?sentinel_password=hunter2", "cannot reach Redis"},
		{"sentinel without a master name", "redis+sentinel://" + closed + "/0", "want redis+sentinel://"},
		{"sentinel unknown option", "redis+sentinel://m@" + closed + "/0?sentinel_passwd=hunter2", "unknown option"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(binPath, "-addr", "127.0.0.1:0", "-scripts", multinodeScripts(t), "-pubsub", tc.url)
			out, _ := cmd.CombinedOutput()
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if cmd.ProcessState.ExitCode() != 2 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Fatalf("exit %d, output %q; want status 2 and one line containing %q", cmd.ProcessState.ExitCode(), out, tc.want)
			}
			if strings.Contains(lines[0], "hunter2") {
				t.Fatalf("the password is in %q", lines[0])
			}
		})
	}
}

func TestRedisSentinelFailover(t *testing.T) {
	t.Parallel()
	s := rediscluster.StartSentinel(t)
	nodes := startNodes(t, 2, multinodeScripts(t), s.URL())
	n1, n2 := nodes[0], nodes[1]
	const topic = "mn:room"
	ann, carl := joinAs(t, n1, topic, "1", "ann"), joinAs(t, n1, topic, "1", "carl")
	bob := joinAs(t, n2, topic, "1", "bob")
	exchange(t, topic, ann, bob, ann, carl, bob)
	c, d := joinAs(t, n1, "mn:c", "1", "c"), joinAs(t, n2, "mn:d", "1", "d")
	storeIncr(t, "mn:c", "mn:d", c, d, 10)

	// The master dies; the Sentinels promote the replica; both nodes follow.
	s.KillMaster(t)
	n1.log.waitFor(t, rediscluster.Wait, logRedisBack)
	n2.log.waitFor(t, rediscluster.Wait, logRedisBack)
	exchange(t, topic, ann, bob, ann, carl, bob)
	// The store is on the new master, with what the replica had.
	c.send(`["1","g2","mn:c","get",{}]`)
	c.expect(`["1","g2","mn:c","phx_reply",{"status":"ok","response":{"n":20}}]`)
	c.send(`["1","i2","mn:c","incr",{}]`)
	c.expect(`["1","i2","mn:c","phx_reply",{"status":"ok","response":{"n":21}}]`)
}

func TestRedisSentinelPresence(t *testing.T) {
	t.Parallel()
	s := rediscluster.StartSentinel(t)
	presenceAcrossNodes(t, s.URL())
}

// TestRedisClusterSlotMoved: when a topic's slot moves to another master, the old one
// drops the nodes' shard subscriptions; they subscribe again on the new owner, and
// broadcasts resume.
func TestRedisClusterSlotMoved(t *testing.T) {
	t.Parallel()
	cl := rediscluster.StartCluster(t)
	nodes := startNodes(t, 2, multinodeScripts(t), cl.URL())
	n1, n2 := nodes[0], nodes[1]
	const topic, channel = "mn:room", "luachan:topic:{mn:room}"
	ann, bob := joinAs(t, n1, topic, "1", "ann"), joinAs(t, n2, topic, "1", "bob")
	exchange(t, topic, ann, bob, ann, bob)

	ctx := context.Background()
	cc := cl.Client(t)
	slot, err := cc.ClusterKeySlot(ctx, channel).Result()
	if err != nil {
		t.Fatal(err)
	}
	src, err := cc.MasterForKey(ctx, channel)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{} // address -> node id
	for _, p := range cl.Nodes {
		c := goredis.NewClient(&goredis.Options{Addr: p.Addr(), DisableIdentity: true, Protocol: 2})
		id, err := c.Do(ctx, "CLUSTER", "MYID").Text()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		ids[p.Addr()] = id
	}
	var dst string
	for addr := range ids {
		if addr != src.Options().Addr {
			dst = addr
			break
		}
	}
	// The slot holds no key: it moves by SETSLOT alone, the new owner first.
	for _, addr := range append([]string{dst, src.Options().Addr}, cl.Nodes[0].Addr(), cl.Nodes[1].Addr(), cl.Nodes[2].Addr()) {
		c := goredis.NewClient(&goredis.Options{Addr: addr, DisableIdentity: true, Protocol: 2})
		err := c.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", ids[dst]).Err()
		c.Close()
		if err != nil {
			t.Fatalf("CLUSTER SETSLOT %d NODE on %s: %v", slot, addr, err)
		}
	}
	n1.log.waitFor(t, rediscluster.Wait, logRedisBack)
	n2.log.waitFor(t, rediscluster.Wait, logRedisBack)
	owner := goredis.NewClient(&goredis.Options{Addr: dst, DisableIdentity: true, Protocol: 2})
	defer owner.Close()
	err = rediscluster.Poll(rediscluster.Wait, func() error {
		got, err := owner.PubSubShardNumSub(ctx, channel).Result()
		if err != nil || got[channel] != 2 {
			return fmt.Errorf("PUBSUB SHARDNUMSUB on the new owner: %v %v, want 2", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, topic, ann, bob, ann, bob)
}

// TestRedisClusterPassword: the password in a redis+cluster:// URL, percent-encoded,
// reaches every master (the seeds and the ones found from them); a wrong one stops
// luachan at start with one line that does not show it.
func TestRedisClusterPassword(t *testing.T) {
	t.Parallel()
	cl := rediscluster.StartClusterAuth(t, "p@ss:w/rd")
	nodes := startNodes(t, 2, multinodeScripts(t), cl.URL())
	const topic = "mn:room"
	ann, bob := joinAs(t, nodes[0], topic, "1", "ann"), joinAs(t, nodes[1], topic, "1", "bob")
	exchange(t, topic, ann, bob, ann, bob)
	storeIncr(t, topic, topic, ann, bob, 5)

	wrong := strings.Replace(cl.URL(), "p%40ss", "hunter2", 1)
	cmd := exec.Command(binPath, "-addr", "127.0.0.1:0", "-scripts", multinodeScripts(t), "-pubsub", wrong)
	out, _ := cmd.CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if cmd.ProcessState.ExitCode() != 2 || len(lines) != 1 || !strings.Contains(lines[0], "cannot reach Redis") || strings.Contains(lines[0], "hunter2") {
		t.Fatalf("wrong password: exit %d, output %q; want status 2 and one line, without the password", cmd.ProcessState.ExitCode(), out)
	}
}

// TestRedisSentinelPasswords: the master's password and the Sentinels' own
// (sentinel_password) in a redis+sentinel:// URL reach each, through a failover.
func TestRedisSentinelPasswords(t *testing.T) {
	t.Parallel()
	s := rediscluster.StartSentinelAuth(t, "m@ster:pw", "s3ntinel")
	nodes := startNodes(t, 2, multinodeScripts(t), s.URL())
	const topic = "mn:room"
	ann, bob := joinAs(t, nodes[0], topic, "1", "ann"), joinAs(t, nodes[1], topic, "1", "bob")
	exchange(t, topic, ann, bob, ann, bob)
	s.KillMaster(t)
	nodes[0].log.waitFor(t, rediscluster.Wait, logRedisBack)
	nodes[1].log.waitFor(t, rediscluster.Wait, logRedisBack)
	exchange(t, topic, ann, bob, ann, bob)
	storeIncr(t, topic, topic, ann, bob, 5)
}
