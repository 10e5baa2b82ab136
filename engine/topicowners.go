package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/luachan/luachan/luabind"
)

// Topic state across nodes (SPEC section 11). With Config.TopicOwners, one node at a time
// owns a topic's state: it holds the topic's lease, runs init, the calls and the ticks, and
// saves the state after each change, before a call's reply goes back. The other nodes
// with subscribers on the topic forward their calls to it, and take the lease over when
// it lapses. Without TopicOwners (one node, or NATS) every node keeps its own states and
// none of this runs (topicstate.go alone).

// TopicOwners shares the topics' states between nodes. The engine uses it from the
// topics' goroutines; it calls back a topic's TopicOwner from its own.
type TopicOwners interface {
	// Want says that this node has subscribers on topic: it takes the topic's lease
	// whenever it is free, keeps it, and tells o (Owned, Lost); the calls other nodes
	// forward for topic go to o.Call.
	Want(topic string, o TopicOwner)
	// Unwant says that o, topic's state here, ended: it lets the lease go (another node
	// with subscribers takes it over, or a new state here that Want has named since).
	// last is true when no other node wants the topic: the saved state is deleted, and
	// given back as saved; the caller runs terminate, on its own state when it held the
	// lease, else on saved (the owner let the lease go to this node while this node was
	// ending too, or it took the lease with its Owned still queued).
	Unwant(ctx context.Context, topic string, o TopicOwner) (last bool, saved []byte, err error)
	// Save stores state as topic's state and, with callID, reply as that call's reply,
	// while lease is still this node's (ok); an error leaves unknown whether it did.
	Save(ctx context.Context, topic, lease string, state []byte, callID string, reply []byte) (ok bool, err error)
	// Load returns topic's saved state (nil: none) while lease is still this node's (ok).
	Load(ctx context.Context, topic, lease string) (state []byte, ok bool, err error)
	// Forward sends a call to the node that owns topic and returns its reply, within
	// ctx. here is true, and nothing was sent, when this node holds the lease (it may
	// just have taken it): the caller runs the call itself.
	Forward(ctx context.Context, topic string, msg []byte) (reply []byte, here bool, err error)
}

// TopicOwner is one topic's state on this node, as TopicOwners sees it.
type TopicOwner interface {
	// Owned: this node took the topic's lease; state is the saved state (nil: none yet,
	// init runs).
	Owned(lease string, state []byte)
	// Lost: lease is no longer this node's.
	Lost(lease string)
	// Call runs a call another node forwarded to the holder of lease, and answers it
	// with done: the reply (once the new state is saved), or moved (not run: this node
	// does not hold lease), or an error. remaining is how long the caller still waits.
	Call(lease, callID string, msg []byte, remaining time.Duration, done func(reply []byte, moved bool, err error))
}

var _ TopicOwner = (*topicState)(nil)

// errMoved is a call that was not run: this node no longer owns the topic. The caller
// sends it again, to the owner.
var errMoved = errors.New("engine: the topic's state moved to another node")

// Owned is TopicOwners telling that this node holds the topic's lease.
func (t *topicState) Owned(lease string, state []byte) {
	if t.ts.e.ctx.Err() != nil {
		return // the engine is closed
	}
	t.mu.Lock()
	t.owner = true
	if t.subs > 0 {
		t.armTickLocked()
	}
	t.mu.Unlock()
	_ = t.post(stateJob{kind: jobOwned, lease: lease, state: state})
}

// Lost is TopicOwners telling that lease is no longer this node's.
func (t *topicState) Lost(lease string) {
	if t.ts.e.ctx.Err() != nil {
		return
	}
	t.mu.Lock()
	t.owner = false
	if t.tick != nil {
		t.tick.Stop()
		t.tick = nil
	}
	t.mu.Unlock()
	_ = t.post(stateJob{kind: jobLost, lease: lease})
}

// Call queues a call forwarded by another node.
func (t *topicState) Call(lease, callID string, msg []byte, remaining time.Duration, done func([]byte, bool, error)) {
	if err := t.ts.e.ctx.Err(); err != nil {
		done(nil, false, fmt.Errorf("engine: shutting down: %w", err))
		return
	}
	msg, sock, err := decodeCall(t.topic, msg)
	if err != nil {
		done(nil, false, err)
		return
	}
	j := stateJob{kind: jobCall, msg: msg, sock: sock, lease: lease, callID: callID, answer: done,
		deadline: time.Now().Add(remaining)}
	if err := t.post(j); err != nil {
		done(nil, false, err)
	}
}

// callShared is socket:call with TopicOwners: run here when this node owns the topic,
// forwarded to the owner otherwise, within callTimeout.
func (t *topicState) callShared(ctx context.Context, sock luabind.Socket, msg []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	owners := t.ts.e.cfg.TopicOwners
	var forward []byte // msg in its envelope, made once it is needed
	for try := 0; ; try++ {
		if try > 1 && !sleepCtx(ctx, 10*time.Millisecond) || ctx.Err() != nil {
			return nil, callCtxErr(ctx, nil)
		}
		t.mu.Lock()
		owner := t.owner
		t.mu.Unlock()
		if owner {
			reply, err := t.callLocal(ctx, sock, msg)
			if errors.Is(err, errMoved) {
				continue
			}
			return reply, err
		}
		if forward == nil {
			var err error
			if forward, err = encodeCall(sock, msg); err != nil {
				return nil, err
			}
		}
		t.ts.e.count.callsForwarded.Add(1)
		reply, here, err := owners.Forward(ctx, t.topic, forward)
		switch {
		case here:
			continue
		case err != nil && ctx.Err() != nil:
			return nil, callCtxErr(ctx, err)
		case err != nil:
			return nil, err
		}
		return openReply(sock, reply)
	}
}

// Steps of a local call's claim: the caller and the topic's goroutine race for it once.
const (
	callQueued  int32 = iota
	callRunning       // the topic's goroutine runs it: its result is the call's
	callDropped       // its caller gave up first: it never runs
)

// callLocal queues a call on this node, the owner, and waits for its result. A caller
// that times out while the call runs waits for it all the same, so that a call never
// applies while its caller hears it failed.
func (t *topicState) callLocal(ctx context.Context, sock luabind.Socket, msg []byte) ([]byte, error) {
	done := make(chan callResult, 1)
	claim := new(atomic.Int32)
	if err := t.post(stateJob{kind: jobCall, msg: msg, sock: sock, done: done, claim: claim}); err != nil {
		return nil, err
	}
	select {
	case r := <-done:
		return r.reply, r.err
	case <-ctx.Done():
		if claim.CompareAndSwap(callQueued, callDropped) {
			return nil, callCtxErr(ctx, nil)
		}
		r := <-done // running: bounded by the script's budget and the save's timeout
		return r.reply, r.err
	}
}

// callCtxErr is the error of a call whose ctx ended: ErrCallTimeout, or shutting down.
func callCtxErr(ctx context.Context, cause error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		if cause != nil {
			return fmt.Errorf("%w (%w)", ErrCallTimeout, cause)
		}
		return ErrCallTimeout
	}
	return fmt.Errorf("engine: shutting down: %w", ctx.Err())
}

// sleepCtx waits d, or until ctx ends (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// runShared runs one job with TopicOwners. Only drain calls it: t.lease and t.stale are
// its own.
func (t *topicState) runShared(file *scriptFile, j stateJob) {
	script := file.script()
	switch j.kind {
	case jobOwned:
		t.forgetLease()
		t.lease = j.lease
		t.setState(j.state)
		return
	case jobLost:
		if t.lease == j.lease {
			t.forgetLease()
			t.setState(nil)
		}
		return
	case jobTerminate:
		t.terminateShared(script)
		return
	}
	if t.lease == "" || (j.answer != nil && j.lease != t.lease) {
		t.finish(j, nil, errMoved) // not ours (any more): the caller sends it to the owner
		return
	}
	if j.claim != nil && !j.claim.CompareAndSwap(callQueued, callRunning) {
		return // its caller has given up: not run
	}
	if !j.deadline.IsZero() && time.Now().After(j.deadline) {
		t.finish(j, nil, ErrCallTimeout) // its caller (on another node) has given up: not run
		return
	}
	state, err := t.sharedState(script)
	switch j.kind {
	case jobCall:
		var reply, next []byte
		if err == nil {
			if reply, next, err = script.HandleCall(t.ts.e.ctx, j.sock, j.msg, state); err != nil {
				t.logError(script, "handle_call", err)
				err = fmt.Errorf("handle_call failed: %w", err)
			}
		}
		if fs, ok := j.sock.(*forwardedSocket); ok && err == nil {
			reply, err = encodeReply(reply, fs) // saved as is, for its caller to find
		}
		if err == nil && !bytes.Equal(next, state) {
			err = t.save(next, j.callID, reply)
		}
		t.finish(j, reply, err)
	case jobTick:
		var sends heldSends
		if err == nil {
			var next []byte
			if next, err = script.HandleTick(t.ts.e.ctx, t.topic, state, &sends); err != nil {
				t.logError(script, "handle_tick", err)
				sends = nil // a tick that failed sends nothing
				err = nil   // logged
			} else if !bytes.Equal(next, state) {
				if err = t.save(next, "", nil); err != nil && t.stale {
					// The save may have been stored: read back before the next job,
					// the state tells whether the tick was applied (sharedState).
					t.unsent, t.unsentState = sends, next
				}
			}
		}
		if err != nil {
			sends = nil
			if ok, n := t.ts.tickLog.Allow(1); ok { // every tick would say it again
				t.ts.e.log.Warn("ticks not applied, nor their broadcasts sent (each tries again)", "topic", t.topic, "err", err.Error(), "ticks", n)
			}
		}
		sends.send(t.ts.e)
		t.mu.Lock()
		if t.owner && (t.subs > 0 || t.grace != nil) {
			t.armTickLocked()
		}
		t.mu.Unlock()
	}
}

// finish answers a call job: its local caller, or the node that forwarded it.
func (t *topicState) finish(j stateJob, reply []byte, err error) {
	switch {
	case j.done != nil:
		j.done <- callResult{reply: reply, err: err}
	case j.answer != nil:
		if errors.Is(err, errMoved) {
			j.answer(nil, true, nil)
			return
		}
		j.answer(reply, false, err)
	}
}

// sharedState returns the state to run the next job on: read again from the store
// after a failed save, made by init (and saved) when there is none yet.
func (t *topicState) sharedState(script *luabind.Script) ([]byte, error) {
	e := t.ts.e
	if t.stale {
		state, ok, err := e.cfg.TopicOwners.Load(e.ctx, t.topic, t.lease)
		if err != nil {
			return nil, fmt.Errorf("the topic's state could not be read back after a failed save: %w; try again", err)
		}
		if !ok {
			t.dropLease()
			return nil, fmt.Errorf("engine: this node no longer owns %s; try again", t.topic)
		}
		t.stale = false
		t.setState(state)
		if t.unsent != nil && bytes.Equal(state, t.unsentState) {
			t.unsent.send(e) // the tick whose save failed was stored all the same
		}
		t.unsent, t.unsentState = nil, nil
	}
	t.mu.Lock()
	state, params := t.state, t.params
	t.mu.Unlock()
	if state != nil {
		return state, nil
	}
	state, err := script.InitState(e.ctx, t.topic, params)
	if err != nil {
		t.logError(script, "init", err)
		return nil, fmt.Errorf("init: %w", err)
	}
	if err := t.save(state, "", nil); err != nil {
		return nil, err
	}
	return state, nil
}

// save stores the new state under this node's lease, and keeps it here once stored.
// On failure the state here stays the last one saved; it is read back before the next
// job, since a failed save may still have been stored.
func (t *topicState) save(state []byte, callID string, reply []byte) error {
	e := t.ts.e
	ok, err := e.cfg.TopicOwners.Save(e.ctx, t.topic, t.lease, state, callID, reply)
	if err != nil || !ok {
		e.count.saveFailures.Add(1)
	}
	switch {
	case err != nil:
		t.stale = true
		return fmt.Errorf("the topic's state could not be saved: %w; try again", err)
	case !ok:
		t.dropLease()
		return fmt.Errorf("engine: this node no longer owns %s, so the change is not applied; try again", t.topic)
	}
	t.setState(state)
	return nil
}

// forgetLease forgets the lease this node held, and what was kept under it: a tick's
// broadcasts held since a save that failed are not sent (the store's state is the next
// owner's to read).
func (t *topicState) forgetLease() {
	t.lease, t.stale = "", false
	t.unsent, t.unsentState = nil, nil
}

// dropLease forgets a lease the store says is no longer this node's; TopicOwners tells
// Lost too, and the calls until then go to the new owner.
func (t *topicState) dropLease() {
	t.ts.e.log.Warn("topic state lease lost: another node owns the topic now", "topic", t.topic)
	t.forgetLease()
	t.mu.Lock()
	t.owner = false
	t.state = nil
	if t.tick != nil {
		t.tick.Stop()
		t.tick = nil
	}
	t.mu.Unlock()
}

// terminateShared forgets the topic here, unless a channel joined meanwhile, and lets
// its lease go; when no node wants the topic any more, terminate runs.
func (t *topicState) terminateShared(script *luabind.Script) {
	if !t.end() {
		return
	}
	e := t.ts.e
	last, saved, err := e.cfg.TopicOwners.Unwant(e.ctx, t.topic, t)
	if err != nil {
		e.log.Warn("topic state lease not released: another node takes the topic once it lapses", "topic", t.topic, "err", err.Error())
	}
	t.mu.Lock()
	state := t.state
	t.owner = false
	t.mu.Unlock()
	lease := t.lease
	// The lease is let go: a job queued behind this one (a tick whose timer fired as the
	// grace ended, a forwarded call) runs nothing. A tick's broadcasts would go out, and
	// its save fail, while the next owner ticks on from the state saved before.
	t.forgetLease()
	if lease == "" {
		// Not the owner, as far as this topic's jobs have heard (an Owned may be queued
		// behind this one): the store's state, if this node ended the topic.
		state = saved
	}
	if !last || state == nil {
		return
	}
	if err := script.Terminate(e.ctx, t.topic, state); err != nil {
		t.logError(script, "terminate", err)
	}
}
