package engine

import (
	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/luabind"
)

// This file runs a channel's callbacks and maps their outcomes to the wire.
// Every function here runs on the channel's mailbox goroutine.

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

func (c *channel) handleJoin(m *hub.Message, replaced *channel) {
	script := c.file.script()
	ok, reply, err := script.Join(c.e.ctx, c, c.assigns, c.topic, payloadOf(m))

	if err != nil || !ok {
		if err != nil {
			c.e.count.joinsCrashed.Add(1)
			c.logScriptError(script, "join", err)
			c.reply(m, "error", nil, replyJoinCrashed)
		} else {
			c.e.count.joinsRefused.Add(1)
			c.e.log.Debug("join refused by script", "script", script.Name(), "topic", c.topic, "conn", c.conn.Key())
			c.reply(m, "error", reply, replyUnauthorized)
		}
		c.closeReplaced(replaced)
		c.outbox = nil // a client that did not join gets nothing of the channel's
		c.end()
		return
	}

	c.file.add(c)
	if !c.subscribe(func() { c.reply(m, "ok", reply, replyEmpty) }) {
		c.outbox = nil
		return // stopped while joining; the stop event follows
	}
	c.closeReplaced(replaced)
	c.joined = true
	c.e.count.joins.Add(1)
	c.e.count.channels.Add(1)
	c.flush() // what join sent follows its reply
}

// closeReplaced tells the client its earlier join of the topic is over. It
// follows the new join's reply, so the client can match it to the old ref.
func (c *channel) closeReplaced(replaced *channel) {
	if replaced != nil {
		c.sendControl(replaced.joinRef, eventClose, replyEmpty)
	}
}

func (c *channel) handleIn(m *hub.Message) {
	if !c.joined {
		// The join was refused or crashed; the client sent ahead of the reply.
		c.conn.Reply("", m.Ref, m.Topic, "error", replyUnmatched, false)
		return
	}
	script := c.file.script()
	status, reply, err := script.HandleIn(c.e.ctx, c, c.assigns, m.Event, payloadOf(m))
	c.flush()
	if err != nil {
		c.logScriptError(script, "handle_in", err)
		c.crash()
		return
	}
	if status != "" {
		c.reply(m, status, reply, replyEmpty)
	}
}

func (c *channel) handleOut(b *hub.Broadcast) {
	if !c.joined {
		return
	}
	script := c.file.script()
	out, err := outgoing(b)
	if err != nil {
		c.e.log.Error("broadcast not delivered: payload unreadable", "topic", b.Topic, "event", b.Event, "err", err)
		return
	}
	err = script.HandleOut(c.e.ctx, c, c.assigns, b.Event, out)
	c.flush()
	if err != nil {
		c.logScriptError(script, "handle_out", err)
		c.crash()
	}
}

// outgoing converts an intercepted broadcast's payload for Lua once, however
// many subscribers run handle_out on it.
func outgoing(b *hub.Broadcast) (*luabind.Outgoing, error) {
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
	c.mu.Lock()
	c.stopping = true
	c.unsubscribeLocked()
	c.mu.Unlock()

	c.reply(m, "ok", nil, replyEmpty)
	c.sendControl(c.joinRef, eventClose, replyEmpty)
	c.runLeave("leave")
	c.end()
}

func (c *channel) handleStop(why stopReason) {
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
	c.mu.Lock()
	c.stopping = true
	c.unsubscribeLocked()
	c.mu.Unlock()
	c.sess.forget(c)
	c.sendControl(c.joinRef, eventError, payloadChannelCrash)
	c.end()
}

// end marks the channel over: later events are dropped.
func (c *channel) end() {
	if c.joined {
		c.e.count.channels.Add(-1)
	}
	c.ended = true
	c.joined = false
	c.e.presence.untrackAll(c)
	c.sess.forget(c)
	c.file.remove(c)
	c.mu.Lock()
	c.stopping = true
	c.unsubscribeLocked()
	c.mu.Unlock()
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
