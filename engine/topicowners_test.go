package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/luachan/luachan/store"
)

// memOwners is a TopicOwners of one node that always holds the lease it gives, with a
// store whose saves can be made to fail.
type memOwners struct {
	mu       sync.Mutex
	lease    string // the lease the store honours
	saved    []byte
	replies  map[string][]byte // by call id
	failSave bool
	lostAck  bool          // Save stores, then fails as if its answer were lost
	hold     chan struct{} // when not nil, Save says so on held, then waits for it to close
	held     chan struct{}
	// elsewhere: another node owns the topic (Want gives no lease here); Unwant then
	// says this node was the last to want it, with the saved state.
	elsewhere bool
}

func (m *memOwners) Want(topic string, o TopicOwner) {
	m.mu.Lock()
	lease, saved, elsewhere := m.lease, m.saved, m.elsewhere
	m.mu.Unlock()
	if !elsewhere {
		o.Owned(lease, saved)
	}
}

func (m *memOwners) Unwant(context.Context, string, TopicOwner) (bool, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.elsewhere {
		return true, m.saved, nil
	}
	return true, nil, nil
}

func (m *memOwners) Save(_ context.Context, _, lease string, state []byte, callID string, reply []byte) (bool, error) {
	m.mu.Lock()
	hold, held := m.hold, m.held
	m.mu.Unlock()
	if hold != nil {
		held <- struct{}{}
		<-hold
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.failSave:
		return false, errors.New("store down")
	case lease != m.lease:
		return false, nil
	}
	m.saved = state
	if m.lostAck {
		return false, errors.New("store timed out")
	}
	if callID != "" {
		m.replies[callID] = reply
	}
	return true, nil
}

func (m *memOwners) Load(_ context.Context, _, lease string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saved, lease == m.lease, nil
}

func (m *memOwners) Forward(context.Context, string, []byte) ([]byte, bool, error) {
	return nil, false, errors.New("no other node in this test")
}

func (m *memOwners) savedState() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return string(m.saved)
}

func (m *memOwners) set(f func(m *memOwners)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m)
}

const counterLua = `local ts = { topic = "ts:*" }
function ts.init(topic, params) return { n = 0 } end
function ts.join(topic, payload, socket) return true end
function ts.handle_in(event, payload, socket)
  local r, err = socket:call({ op = event })
  if r == nil then return "error", { reason = err } end
  return "ok", r
end
function ts.handle_call(msg, state, socket)
  if msg.op == "add" then state.n = state.n + 1 end
  if msg.tell then socket:push("added", { n = state.n, by = socket.id }) end
  return { n = state.n }, state
end
return ts
`

// TestTopicOwnersSave: with TopicOwners, a call's new state is saved before its reply;
// a failed save is an error to the caller and leaves the state as last saved; a lease
// the store no longer honours runs nothing more; a forwarded call runs only under the
// lease it was sent for, and its reply is saved with the state.
func TestTopicOwnersSave(t *testing.T) {
	m := &memOwners{lease: "L1", replies: map[string][]byte{}}
	r := startRigWith(t, map[string]string{"ts.lua": counterLua}, Config{TopicOwners: m})
	c := r.dial(t)
	c.join("ts:a", "1")
	c.send(`["1","2","ts:a","add",{}]`)
	c.expect(`["1","2","ts:a","phx_reply",{"status":"ok","response":{"n":1}}]`)
	if saved := m.savedState(); saved != `{"n":1}` {
		t.Fatalf("saved %s, want {\"n\":1}", saved)
	}

	m.set(func(m *memOwners) { m.failSave = true })
	c.send(`["1","3","ts:a","add",{}]`)
	reply := string(c.readFrame("the failed add's reply"))
	if !strings.Contains(reply, `"status":"error"`) || !strings.Contains(reply, "could not be saved") {
		t.Fatalf("add with the store down: %s; want an error saying the state was not saved", reply)
	}
	m.set(func(m *memOwners) { m.failSave = false })
	c.send(`["1","4","ts:a","get",{}]`)
	c.expect(`["1","4","ts:a","phx_reply",{"status":"ok","response":{"n":1}}]`)
	c.send(`["1","5","ts:a","add",{}]`)
	c.expect(`["1","5","ts:a","phx_reply",{"status":"ok","response":{"n":2}}]`)

	// A forwarded call for another lease is not run: moved.
	ts := r.eng.states.get("ts:a")
	type answer struct {
		reply []byte
		moved bool
		err   error
	}
	got := make(chan answer, 1)
	done := func(reply []byte, moved bool, err error) { got <- answer{reply, moved, err} }
	ts.Call("L0", "c1", []byte(`{"m":{"op":"add"}}`), time.Second, done)
	if a := <-got; !a.moved || a.err != nil {
		t.Fatalf("a call for an old lease: %+v; want moved", a)
	}
	// One for this node's lease runs, with a socket standing for the caller's; the sends
	// made on it come back with the reply.
	ts.Call("L1", "c2", []byte(`{"m":{"op":"add","tell":true},"id":"s1","j":"7"}`), time.Second, done)
	a := <-got
	var fr forwardedReply
	if a.moved || a.err != nil || json.Unmarshal(a.reply, &fr) != nil || string(fr.Reply) != `{"n":3}` || len(fr.Sends) != 1 {
		t.Fatalf("a forwarded call: %s %+v; want n 3 and one push", a.reply, a)
	}
	var pushed map[string]any
	if f := fr.Sends[0]; f.Kind != sendKindPush || f.Event != "added" || json.Unmarshal(f.Data, &pushed) != nil ||
		!reflect.DeepEqual(pushed, map[string]any{"n": 3.0, "by": "s1"}) {
		t.Fatalf("the forwarded call's push: %+v (%s); want added {n=3, by=s1}", f, f.Data)
	}
	m.mu.Lock()
	saved := string(m.replies["c2"])
	m.mu.Unlock()
	if saved != string(a.reply) {
		t.Fatalf("the forwarded call's reply saved with the state: %q, want %q", saved, a.reply)
	}

	// The store gave the lease to another node: the call is not applied.
	m.set(func(m *memOwners) { m.lease = "L2" })
	c.send(`["1","6","ts:a","add",{}]`)
	reply = string(c.readFrame("the add after the lease moved"))
	if !strings.Contains(reply, `"status":"error"`) || !strings.Contains(reply, "no longer owns") {
		t.Fatalf("add after the lease moved: %s; want an error saying so", reply)
	}
	if saved := m.savedState(); saved != `{"n":3}` {
		t.Fatalf("saved %s after the lease moved, want {\"n\":3}", saved)
	}
}

// TestTopicOwnersNoTickAfterTerminate: a tick whose timer fires as the grace ends, and
// so is queued behind the terminate, runs nothing: the lease is let go, and the next
// owner ticks on from the state saved before. (Run, it broadcast a tick the next owner
// then broadcast again.)
func TestTopicOwnersNoTickAfterTerminate(t *testing.T) {
	m := &memOwners{lease: "L1", replies: map[string][]byte{}}
	ticking := strings.Replace(counterLua, `topic = "ts:*"`, `topic = "ts:*", tick = 60000`, 1)
	ticking = strings.Replace(ticking, "return ts\n", `function ts.handle_tick(state, topic)
  state.n = state.n + 1
  return state
end
return ts
`, 1)
	r := startRigWith(t, map[string]string{"ts.lua": ticking}, Config{TopicOwners: m})
	c := r.dial(t)
	c.join("ts:a", "1")
	c.send(`["1","2","ts:a","add",{}]`)
	c.expect(`["1","2","ts:a","phx_reply",{"status":"ok","response":{"n":1}}]`)
	c.send(`["1","3","ts:a","phx_leave",{}]`)
	c.expect(`["1","3","ts:a","phx_reply",{"status":"ok","response":{}}]`)
	c.expect(`["1","1","ts:a","phx_close",{}]`)

	ts := r.eng.states.get("ts:a")
	ts.mu.Lock()
	tickPending := ts.tick != nil
	ts.mu.Unlock()
	if !tickPending {
		t.Fatal("after the leave: no tick pending")
	}
	endGrace(t, ts) // terminate is queued, then the tick
	_ = ts.post(stateJob{kind: jobTick})
	waitFor(t, "the topic's jobs to run", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return !ts.running
	})
	if !ts.hasEnded() || r.eng.states.get("ts:a") != nil {
		t.Fatal("terminate did not end the topic's state")
	}
	if saved := m.savedState(); saved != `{"n":1}` {
		t.Fatalf("saved %s after terminate, want {\"n\":1}: the tick queued behind terminate ran", saved)
	}
	// A call another node forwards to this one late finds the lease let go: moved, to
	// be sent to the topic's next owner, not run on the ended state.
	moved := make(chan bool, 1)
	ts.Call("L1", "late", []byte(`{"m":{"op":"add"}}`), time.Second, func(_ []byte, m bool, err error) { moved <- m && err == nil })
	if !<-moved {
		t.Fatal("a call forwarded after terminate was not answered moved")
	}
	if saved := m.savedState(); saved != `{"n":1}` {
		t.Fatalf("saved %s after a call forwarded after terminate, want {\"n\":1}", saved)
	}
}

// tickingLua is counterLua with a tick (only the test runs it: a minute apart) that
// broadcasts its count, and how many ticks have run (which no failure rolls back), and
// raises once a call has set fail.
var tickingLua = strings.NewReplacer(`topic = "ts:*"`, `topic = "ts:*", tick = 60000`,
	`if msg.op == "add" then`, `if msg.op == "fail" then state.fail = true end
  if msg.op == "add" then`,
	"return ts\n", `function ts.handle_tick(state, topic)
  state.n = state.n + 1
  luachan.broadcast(topic, "tick", { n = state.n, run = luachan.store.incr("runs") })
  if state.fail then error("tick failed") end
  return state
end
return ts
`).Replace(counterLua)

// TestTickSendsAfterSave: a tick's luachan.broadcast goes out once its state is kept;
// a tick that raises, or whose save fails, sends nothing (across nodes the next owner,
// starting from the state saved before, would send it again), unless the state read
// back shows the failed save stored it after all.
func TestTickSendsAfterSave(t *testing.T) {
	for _, shared := range []bool{false, true} {
		name := "one node"
		if shared {
			name = "with TopicOwners"
		}
		t.Run(name, func(t *testing.T) {
			m := &memOwners{lease: "L1", replies: map[string][]byte{}}
			cfg := Config{Store: store.NewMemory()}
			if shared {
				cfg.TopicOwners = m
			}
			r := startRigWith(t, map[string]string{"ts.lua": tickingLua}, cfg)
			c := r.dial(t)
			c.join("ts:a", "1")
			ts := r.eng.states.get("ts:a")
			tick := func() { _ = ts.post(stateJob{kind: jobTick}) }
			failures := func(n uint64) {
				t.Helper()
				waitFor(t, "the failed save", func() bool { return r.eng.count.saveFailures.Load() == n })
			}

			tick()
			c.expect(`[null,null,"ts:a","tick",{"n":1,"run":1}]`)
			n := 1
			if shared {
				m.set(func(m *memOwners) { m.failSave = true })
				tick() // n 2, run 2: not saved, not sent
				failures(1)
				m.set(func(m *memOwners) { m.failSave = false })
				tick() // from the state read back: n 1
				c.expect(`[null,null,"ts:a","tick",{"n":2,"run":3}]`)

				m.set(func(m *memOwners) { m.lostAck = true })
				tick() // n 3, run 4: stored, but the save says it failed
				failures(2)
				m.set(func(m *memOwners) { m.lostAck = false })
				tick() // the state read back is n 3: that tick's broadcast goes, then this one's
				c.expect(`[null,null,"ts:a","tick",{"n":3,"run":4}]`)
				c.expect(`[null,null,"ts:a","tick",{"n":4,"run":5}]`)
				n = 4
			}
			c.send(`["1","2","ts:a","fail",{}]`)
			c.expect(fmt.Sprintf(`["1","2","ts:a","phx_reply",{"status":"ok","response":{"n":%d}}]`, n))
			tick()
			waitFor(t, "the tick's error", func() bool { return strings.Contains(r.log.String(), "tick failed") })
			c.heartbeat("3") // nothing was sent before its reply
		})
	}
}

// TestTopicOwnersCallTimeout: a call still queued when its caller's time is up never
// runs, and a caller whose call is running when its time is up gets that call's
// result: no call applies while its caller hears it failed.
func TestTopicOwnersCallTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the 5 s call timeout")
	}
	m := &memOwners{lease: "L1", replies: map[string][]byte{}}
	r := startRigWith(t, map[string]string{"ts.lua": counterLua}, Config{TopicOwners: m})
	running, queued := r.dial(t), r.dial(t)
	running.join("ts:a", "1")
	queued.join("ts:a", "1")
	hold, held := make(chan struct{}), make(chan struct{}, 1)
	m.set(func(m *memOwners) { m.hold, m.held = hold, held })
	running.send(`["1","2","ts:a","add",{}]`) // its save waits on hold
	select {
	case <-held:
	case <-time.After(rigTimeout):
		t.Fatal("the first call did not reach its save")
	}
	queued.send(`["1","2","ts:a","add",{}]`) // queued behind it until both time out
	_ = queued.conn.SetReadDeadline(time.Now().Add(callTimeout + rigTimeout))
	if _, data, err := queued.conn.ReadMessage(); err != nil || !strings.Contains(string(data), "topic state call timed out") {
		t.Fatalf("the queued call: %s %v; want its time-out", data, err)
	}
	m.set(func(m *memOwners) { m.hold = nil })
	close(hold)
	running.expect(`["1","2","ts:a","phx_reply",{"status":"ok","response":{"n":1}}]`)
	running.send(`["1","3","ts:a","get",{}]`)
	running.expect(`["1","3","ts:a","phx_reply",{"status":"ok","response":{"n":1}}]`)
}

// TestTopicOwnersTerminateWithoutTheLease: a node that never owned the topic, and is the
// last to want it (its owner let the lease go to it while it was ending too), runs
// terminate on the state the store held.
func TestTopicOwnersTerminateWithoutTheLease(t *testing.T) {
	m := &memOwners{elsewhere: true, saved: []byte(`{"n":7}`), replies: map[string][]byte{}}
	ending := strings.Replace(counterLua, "return ts\n", `function ts.terminate(state, topic)
  luachan.log("info", "terminated", { n = state.n, topic = topic })
end
return ts
`, 1)
	r := startRigWith(t, map[string]string{"ts.lua": ending}, Config{TopicOwners: m})
	c := r.dial(t)
	c.join("ts:a", "1")
	c.send(`["1","2","ts:a","phx_leave",{}]`)
	c.expect(`["1","2","ts:a","phx_reply",{"status":"ok","response":{}}]`)
	endGrace(t, r.eng.states.get("ts:a"))
	waitFor(t, "terminate on the saved state", func() bool {
		return strings.Contains(r.log.String(), "msg=terminated") && strings.Contains(r.log.String(), "n=7")
	})
}

// endGrace ends ts's grace as if its timer had fired: ts must have no subscriber left and
// a grace running; the terminate job is queued.
func endGrace(t *testing.T, ts *topicState) {
	t.Helper()
	ts.mu.Lock()
	if ts.subs != 0 || ts.grace == nil {
		ts.mu.Unlock()
		t.Fatalf("after the last leave: %d subscribers, grace %v; want 0 and a grace running", ts.subs, ts.grace)
	}
	ts.grace.Stop()
	ts.grace = nil
	ts.mu.Unlock()
	_ = ts.post(stateJob{kind: jobTerminate})
}
