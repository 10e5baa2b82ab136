package luachan_test

// SPEC section 6 on the wire, through scripts/examples/presence.lua: presence_state and
// presence_diff with Phoenix's shapes through joins, an update, a leave and a dropped
// connection, and luachan.presence.list agreeing with what the clients were told.

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// presenceMetas is one key of a presence_state or of a diff's joins or leaves.
type presenceMetas struct {
	Metas []map[string]any `json:"metas"`
}

// presenceState is a presence_state payload, and luachan.presence.list's result.
type presenceState map[string]presenceMetas

// presenceDiff is a presence_diff payload.
type presenceDiff struct {
	Joins  presenceState `json:"joins"`
	Leaves presenceState `json:"leaves"`
}

// wireMsg is a V2 frame split into its parts, the payload kept as JSON text.
type wireMsg struct {
	joinRef, ref  any // string or nil
	topic, event  string
	payload       json.RawMessage
	text          string          // the whole frame, for failure messages
	replyStatus   string          // a phx_reply's status
	replyResponse json.RawMessage // a phx_reply's response
}

// readMsg reads the next frame as a V2 JSON array.
func (c *wsClient) readMsg() wireMsg {
	c.tb.Helper()
	for {
		if m := c.readOneMsg(); !c.skipInFlight(m) {
			return m
		}
	}
}

// skipInFlight reports whether m is the presence_diff joining one of c.inFlight's keys
// with exactly its metas, the first such diff for that key.
func (c *wsClient) skipInFlight(m wireMsg) bool {
	if len(c.inFlight) == 0 || m.event != "presence_diff" || m.joinRef != nil || m.ref != nil {
		return false
	}
	var d presenceDiff
	if err := json.Unmarshal(m.payload, &d); err != nil || len(d.Leaves) != 0 || len(d.Joins) != 1 {
		return false
	}
	for key, metas := range d.Joins {
		if want, ok := c.inFlight[key]; !ok || !reflect.DeepEqual(metas, want) {
			return false
		}
		delete(c.inFlight, key)
	}
	return true
}

func (c *wsClient) readOneMsg() wireMsg {
	c.tb.Helper()
	v := c.readArray()
	m := wireMsg{joinRef: v[0], ref: v[1], payload: mustJSON(c.tb, v[4])}
	m.text = string(mustJSON(c.tb, v))
	var ok1, ok2 bool
	m.topic, ok1 = v[2].(string)
	m.event, ok2 = v[3].(string)
	if !ok1 || !ok2 {
		c.tb.Fatalf("frame %s: topic and event must be strings", m.text)
	}
	if m.event == "phx_reply" {
		var r struct {
			Status   string          `json:"status"`
			Response json.RawMessage `json:"response"`
		}
		if err := json.Unmarshal(m.payload, &r); err != nil {
			c.tb.Fatalf("phx_reply %s: %v", m.text, err)
		}
		m.replyStatus, m.replyResponse = r.Status, r.Response
	}
	return m
}

// readMsgs reads exactly n frames.
func (c *wsClient) readMsgs(n int) []wireMsg {
	c.tb.Helper()
	out := make([]wireMsg, n)
	for i := range out {
		out[i] = c.readMsg()
	}
	return out
}

// pick returns the only message of msgs with event, failing unless there is exactly one.
func pick(tb testing.TB, msgs []wireMsg, event string) wireMsg {
	tb.Helper()
	var found []wireMsg
	for _, m := range msgs {
		if m.event == event {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		tb.Fatalf("want exactly one %s among %d frames, got %d: %v", event, len(msgs), len(found), texts(msgs))
	}
	return found[0]
}

func texts(msgs []wireMsg) []string {
	var s []string
	for _, m := range msgs {
		s = append(s, m.text)
	}
	return s
}

// expectPush requires m to be a server push [joinRef, null, topic, event, _] (a broadcast
// when joinRef is nil) and decodes its payload into v, a pointer, zeroed first.
func expectPush(tb testing.TB, m wireMsg, joinRef any, topic, event string, v any) {
	tb.Helper()
	if m.joinRef != joinRef || m.ref != nil || m.topic != topic || m.event != event {
		tb.Fatalf("got %s, want [%s,null,%q,%q,...]", m.text, jsonText(joinRef), topic, event)
	}
	reflect.ValueOf(v).Elem().SetZero() // decoding into a used map would merge into it
	dec := json.NewDecoder(strings.NewReader(string(m.payload)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		tb.Fatalf("%s payload %s: %v", event, m.payload, err)
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// keys returns a state's keys, sorted.
func (s presenceState) keys() []string { return slices.Sorted(maps.Keys(s)) }

// one returns the only meta of key, failing unless there is exactly one.
func (s presenceState) one(tb testing.TB, key string) map[string]any {
	tb.Helper()
	if len(s[key].Metas) != 1 {
		tb.Fatalf("want exactly one meta under %q, got %+v", key, s)
	}
	return s[key].Metas[0]
}

// anyPrev tells checkMeta that phx_ref_prev may be there or not.
const anyPrev = "*"

// checkMeta requires meta to be presence.lua's: status, a numeric online_at and a
// phx_ref, plus phx_ref_prev equal to prev when prev is not "" (any, with anyPrev).
func checkMeta(tb testing.TB, meta map[string]any, status, prev string) {
	tb.Helper()
	want := map[string]bool{"phx_ref": true, "online_at": true, "status": true}
	if prev != "" {
		want["phx_ref_prev"] = true
	}
	for k := range meta {
		if !want[k] {
			tb.Fatalf("meta %v has an unexpected key %q", meta, k)
		}
	}
	if ref, _ := meta["phx_ref"].(string); ref == "" {
		tb.Fatalf("meta %v: phx_ref must be a non-empty string", meta)
	}
	if _, ok := meta["online_at"].(float64); !ok {
		tb.Fatalf("meta %v: online_at must be a number", meta)
	}
	if meta["status"] != status {
		tb.Fatalf("meta %v: status %v, want %q", meta, meta["status"], status)
	}
	if prev != "" && prev != anyPrev && meta["phx_ref_prev"] != prev {
		tb.Fatalf("meta %v: phx_ref_prev %v, want %q", meta, meta["phx_ref_prev"], prev)
	}
}

// joinPresence joins topic as user and returns the presence_state pushed to the joiner
// and the presence_diff of its own join, which comes after it: join reply, state, diff.
func joinPresence(c *wsClient, topic, joinRef, user string) (presenceState, presenceDiff) {
	c.tb.Helper()
	return joinPresenceAs(c, topic, joinRef, user, user)
}

// joinPresenceAs is joinPresence for a socket whose connect gave it assigns.user key,
// which presence.lua tracks whatever user the join payload names.
func joinPresenceAs(c *wsClient, topic, joinRef, user, key string) (presenceState, presenceDiff) {
	c.tb.Helper()
	c.join(topic, joinRef, fmt.Sprintf(`{"user":%q}`, user), `{}`)
	var st presenceState
	expectPush(c.tb, c.readMsg(), joinRef, topic, "presence_state", &st)
	return st, expectOwnJoin(c, topic, key)
}

// expectOwnJoin reads the presence_diff of c's own join, under key.
func expectOwnJoin(c *wsClient, topic, key string) presenceDiff {
	c.tb.Helper()
	var d presenceDiff
	expectPush(c.tb, c.readMsg(), nil, topic, "presence_diff", &d)
	if len(d.Leaves) != 0 || !reflect.DeepEqual(d.Joins.keys(), []string{key}) {
		c.tb.Fatalf("own join diff %+v, want a join of %q only", d, key)
	}
	return d
}

// joinPresenceRemote is joinPresence for a client whose topic has presences on other
// nodes. A join there whose presence_diff was still on its way through the broker when
// c joined reaches c as well, before or after c's presence_state, which already holds
// it: Phoenix's Presence applies such a diff as a no-op. From here on c skips one
// such diff per key of the state, and only one carrying exactly the state's metas.
func joinPresenceRemote(c *wsClient, topic, joinRef, user string) presenceState {
	c.tb.Helper()
	c.join(topic, joinRef, fmt.Sprintf(`{"user":%q}`, user), `{}`)
	var early []wireMsg
	m := c.readMsg()
	for m.event == "presence_diff" && m.joinRef == nil {
		early = append(early, m)
		m = c.readMsg()
	}
	var st presenceState
	expectPush(c.tb, m, joinRef, topic, "presence_state", &st)
	c.inFlight = maps.Clone(st)
	delete(c.inFlight, user)
	for _, e := range early {
		if !c.skipInFlight(e) {
			c.tb.Fatalf("before its presence_state %+v, %s got %s: want only joins in flight from other nodes", st, user, e.text)
		}
	}
	expectOwnJoin(c, topic, user)
	return st
}

// serverList asks presence.lua for luachan.presence.list(topic).
func serverList(c *wsClient, topic, joinRef, ref string) presenceState {
	c.tb.Helper()
	c.send(fmt.Sprintf(`[%q,%q,%q,"list",{}]`, joinRef, ref, topic))
	m := c.readMsg()
	if m.event != "phx_reply" || m.ref != ref || m.replyStatus != "ok" {
		c.tb.Fatalf("list: got %s, want an ok reply to ref %s", m.text, ref)
	}
	var st presenceState
	if err := json.Unmarshal(m.replyResponse, &st); err != nil {
		c.tb.Fatalf("list reply %s: %v", m.replyResponse, err)
	}
	return st
}

func TestExamplePresence(t *testing.T) {
	t.Parallel()
	s := startExamples(t)
	const topic = "presence:lobby"

	// alice joins: the state she gets holds only herself, and so does the diff
	alice := s.dial(t, "vsn=2.0.0")
	st, d := joinPresence(alice, topic, "1", "alice")
	if !reflect.DeepEqual(st.keys(), []string{"alice"}) {
		t.Fatalf("alice's presence_state %+v, want alice only", st)
	}
	aliceMeta := st.one(t, "alice")
	checkMeta(t, aliceMeta, "online", "")
	if !reflect.DeepEqual(d.Joins, st) {
		t.Fatalf("alice's join diff %+v differs from her state %+v", d.Joins, st)
	}

	// bob joins: his state holds both; alice is told of bob's join only
	bob := s.dial(t, "vsn=2.0.0")
	st, _ = joinPresence(bob, topic, "1", "bob")
	if !reflect.DeepEqual(st.keys(), []string{"alice", "bob"}) || !reflect.DeepEqual(st.one(t, "alice"), aliceMeta) {
		t.Fatalf("bob's presence_state %+v, want alice (as tracked) and bob", st)
	}
	bobMeta := st.one(t, "bob")
	checkMeta(t, bobMeta, "online", "")
	if bobMeta["phx_ref"] == aliceMeta["phx_ref"] {
		t.Fatalf("alice and bob share phx_ref %v", bobMeta["phx_ref"])
	}
	expectPush(t, alice.readMsg(), nil, topic, "presence_diff", &d)
	if want := (presenceDiff{Joins: presenceState{"bob": {Metas: []map[string]any{bobMeta}}}, Leaves: presenceState{}}); !reflect.DeepEqual(d, want) {
		t.Fatalf("alice got diff %+v, want %+v", d, want)
	}
	both := presenceState{"alice": {Metas: []map[string]any{aliceMeta}}, "bob": {Metas: []map[string]any{bobMeta}}}
	if got := serverList(alice, topic, "1", "2"); !reflect.DeepEqual(got, both) {
		t.Fatalf("luachan.presence.list %+v, want %+v", got, both)
	}

	// bob goes away: one diff, to both, joining the new meta and leaving the old
	bob.send(`["1","3","presence:lobby","status",{"status":"away"}]`)
	msgs := bob.readMsgs(2)
	if r := pick(t, msgs, "phx_reply"); r.ref != "3" || r.replyStatus != "ok" {
		t.Fatalf("status reply %s, want ok", r.text)
	}
	expectPush(t, pick(t, msgs, "presence_diff"), nil, topic, "presence_diff", &d)
	var atAlice presenceDiff
	expectPush(t, alice.readMsg(), nil, topic, "presence_diff", &atAlice)
	if !reflect.DeepEqual(d, atAlice) {
		t.Fatalf("bob's update reached bob as %+v and alice as %+v", d, atAlice)
	}
	if !reflect.DeepEqual(d.Leaves, presenceState{"bob": {Metas: []map[string]any{bobMeta}}}) {
		t.Fatalf("update diff leaves %+v, want bob's old meta", d.Leaves)
	}
	awayMeta := d.Joins.one(t, "bob")
	checkMeta(t, awayMeta, "away", bobMeta["phx_ref"].(string))
	if len(d.Joins) != 1 || awayMeta["online_at"] != bobMeta["online_at"] || awayMeta["phx_ref"] == bobMeta["phx_ref"] {
		t.Fatalf("update diff joins %+v: want bob only, same online_at, a new phx_ref", d.Joins)
	}
	if got := serverList(bob, topic, "1", "4"); !reflect.DeepEqual(got.one(t, "bob"), awayMeta) || len(got) != 2 {
		t.Fatalf("luachan.presence.list after the update %+v, want alice and bob away", got)
	}

	// a second alice (another tab): one key, two metas
	alice2 := s.dial(t, "vsn=2.0.0")
	st, _ = joinPresence(alice2, topic, "1", "alice")
	if len(st["alice"].Metas) != 2 || !reflect.DeepEqual(st["alice"].Metas[0], aliceMeta) {
		t.Fatalf("alice2's presence_state %+v, want alice with two metas, the first tab's first", st)
	}
	alice2Meta := st["alice"].Metas[1]
	checkMeta(t, alice2Meta, "online", "")
	for _, c := range []*wsClient{alice, bob} {
		expectPush(t, c.readMsg(), nil, topic, "presence_diff", &d)
		if !reflect.DeepEqual(d.Joins, presenceState{"alice": {Metas: []map[string]any{alice2Meta}}}) || len(d.Leaves) != 0 {
			t.Fatalf("second alice's join diff %+v, want her new meta only", d)
		}
	}

	// bob leaves: alice and alice2 see his leave
	bob.send(`["1","5","presence:lobby","phx_leave",{}]`)
	bob.expect(`["1","5","presence:lobby","phx_reply",{"status":"ok","response":{}}]`)
	bob.expect(`["1","1","presence:lobby","phx_close",{}]`)
	for _, c := range []*wsClient{alice, alice2} {
		expectPush(t, c.readMsg(), nil, topic, "presence_diff", &d)
		if want := (presenceDiff{Joins: presenceState{}, Leaves: presenceState{"bob": {Metas: []map[string]any{awayMeta}}}}); !reflect.DeepEqual(d, want) {
			t.Fatalf("bob's leave diff %+v, want %+v", d, want)
		}
	}

	// alice2's connection drops: alice sees that one meta leave, her own stays
	alice2.conn.Close()
	expectPush(t, alice.readMsg(), nil, topic, "presence_diff", &d)
	if want := (presenceDiff{Joins: presenceState{}, Leaves: presenceState{"alice": {Metas: []map[string]any{alice2Meta}}}}); !reflect.DeepEqual(d, want) {
		t.Fatalf("alice2's drop diff %+v, want %+v", d, want)
	}
	want := presenceState{"alice": {Metas: []map[string]any{aliceMeta}}}
	if got := serverList(alice, topic, "1", "6"); !reflect.DeepEqual(got, want) {
		t.Fatalf("luachan.presence.list at the end %+v, want %+v", got, want)
	}

	// another topic's presence is its own
	other := s.dial(t, "vsn=2.0.0")
	st, _ = joinPresence(other, "presence:other", "1", "carol")
	if !reflect.DeepEqual(st.keys(), []string{"carol"}) {
		t.Fatalf("presence:other state %+v, want carol only", st)
	}
	alice.heartbeat("7") // nothing of presence:other reached alice
}

func TestExamplePresenceJoin(t *testing.T) {
	t.Parallel()
	s := startExamples(t)
	c := s.dial(t, "vsn=2.0.0")
	// one topic each: a refused join followed by another join of its topic may draw a
	// stray phx_close (an engine race, not presence.lua's doing)
	for i, payload := range []string{`{}`, `{"user":42}`, `{"user":null}`} {
		ref := fmt.Sprint(i + 1)
		c.send(fmt.Sprintf(`[%q,%q,"presence:refused%s","phx_join",%s]`, ref, ref, ref, payload))
		c.expect(fmt.Sprintf(`[%q,%q,"presence:refused%s","phx_reply",{"status":"error","response":{"reason":"unauthorized"}}]`, ref, ref, ref))
	}
	// a status sent right behind the join may be handled before the track (a timer) runs:
	// it is kept, not lost and not a crash
	c.send(`["9","9","presence:early","phx_join",{"user":"dan"}]`)
	c.send(`["9","10","presence:early","status",{"status":"busy"}]`)
	if m := c.readMsg(); m.ref != "9" || m.replyStatus != "ok" {
		t.Fatalf("first frame %s, want the join reply", m.text)
	}
	r, before := c.readUntilReply("10")
	if r.replyStatus != "ok" {
		t.Fatalf("status reply %s, want ok", r.text)
	}
	tracked := slices.ContainsFunc(before, func(m wireMsg) bool { return m.event == "presence_state" })
	for !tracked { // the track runs on a timer: wait for its presence_state
		tracked = c.readMsg().event == "presence_state"
	}
	c.send(`["9","11","presence:early","list",{}]`)
	r, _ = c.readUntilReply("11")
	var st presenceState
	if err := json.Unmarshal(r.replyResponse, &st); err != nil || len(st) != 1 {
		t.Fatalf("list reply %s (%v), want dan only", r.text, err)
	}
	checkMeta(t, st.one(t, "dan"), "busy", anyPrev)
}

// readUntilReply reads frames until the phx_reply to ref and returns it with the frames
// before it.
func (c *wsClient) readUntilReply(ref string) (wireMsg, []wireMsg) {
	c.tb.Helper()
	var before []wireMsg
	for {
		m := c.readMsg()
		if m.event == "phx_reply" && m.ref == ref {
			return m, before
		}
		before = append(before, m)
	}
}
