package engine

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/luachan/luachan/history"
	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/luabind"
)

// This file gives the broadcasts of topics whose script has a history their
// positions, and replays them to a client that joins with `since`.
//
// The seam between replay and live broadcasts: a joining channel holds its
// mailbox's broadcasts (Intercepts answers true while unsentBroadcasts > 0)
// from before it subscribes until its replay is sent, so every live broadcast
// waits in the mailbox behind the join. The history is read after the
// subscription (for a shared store, once Redis has confirmed it), so a
// broadcast is in what was read, or in the mailbox, or in both; the mailbox's
// copies at or before the position read are then dropped (alreadySent). With a
// shared store a broadcast read may still be on its way to this node after the
// join, so the hold lasts until the first broadcast after the position read
// (holdUntilLive); Redis delivers the later ones in order.

// MaxHistoryLimit caps how many entries luachan.history and /api/history
// return at once.
const MaxHistoryLimit = 1000

// limits are a script's history settings for the history store.
func limits(h luabind.History) history.Limits {
	return history.Limits{Size: h.Size, TTL: h.TTL}
}

// topicHistory returns the history settings of the script serving topic.
func (e *Engine) topicHistory(topic string) (history.Limits, bool) {
	f := e.route(topic)
	if f == nil {
		return history.Limits{}, false
	}
	h, ok := f.script().History()
	return limits(h), ok
}

// Publish broadcasts b (see Broadcaster), through the topic's history store
// when the topic has a history: the store gives b its position as its ref, and
// the positions' order is the order every subscriber gets them in.
func (e *Engine) Publish(b *hub.Broadcast) error {
	lim, ok := e.topicHistory(b.Topic)
	if !ok {
		return e.cfg.Hub.Broadcast(b)
	}
	return e.history.Publish(b, lim)
}

// Positioned runs deliver for b, a broadcast from another node: cmd/luachan
// hands them to the hub through it. A memory history is this node's, so it
// positions every broadcast its subscribers get, in the order they get them; a
// shared one (Redis) positioned it already.
func (e *Engine) Positioned(b *hub.Broadcast, deliver func(*hub.Broadcast)) {
	lim, ok := e.topicHistory(b.Topic)
	if !ok {
		deliver(b)
		return
	}
	e.history.Received(b, lim, deliver)
}

// HistoryEntry is one broadcast kept in a topic's history.
type HistoryEntry struct {
	Position string
	Event    string
	Payload  []byte
	Binary   bool
}

// History returns topic's broadcasts after since ("": the latest), at most
// limit (capped at MaxHistoryLimit), and the current position. ok is false
// when the topic has no history; recovered is false, with no entries, when
// since is not a position of the history still kept.
func (e *Engine) History(topic, since string, limit int) (entries []HistoryEntry, current string, recovered, ok bool) {
	lim, ok := e.topicHistory(topic)
	if !ok {
		return nil, "", false, false
	}
	if limit <= 0 || limit > MaxHistoryLimit {
		limit = MaxHistoryLimit
	}
	kept, cur, recovered, err := e.history.Read(e.ctx, topic, lim, since, limit)
	if err != nil {
		e.log.Warn("history not read", "topic", topic, "err", err)
	}
	entries = make([]HistoryEntry, len(kept))
	for i, k := range kept {
		b := k.Value
		entries[i] = HistoryEntry{Position: b.Ref, Event: b.Event, Payload: b.Payload, Binary: b.Binary}
	}
	return entries, cur.String(), recovered, true
}

// ReadHistory is luachan.history (see luabind.HistoryHost).
func (e *Engine) ReadHistory(topic, since string, limit int) ([]luabind.HistoryEntry, bool) {
	entries, _, recovered, _ := e.History(topic, since, limit)
	out := make([]luabind.HistoryEntry, len(entries))
	for i, h := range entries {
		out[i] = luabind.HistoryEntry{Position: h.Position, Event: h.Event, Payload: luabind.Payload{Data: h.Payload, Binary: h.Binary}}
	}
	return out, recovered
}

// holdBroadcasts makes every broadcast to c wait in its mailbox until
// releaseBroadcasts, whatever its event: see the top of this file.
func (c *channel) holdBroadcasts() { c.mb.unsentBroadcasts.Add(1) }

// releaseBroadcasts ends the join's hold, unless it lasts until the first live
// broadcast (holdUntilLive), which alreadySent then ends.
func (c *channel) releaseBroadcasts() {
	if !c.holdUntilLive {
		c.mb.broadcastsSent(1)
	}
}

// joinHistory answers a successful join of a topic with a history: the reply,
// with the current position (and, for a join with since, whether it
// recovered), then the broadcasts after since. The mailbox holds the live
// broadcasts meanwhile (holdBroadcasts, before subscribing).
func (c *channel) joinHistory(script *luabind.Script, m *hub.Message, reply *luabind.Payload) {
	h, _ := script.History()
	lim := limits(h)
	since, hasSince := sinceOf(m.Payload)
	var kept []history.Entry[*hub.Broadcast]
	var cur history.Position
	var err error
	recovered := false
	switch {
	case since == "": // no since, or one that is not a position string
		_, cur, _, err = c.e.history.Read(c.e.ctx, c.topic, lim, "", -1)
	case !c.e.history.Subscribed(c.topic):
		// A broadcast appended now might reach neither the read nor this node:
		// the client is told to reload rather than miss it.
		_, cur, _, err = c.e.history.Read(c.e.ctx, c.topic, lim, "", -1)
	default:
		kept, cur, recovered, err = c.e.history.Read(c.e.ctx, c.topic, lim, since, 0)
	}
	if err != nil {
		c.e.log.Warn("history not read for a join: not recovered", "topic", c.topic, "err", err)
	}
	c.holdUntilLive = c.e.history.Shared() && cur.Epoch != ""
	c.skipUpTo = cur
	body := replyEmpty
	binary := false
	if reply != nil {
		body, binary = reply.Data, reply.Binary
	}
	if !binary {
		body = withPosition(body, cur.String(), hasSince, recovered)
	}
	c.reply(m, "ok", &luabind.Payload{Data: body, Binary: binary}, replyEmpty)
	c.toReplay = kept
}

// replay sends the broadcasts joinHistory read, as the client would have had
// them: through handle_out when intercepted, else their fast-lane frames.
func (c *channel) replay(script *luabind.Script) {
	kept := c.toReplay
	c.toReplay = nil
	for _, k := range kept {
		b := k.Value
		if b.From != 0 && b.From == c.conn.Key() {
			continue // a broadcast_from of this very socket
		}
		if !script.Intercepts(b.Event) {
			c.sends = append(c.sends, pendingSend{kind: sendFast, fast: b})
			continue
		}
		if err := c.callHandleOut(script, b, nil); err != nil {
			c.flush()
			c.handleOutFailed(script, err)
			return
		}
	}
	c.flush()
}

// alreadySent reports whether a broadcast waiting in the mailbox is at or
// before the position the join reported, so the client has it already (from
// the replay) or does not want it (it was before the client's position).
func (c *channel) alreadySent(b *hub.Broadcast) bool {
	if c.skipUpTo.Epoch == "" {
		return false
	}
	p, ok := history.ParsePosition(b.Ref)
	if ok && p.Epoch == c.skipUpTo.Epoch && p.N <= c.skipUpTo.N {
		return true
	}
	c.skipUpTo = history.Position{} // positions only grow: no need to look again
	if c.holdUntilLive {
		// From a shared history, a broadcast the join read may arrive after the
		// join: the hold lasted until this one, after the position read. The ones
		// after it arrive in order.
		c.holdUntilLive = false
		c.mb.broadcastsSent(1)
	}
	return false
}

// sinceOf returns the join payload's since; ok is false when there is none
// (absent or null). A since that is not a string is returned as "", which no
// history recovers.
func sinceOf(payload []byte) (since string, ok bool) {
	if !bytes.Contains(payload, []byte(`"since"`)) {
		return "", false
	}
	var p struct {
		Since json.RawMessage `json:"since"`
	}
	if json.Unmarshal(payload, &p) != nil || len(p.Since) == 0 || string(p.Since) == "null" {
		return "", false
	}
	if json.Unmarshal(p.Since, &since) != nil {
		return "", true
	}
	return since, true
}

// withPosition adds "position" (and, with since, "recovered") to a join
// reply's JSON object; a reply that is not an object is left as it is.
func withPosition(body []byte, position string, hasSince, recovered bool) []byte {
	t := bytes.TrimSpace(body)
	if len(t) < 2 || t[0] != '{' {
		return body
	}
	out := make([]byte, 0, len(t)+len(position)+40)
	out = append(out, `{"position":`...)
	out = strconv.AppendQuote(out, position)
	if hasSince {
		out = append(out, `,"recovered":`...)
		out = strconv.AppendBool(out, recovered)
	}
	rest := bytes.TrimSpace(t[1:])
	if len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...)
}
