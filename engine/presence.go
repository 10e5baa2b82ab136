package engine

import (
	"errors"

	"github.com/luachan/luachan/luabind"
	"github.com/luachan/luachan/presence"
)

// Presence backs luachan.presence.
func (e *Engine) Presence() luabind.Presence { return e.presence }

var _ luabind.PresenceHost = (*Engine)(nil)

// errNotJoined is returned for presence calls on a channel that is over.
var errNotJoined = errors.New("presence: the channel is not joined")

// channelPresence is luachan.presence: a presence.Tracker whose owners are channels,
// sending what it returns through them. A channel that ends is untracked by itself.
type channelPresence struct {
	e *Engine
	t *presence.Tracker[*channel]
}

func newPresence(e *Engine) *channelPresence {
	return &channelPresence{e: e, t: presence.NewTracker[*channel](e.cfg.Presence, e.log)}
}

// Track adds meta under key for the channel's topic, sends the channel
// presence_state and every subscriber a presence_diff with the join.
func (p *channelPresence) Track(sock luabind.Socket, key string, meta []byte) error {
	ch := sock.(*channel)
	if ch.ended {
		return errNotJoined
	}
	state, diff, err := p.t.Track(ch.topic, ch, key, meta)
	if err != nil {
		return err
	}
	if err := ch.Push(presence.EventState, luabind.Payload{Data: state}); err != nil {
		return err
	}
	return ch.Broadcast(presence.EventDiff, luabind.Payload{Data: diff}, false)
}

// Update replaces the channel's metas under key with meta: one diff with
// the new meta (phx_ref_prev naming the old) joining and the old leaving.
func (p *channelPresence) Update(sock luabind.Socket, key string, meta []byte) error {
	ch := sock.(*channel)
	diff, err := p.t.Update(ch.topic, ch, key, meta)
	if err != nil {
		return err
	}
	return ch.Broadcast(presence.EventDiff, luabind.Payload{Data: diff}, false)
}

// Untrack removes the channel's metas under key and broadcasts the leave.
func (p *channelPresence) Untrack(sock luabind.Socket, key string) error {
	ch := sock.(*channel)
	diff := p.t.Untrack(ch.topic, ch, key)
	if diff == nil {
		return nil
	}
	return ch.Broadcast(presence.EventDiff, luabind.Payload{Data: diff}, false)
}

// List returns topic's presence_state: this node's entries and, with a replica, the
// other nodes'.
func (p *channelPresence) List(topic string) ([]byte, error) {
	return p.t.List(topic), nil
}

// untrackAll removes everything the channel tracked, when it ends, and
// broadcasts the leaves straight to the hub (the channel itself is over).
func (p *channelPresence) untrackAll(ch *channel) {
	for _, diff := range p.t.UntrackAll(ch.topic, ch) {
		if err := ch.broadcast(presence.EventDiff, luabind.Payload{Data: diff}, false); err != nil {
			p.e.log.Warn("presence leave not published", "topic", ch.topic, "err", err)
		}
	}
}
