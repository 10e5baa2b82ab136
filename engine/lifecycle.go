package engine

import (
	"runtime/debug"
	"time"

	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/luabind"
)

// This file runs a channel's callbacks and maps their outcomes to the wire.
// Every function here runs on the owner of the channel's mailbox.

func payloadOf(m *hub.Message) luabind.Payload {
	return luabind.Payload{Data: m.Payload, Binary: m.Binary}
}

// reply sends a phx_reply to m; a nil body is {}.
func (c *channel) reply(m *hub.Message, status string, body *luabind.Payload, fallback []byte) {
	data, binary := fallback, false
	if body != nil {
		data, binary = body.Data, body.Binary
	}
	if err := c.conn.Reply(m.JoinRef, m.Ref, m.Topic, status, data, binary); err != nil {
		c.e.log.Debug("reply not sent", "conn", c.conn.Key(), "topic", c.topic, "err", err)
	}
}

func (c *channel) handleJoin(m *hub.Message) {
	closeRef := c.takeOver()
	if c.isStopping() {
		c.settle(false) // the socket went, or the topic was joined yet again
		return
	}
	script := c.file.script()
	start := time.Now()
	ok, reply, err := script.Join(c.e.ctx, c, c.assigns, c.topic, payloadOf(m))
	defer func() { c.settle(c.joined) }()

	// The reply (queued under the hub's registry lock), a phx_close for the replaced
	// join and what join pushed go out together, in one write after every lock.
	c.conn.Cork()
	defer c.conn.Uncork()

	if err != nil || !ok {
		if err != nil {
			c.e.count.joinsCrashed.Add(1)
			c.traceJoin(m, "crashed", start)
			c.logScriptError(script, "join", err)
			c.reply(m, "error", nil, replyJoinCrashed)
		} else {
			c.e.count.joinsRefused.Add(1)
			c.traceJoin(m, "refused", start)
			c.reply(m, "error", reply, replyUnauthorized)
		}
		c.closeReplaced(closeRef)
		c.flushUnjoined()
		c.end()
		return
	}

	_, hasHistory := script.History()
	first := func() { c.reply(m, "ok", reply, replyEmpty) }
	if hasHistory {
		// The reply carries the position read once subscribed; broadcasts wait meanwhile.
		c.holdBroadcasts()
		defer c.releaseBroadcasts()
		first = func() {}
	}
	gen, added := c.file.add(c)
	if !added || !c.subscribe(first) {
		if added && !c.file.shutSince(gen) {
			c.flushUnjoined()
			return // stopped while joining; the stop event follows
		}
		c.endJoinOnShutFile(m, reply, closeRef) // the script file went while join ran
		return
	}
	if hasHistory {
		c.joinHistory(script, m, reply)
	}
	c.closeReplaced(closeRef)
	c.joined = true
	c.e.states.joined(c, m.Payload)
	c.e.count.joins.Add(1)
	c.e.count.channels.Add(1)
	c.traceJoin(m, "ok", start)
	c.flush() // what join sent follows its reply
	if hasHistory {
		c.replay(script) // after join's pushes, before any live broadcast
	}
}

// closeReplaced tells the client its earlier join of the topic (closeRef) is
// over. It follows the new join's reply, so the client can match it to the
// old ref.
func (c *channel) closeReplaced(closeRef string) {
	if closeRef != "" {
		c.sendControl(closeRef, eventClose, replyEmpty)
	}
}

func (c *channel) handleIn(m *hub.Message) {
	if !c.joined {
		// The join was refused or crashed; the client sent ahead of the reply.
		c.conn.Reply("", m.Ref, m.Topic, "error", replyUnmatched, false)
		return
	}
	script := c.file.script()
	if !script.HasHandleIn() {
		c.noHandleIn(script, m)
		return
	}
	start := time.Now()
	status, reply, err := script.HandleIn(c.e.ctx, c, c.assigns, m.Event, payloadOf(m))
	c.conn.Cork() // the pushes and the reply go out in one write
	defer c.conn.Uncork()
	c.flush()
	if err != nil {
		c.inCrashed(script, m, err, start)
		return
	}
	c.traceIn(m, status, start)
	if status != "" {
		c.reply(m, status, reply, replyEmpty)
	}
}

// noHandleIn answers an event for a script with no handle_in at once, so a
// prototyper's push does not wait for its timeout. Out of line, as the crash
// below: see session.unmatched.
//
//go:noinline
func (c *channel) noHandleIn(script *luabind.Script, m *hub.Message) {
	c.e.count.noHandleIn.Add(1)
	if script.FirstTime("handle_in " + m.Event) {
		c.e.log.Warn("event for a script with no handle_in", "script", script.Name(), "topic", c.topic, "event", m.Event)
	}
	c.conn.Reply(m.JoinRef, m.Ref, m.Topic, "error", replyNoHandleIn, false)
}

// inCrashed ends the channel whose handle_in failed.
//
//go:noinline
func (c *channel) inCrashed(script *luabind.Script, m *hub.Message, err error, start time.Time) {
	c.traceIn(m, "crashed", start)
	c.logScriptError(script, "handle_in", err)
	c.crash()
}

func (c *channel) handleOut(b *hub.Broadcast) {
	script := c.file.script()
	err := c.callHandleOut(script, b, nil)
	c.flushBatched()
	c.mb.broadcastsSent(1)
	if err != nil {
		c.handleOutFailed(script, err)
	}
}

// handleFast sends a fast-laned broadcast that waited in the mailbox behind
// intercepted ones (see mailbox.unsentBroadcasts).
func (c *channel) handleFast(b *hub.Broadcast) {
	c.sends = append(c.sends, pendingSend{kind: sendFast, fast: b})
	c.flushBatched()
	c.mb.broadcastsSent(1)
}

// callHandleOut runs handle_out of script for b on the VM h holds (see
// luabind.Holder), leaving what it pushes in c.sends. A failed call's
// error is returned for handleOutFailed, once the sends are flushed.
func (c *channel) callHandleOut(script *luabind.Script, b *hub.Broadcast, h *luabind.Holder) error {
	if !c.joined {
		return nil
	}
	payload, err := interceptedPayload(b)
	if err != nil {
		c.e.log.Error("broadcast not delivered: payload unreadable", "topic", b.Topic, "event", b.Event, "err", err)
		return nil
	}
	c.outRef = b.Ref
	defer func() { c.outRef = "" }()
	return script.HandleOutHeld(c.e.ctx, h, c, c.assigns, b.Event, payload)
}

// handleOutFailed ends the channel for a failed handle_out call.
func (c *channel) handleOutFailed(script *luabind.Script, err error) {
	c.logScriptError(script, "handle_out", err)
	c.crash()
}

// flushBatched sends what handle_out calls pushed: this client's copies of
// broadcasts, written like the fast lane's by the hub's flushers, batched
// with the other copies waiting for it.
func (c *channel) flushBatched() {
	if len(c.sends) == 0 {
		return
	}
	c.conn.Cork()
	defer c.conn.UncorkLater() // even when a send panics
	c.flush()
}

// interceptedPayload converts an intercepted broadcast's payload for Lua
// once, however many subscribers run handle_out on it.
func interceptedPayload(b *hub.Broadcast) (*luabind.Outgoing, error) {
	v := b.Memo(func() any {
		o, err := luabind.NewOutgoing(luabind.Payload{Data: b.Payload, Binary: b.Binary})
		if err != nil {
			return err
		}
		return o
	})
	if err, ok := v.(error); ok {
		return nil, err
	}
	return v.(*luabind.Outgoing), nil
}

func (c *channel) handleLeave(m *hub.Message) {
	c.closeEvents(false)

	c.conn.Cork()
	defer c.conn.Uncork()
	c.reply(m, "ok", nil, replyEmpty)
	c.sendControl(c.joinRef, eventClose, replyEmpty)
	c.runLeave("leave")
	c.end()
}

func (c *channel) handleStop(why stopReason) {
	c.takeOver() // a join dropped by the stop still ends the channel it replaced
	c.settle(c.joined)
	if why == stopDeleted {
		c.sess.forget(c)
		c.sendControl(c.joinRef, eventClose, replyEmpty)
	}
	c.runLeave(why.leaveReason())
	c.end()
}

// runLeave calls the script's leave, if the channel had joined.
func (c *channel) runLeave(reason string) {
	if !c.joined {
		return
	}
	c.traceLeave(reason)
	script := c.file.script()
	err := script.Leave(c.e.ctx, c, c.assigns, reason)
	c.flush()
	if err != nil {
		c.logScriptError(script, "leave", err)
	}
}

// crash ends the channel after a script error: the client gets phx_error
// (and rejoins by itself); the socket and its other channels carry on.
func (c *channel) crash() {
	c.e.count.crashes.Add(1)
	c.traceLeave("crashed")
	c.closeEvents(false)
	c.sess.forget(c)
	c.sendControl(c.joinRef, eventError, payloadChannelCrash)
	c.end()
}

// end marks the channel over: later events are dropped.
func (c *channel) end() {
	if c.joined {
		c.e.count.channels.Add(-1)
		c.e.states.left(c)
	}
	c.ended = true
	c.joined = false
	c.e.presence.untrackAll(c)
	c.sess.forget(c)
	c.file.remove(c)
	c.closeEvents(true) // what is still queued would only be dropped
}

// dispatchHook, when set (by tests), runs before a channel handles each
// event, on the goroutine that handles it.
var dispatchHook func(c *channel, kind evKind)

// panicked crashes the channel after a panic in handling ev: logged with its
// stack, phx_error to the client (a refused join for a join not yet
// answered), so that the process lives on; the mailbox carries on as after
// any crash.
func (c *channel) panicked(ev event, p any) {
	c.logPanic(ev, p)
	c.crashAfterPanic(ev)
}

// logPanic logs a panic in handling ev with its stack; it must run in the
// deferred recover.
func (c *channel) logPanic(ev event, p any) {
	c.e.log.Error("channel panicked; crashing it", "topic", c.topic, "conn", c.conn.Key(),
		"event", ev.kind.String(), "panic", p, "stack", string(debug.Stack()))
}

// crashAfterPanic ends the channel after a panic in handling ev. A panic in
// ending it is logged, and the channel left ended.
func (c *channel) crashAfterPanic(ev event) {
	c.sends = nil // what the failed event sent is not sent
	c.settle(false)
	if c.ended {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			c.e.log.Error("channel panicked while crashing", "topic", c.topic, "conn", c.conn.Key(),
				"panic", p, "stack", string(debug.Stack()))
			c.ended, c.joined = true, false
			for _, m := range c.mb.closeAndDrop() {
				c.sess.unmatched(m)
			}
		}
	}()
	if ev.kind == evJoin && !c.joined {
		c.e.count.joinsCrashed.Add(1)
		c.reply(ev.msg, "error", nil, replyJoinCrashed)
		c.end()
		return
	}
	c.crash()
}

// String names an event kind for the log.
func (k evKind) String() string {
	switch k {
	case evJoin:
		return "join"
	case evIn:
		return "in"
	case evIntercepted:
		return "intercepted"
	case evLeave:
		return "leave"
	case evStop:
		return "stop"
	case evInfo:
		return "info"
	case evFast:
		return "fast"
	}
	return "unknown"
}

// sendControl sends [joinRef, joinRef, topic, event, payload], the shape of
// phx_close and phx_error.
func (c *channel) sendControl(joinRef, event string, payload []byte) {
	err := c.conn.Send(&hub.Message{JoinRef: joinRef, Ref: joinRef, Topic: c.topic, Event: event, Payload: payload})
	if err != nil {
		c.e.log.Debug("control not sent", "conn", c.conn.Key(), "topic", c.topic, "event", event, "err", err)
	}
}

func (c *channel) logScriptError(s *luabind.Script, callback string, err error) {
	c.e.log.Error("script error", "script", s.Name(), "callback", callback,
		"topic", c.topic, "conn", c.conn.Key(), "err", err.Error())
}
