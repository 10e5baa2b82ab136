package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/luachan/luachan/internal/ratelog"
	"github.com/luachan/luachan/luabind"
)

// Topic state (SPEC section 11). Each topic whose script defines handle_call or handle_tick
// has one topicState: the state (JSON text, owned here like assigns), and a queue of calls
// and ticks run one at a time, in order, by a goroutine that exists only while the queue is
// not empty. A call on an idle topic of this node runs on its caller's goroutine instead
// (runIdle). Different topics run in parallel.

// Topic-state bounds.
const (
	// terminateGrace is how long a topic's state outlives its last subscriber.
	terminateGrace = 5 * time.Second
	// callTimeout bounds how long socket:call waits for its reply.
	callTimeout = 5 * time.Second
	// maxQueuedCalls bounds the calls waiting on one topic; more is an error to the caller.
	maxQueuedCalls = 10_000
)

// ErrCallTimeout is a socket:call that got no reply within callTimeout.
var ErrCallTimeout = errors.New("engine: topic state call timed out")

// jobKind says what a topic-state job does.
type jobKind int

const (
	jobCall jobKind = iota
	jobTick
	jobTerminate
	jobOwned // with TopicOwners: this node took the lease (topicowners.go)
	jobLost  // with TopicOwners: the lease is no longer this node's
)

// stateJob is one call, tick or terminate queued on a topic.
type stateJob struct {
	kind jobKind
	msg  []byte
	sock luabind.Socket
	done chan callResult // capacity 1; calls from this node only

	// With TopicOwners (topicowners.go):
	lease    string                    // jobOwned, jobLost and a forwarded call: the lease it is for
	state    []byte                    // jobOwned: the saved state
	callID   string                    // a forwarded call: its id, to save its reply with the state
	answer   func([]byte, bool, error) // a forwarded call: its reply (reply, moved, err)
	deadline time.Time                 // a forwarded call: when its caller gives up
	claim    *atomic.Int32             // a call from this node: callQueued, callRunning or callDropped
}

// callResult is what a call's caller receives.
type callResult struct {
	reply []byte
	err   error
}

// topicStates is the engine's topic states, by topic.
type topicStates struct {
	e *Engine

	mu     sync.Mutex // guards topics
	topics map[string]*topicState

	tickLog ratelog.Limiter // with TopicOwners: ticks whose state could not be saved
}

// topicState is one topic's state and queue.
type topicState struct {
	ts    *topicStates
	topic string

	// mu guards the fields below.
	mu      sync.Mutex
	file    *scriptFile // the script serving the topic (its current version runs)
	params  []byte      // the first join's payload, for init
	state   []byte      // nil until init ran
	queue   []stateJob
	running bool  // a goroutine is draining queue
	subs    int   // channels joined to the topic on this node
	tick    Timer // pending tick; nil when none
	grace   Timer // pending terminate; nil when none
	ended   bool  // terminated: the next join makes a new topicState
	owner   bool  // with TopicOwners: this node holds the lease (calls run here, ticks are armed)

	// With TopicOwners, drain's own (read and written by the goroutine running jobs):
	lease       string    // the lease state was loaded under; "" when this node does not own the topic
	stale       bool      // a save failed: read the state back before the next job
	unsent      heldSends // a tick's broadcasts, held since its save failed: sent if the state read back is unsentState
	unsentState []byte
}

func (s *topicStates) init(e *Engine) {
	s.e = e
	s.topics = make(map[string]*topicState)
}

// joined counts a channel joined to a topic whose script keeps topic state.
func (s *topicStates) joined(c *channel, params []byte) {
	script := c.file.script()
	if !script.HasTopicState() {
		return
	}
	s.mu.Lock()
	t := s.topics[c.topic]
	created := t == nil
	if created {
		t = &topicState{ts: s, topic: c.topic, file: c.file, params: params}
		s.topics[c.topic] = t
	}
	s.mu.Unlock()
	if owners := s.e.cfg.TopicOwners; created && owners != nil {
		owners.Want(c.topic, t)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.file = c.file
	t.subs++
	if t.grace != nil {
		t.grace.Stop()
		t.grace = nil
	}
	if t.subs == 1 {
		t.armTickLocked()
	}
}

// left uncounts a channel that joined.
func (s *topicStates) left(c *channel) {
	s.mu.Lock()
	t := s.topics[c.topic]
	s.mu.Unlock()
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subs == 0 {
		return
	}
	t.subs--
	if t.subs > 0 {
		return
	}
	// With TopicOwners the owner ticks on through the grace: other nodes may have
	// subscribers, and they take the topic over only once this node lets it go.
	if t.tick != nil && s.e.cfg.TopicOwners == nil {
		t.tick.Stop()
		t.tick = nil
	}
	t.grace = s.e.cfg.Clock.AfterFunc(terminateGrace, func() {
		t.mu.Lock()
		live := t.grace != nil && t.subs == 0
		t.grace = nil
		t.mu.Unlock()
		if live {
			t.post(stateJob{kind: jobTerminate})
		}
	})
}

// get returns topic's state, or nil.
func (s *topicStates) get(topic string) *topicState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.topics[topic]
}

// Call is socket:call(msg): handle_call on the topic's state, its reply back.
func (c *channel) Call(msg []byte) (reply []byte, err error) {
	c.e.count.calls.Add(1)
	defer func() {
		if err != nil {
			c.e.count.callErrors.Add(1)
		}
	}()
	t := c.e.states.get(c.topic)
	if t == nil {
		return nil, fmt.Errorf("the script of %s keeps no topic state (define handle_call)", c.topic)
	}
	if c.e.cfg.TopicOwners != nil {
		return t.callShared(c.e.ctx, c, msg)
	}
	return t.call(c.e.ctx, c, msg)
}

// counts returns how many topic states this node keeps, and of those how many it owns
// (with TopicOwners), for Stats.
func (s *topicStates) counts() (states, owned int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.topics {
		t.mu.Lock()
		if t.owner {
			owned++
		}
		t.mu.Unlock()
	}
	return len(s.topics), owned
}

// call runs a call on this goroutine if the topic is idle here (runIdle), or else queues
// it and waits for its result.
func (t *topicState) call(ctx context.Context, sock luabind.Socket, msg []byte) ([]byte, error) {
	done := make(chan callResult, 1)
	j := stateJob{kind: jobCall, msg: msg, sock: sock, done: done}
	if t.ts.e.cfg.TopicOwners == nil && t.runIdle(j) {
		r := <-done
		return r.reply, r.err
	}
	if err := t.post(j); err != nil {
		return nil, err
	}
	timer := time.NewTimer(callTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.reply, r.err
	case <-timer.C:
		return nil, ErrCallTimeout
	case <-ctx.Done():
		return nil, fmt.Errorf("engine: shutting down: %w", ctx.Err())
	}
}

// post queues j and starts the draining goroutine when none runs.
func (t *topicState) post(j stateJob) error {
	t.mu.Lock()
	if j.kind == jobCall && len(t.queue) >= maxQueuedCalls {
		t.mu.Unlock()
		return fmt.Errorf("engine: %d calls already queued on %s; try again later", maxQueuedCalls, t.topic)
	}
	t.queue = append(t.queue, j)
	start := !t.running
	t.running = true
	t.mu.Unlock()
	if start {
		t.ts.e.wg.Add(1)
		go t.drain()
	}
	return nil
}

// runIdle runs j on the calling goroutine, if no job of the topic is queued or running,
// and reports whether it did. A call on an idle topic so costs no goroutine and no hand-off;
// jobs queued meanwhile are left to a drain goroutine, so the caller waits for its own
// call only.
func (t *topicState) runIdle(j stateJob) bool {
	t.mu.Lock()
	if t.running {
		t.mu.Unlock()
		return false
	}
	t.running = true
	file := t.file
	t.mu.Unlock()
	e := t.ts.e
	e.wg.Add(1)
	t.run(file, j)
	t.mu.Lock()
	done := t.settleLocked()
	t.mu.Unlock()
	if done {
		e.wg.Done()
	} else {
		go t.drain() // counted in e.wg by the Add above
	}
	return true
}

// settleLocked marks the topic idle, and reports true, when no job is queued. t.mu is held.
func (t *topicState) settleLocked() bool {
	if len(t.queue) > 0 {
		return false
	}
	t.running = false
	t.queue = nil
	return true
}

// drain runs the queued jobs in order until the queue is empty.
func (t *topicState) drain() {
	defer t.ts.e.wg.Done()
	for {
		t.mu.Lock()
		if t.settleLocked() {
			t.mu.Unlock()
			return
		}
		j := t.queue[0]
		t.queue[0] = stateJob{}
		t.queue = t.queue[1:]
		file := t.file
		t.mu.Unlock()
		t.run(file, j)
	}
}

// run runs one job on the current version of file's script. Only drain and runIdle call
// it, one at a time (t.running), so t.state is read and written by one goroutine at a
// time (under t.mu, for readers elsewhere).
func (t *topicState) run(file *scriptFile, j stateJob) {
	e := t.ts.e
	if j.kind == jobTick && t.hasEnded() {
		return // its timer fired as the topic ended
	}
	if e.cfg.TopicOwners != nil {
		t.runShared(file, j)
		return
	}
	script := file.script()
	state, err := t.ensureInit(script)
	switch j.kind {
	case jobCall:
		var reply, next []byte
		if err == nil {
			reply, next, err = script.HandleCall(e.ctx, j.sock, j.msg, state)
		}
		if err != nil {
			t.logError(script, "handle_call", err)
			j.done <- callResult{err: fmt.Errorf("handle_call failed: %w", err)}
			return
		}
		t.setState(next)
		j.done <- callResult{reply: reply}
	case jobTick:
		if err == nil {
			var next []byte
			var sends heldSends // a tick that fails sends nothing, as across nodes
			if next, err = script.HandleTick(e.ctx, t.topic, state, &sends); err == nil {
				t.setState(next)
				sends.send(e)
			}
		}
		if err != nil {
			t.logError(script, "handle_tick", err)
		}
		t.mu.Lock()
		if t.subs > 0 {
			t.armTickLocked()
		}
		t.mu.Unlock()
	case jobTerminate:
		t.terminate(script, state, err)
	}
}

// ensureInit runs init once, with the first join's params, and returns the state.
func (t *topicState) ensureInit(script *luabind.Script) ([]byte, error) {
	t.mu.Lock()
	state, params := t.state, t.params
	t.mu.Unlock()
	if state != nil {
		return state, nil
	}
	state, err := script.InitState(t.ts.e.ctx, t.topic, params)
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	t.setState(state)
	return state, nil
}

func (t *topicState) setState(state []byte) {
	t.mu.Lock()
	t.state = state
	t.mu.Unlock()
}

// terminate runs terminate and forgets the state, unless a channel joined meanwhile.
func (t *topicState) terminate(script *luabind.Script, state []byte, initErr error) {
	if !t.end() || initErr != nil || state == nil {
		return
	}
	if err := script.Terminate(t.ts.e.ctx, t.topic, state); err != nil {
		t.logError(script, "terminate", err)
	}
}

// end forgets the topic's state, unless a channel joined meanwhile (false).
func (t *topicState) end() bool {
	s := t.ts
	s.mu.Lock()
	defer s.mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subs > 0 || t.grace != nil {
		return false
	}
	t.ended = true
	if t.tick != nil {
		t.tick.Stop()
		t.tick = nil
	}
	if s.topics[t.topic] == t {
		delete(s.topics, t.topic)
	}
	return true
}

// heldSends holds what a tick's luachan.broadcast and luachan.disconnect send until its
// new state is kept: a tick that fails, or whose state is not saved, sends nothing.
// Across nodes the next owner starts from the state saved before, and would send it again.
type heldSends []pendingSend

var _ luabind.SocketSends = (*heldSends)(nil)

// BroadcastTopic holds a luachan.broadcast.
func (s *heldSends) BroadcastTopic(topic, event string, p luabind.Payload) error {
	*s = append(*s, pendingSend{kind: sendTopic, topic: topic, event: event, p: p})
	return nil
}

// DisconnectID holds a luachan.disconnect.
func (s *heldSends) DisconnectID(id string) error {
	*s = append(*s, pendingSend{kind: sendDisconnect, topic: id})
	return nil
}

// send sends what is held, in order.
func (s *heldSends) send(e *Engine) {
	for _, o := range *s {
		if o.kind == sendDisconnect {
			if err := e.Disconnect(o.topic); err != nil {
				e.log.Warn("luachan.disconnect not published to other nodes", "id", o.topic, "err", err)
			}
		} else if err := e.Broadcast(o.topic, o.event, o.p); err != nil {
			e.log.Warn("broadcast not published to other nodes", "topic", o.topic, "event", o.event, "err", err)
		}
	}
	*s = nil
}

// hasEnded reports whether the topic's state has ended (see end).
func (t *topicState) hasEnded() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ended
}

// armTickLocked schedules the next tick, when the script ticks. t.mu must be held.
func (t *topicState) armTickLocked() {
	ms := t.file.script().Tick()
	if ms <= 0 || t.tick != nil || (t.ts.e.cfg.TopicOwners != nil && !t.owner) {
		return // with TopicOwners, only the owner ticks
	}
	var tm Timer
	tm = t.ts.e.cfg.Clock.AfterFunc(time.Duration(ms)*time.Millisecond, func() {
		t.mu.Lock()
		live := t.tick == tm
		t.tick = nil
		t.mu.Unlock()
		if live {
			_ = t.post(stateJob{kind: jobTick})
		}
	})
	t.tick = tm
}

func (t *topicState) logError(script *luabind.Script, callback string, err error) {
	t.ts.e.log.Error("script error", "script", script.Name(), "callback", callback,
		"topic", t.topic, "err", err.Error())
}

// stopAll cancels every pending tick and terminate (Engine.Close).
func (s *topicStates) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.topics {
		t.mu.Lock()
		if t.tick != nil {
			t.tick.Stop()
			t.tick = nil
		}
		if t.grace != nil {
			t.grace.Stop()
			t.grace = nil
		}
		t.mu.Unlock()
	}
}
