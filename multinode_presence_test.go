package luachan_test

// SPEC section 6 with Redis and with NATS: presence spans the nodes, and a node that dies has its
// entries removed (one leave diff per survivor's client, not one per survivor) within
// the presence TTL and a quarter; LUACHAN_PRESENCE_TTL shortens it here from 20 s to 1 s.

import (
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"
)

const multinodePresenceTTL = time.Second

func TestMultinodePresence(t *testing.T) {
	t.Parallel()
	forEachBroker(t, testMultinodePresence)
}

func testMultinodePresence(t *testing.T, rs testBroker) {
	dir, err := filepath.Abs(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"LUACHAN_PRESENCE_TTL=" + multinodePresenceTTL.String()}
	n1 := startServerEnv(t, env, dir, "-pubsub", rs.url())
	n2 := startServerEnv(t, env, dir, "-pubsub", rs.url())
	n3 := startServerEnv(t, env, dir, "-pubsub", rs.url())
	const topic = "presence:lobby"

	// alice on n1, carol on n3, bob on n2: each joiner's state holds every node's entries.
	alice := n1.dial(t, "vsn=2.0.0")
	st, _ := joinPresence(alice, topic, "1", "alice")
	aliceMeta := st.one(t, "alice")

	carol := n3.dial(t, "vsn=2.0.0")
	st = joinPresenceRemote(carol, topic, "1", "carol")
	if !reflect.DeepEqual(st.keys(), []string{"alice", "carol"}) || !reflect.DeepEqual(st.one(t, "alice"), aliceMeta) {
		t.Fatalf("carol's presence_state on another node %+v, want alice (as tracked) and carol", st)
	}
	carolMeta := st.one(t, "carol")
	var d presenceDiff
	expectPush(t, alice.readMsg(), nil, topic, "presence_diff", &d)
	if !reflect.DeepEqual(d.Joins, presenceState{"carol": {Metas: []map[string]any{carolMeta}}}) || len(d.Leaves) != 0 {
		t.Fatalf("alice got %+v, want carol's join", d)
	}

	bob := n2.dial(t, "vsn=2.0.0")
	st = joinPresenceRemote(bob, topic, "1", "bob")
	bobMeta := st.one(t, "bob")
	checkMeta(t, bobMeta, "online", "")
	all := presenceState{
		"alice": {Metas: []map[string]any{aliceMeta}},
		"bob":   {Metas: []map[string]any{bobMeta}},
		"carol": {Metas: []map[string]any{carolMeta}},
	}
	if !reflect.DeepEqual(st, all) {
		t.Fatalf("bob's presence_state %+v, want %+v", st, all)
	}
	for _, c := range []*wsClient{alice, carol} {
		expectPush(t, c.readMsg(), nil, topic, "presence_diff", &d)
		if !reflect.DeepEqual(d.Joins, presenceState{"bob": {Metas: []map[string]any{bobMeta}}}) || len(d.Leaves) != 0 {
			t.Fatalf("got %+v, want bob's join", d)
		}
	}
	// luachan.presence.list agrees on every node.
	for i, c := range []*wsClient{alice, bob, carol} {
		if got := serverList(c, topic, "1", "2"); !reflect.DeepEqual(got, all) {
			t.Fatalf("luachan.presence.list on node %d: %+v, want %+v", i+1, got, all)
		}
	}

	// kill -9 bob's node: within the TTL and a quarter (and some slack), alice and carol
	// get bob's leave, once each.
	n2.stopOnce.Do(func() {
		_ = n2.cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-n2.done:
		case <-time.After(stopTimeout):
			t.Fatalf("luachan did not exit after SIGKILL")
		}
	})
	killed := time.Now()
	wantLeave := presenceDiff{Joins: presenceState{}, Leaves: presenceState{"bob": {Metas: []map[string]any{bobMeta}}}}
	for _, c := range []*wsClient{alice, carol} {
		expectPush(t, c.readMsg(), nil, topic, "presence_diff", &d)
		if !reflect.DeepEqual(d, wantLeave) {
			t.Fatalf("after bob's node died: got %+v, want %+v", d, wantLeave)
		}
	}
	if took := time.Since(killed); took > 4*multinodePresenceTTL {
		t.Errorf("bob's leave came %v after his node died, want within about %v", took, 5*multinodePresenceTTL/4)
	}
	time.Sleep(multinodePresenceTTL / 2) // a couple more janitor rounds on each survivor
	rest := presenceState{"alice": all["alice"], "carol": all["carol"]}
	for i, c := range []*wsClient{alice, carol} {
		c.heartbeat("h") // no second leave came first
		if got := serverList(c, topic, "1", "3"); !reflect.DeepEqual(got, rest) {
			t.Fatalf("luachan.presence.list on survivor %d: %+v, want %+v", i+1, got, rest)
		}
	}

	// A leave on one node reaches the other and leaves the lists.
	carol.send(`["1","4","presence:lobby","phx_leave",{}]`)
	carol.expect(`["1","4","presence:lobby","phx_reply",{"status":"ok","response":{}}]`)
	carol.expect(`["1","1","presence:lobby","phx_close",{}]`)
	expectPush(t, alice.readMsg(), nil, topic, "presence_diff", &d)
	if want := (presenceDiff{Joins: presenceState{}, Leaves: presenceState{"carol": all["carol"]}}); !reflect.DeepEqual(d, want) {
		t.Fatalf("carol's leave %+v, want %+v", d, want)
	}
	if got, want := serverList(alice, topic, "1", "5"), (presenceState{"alice": all["alice"]}); !reflect.DeepEqual(got, want) {
		t.Fatalf("luachan.presence.list after carol left: %+v, want %+v", got, want)
	}
}
