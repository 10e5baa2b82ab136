package engine

import (
	"context"

	"github.com/luachan/luachan/history"
	"github.com/luachan/luachan/hub"
)

// HistoryStore keeps the broadcasts of the topics whose script has a history, gives
// them their positions and delivers them. The engine keeps them in memory unless
// Config.History names another store (cmd/luachan: Redis's, with -pubsub redis).
type HistoryStore interface {
	// Publish gives b, on a topic with history lim, its topic's next position as its
	// ref and sends it to the topic's subscribers, on every node.
	Publish(b *hub.Broadcast, lim history.Limits) error
	// Received hands deliver a broadcast of a topic with history lim that came from
	// another node: a memory store positions it; a shared one positioned it already.
	Received(b *hub.Broadcast, lim history.Limits, deliver func(*hub.Broadcast))
	// Read returns the entries after since ("": the latest), at most limit (0: all;
	// -1: none), and the current position. recovered is false, with no entries, when
	// since is not a position the history still holds, and when the store fails (err).
	Read(ctx context.Context, topic string, lim history.Limits, since string, limit int) (entries []history.Entry[*hub.Broadcast], current history.Position, recovered bool, err error)
	// Subscribed waits, bounded, until this node hears every broadcast of topic
	// published from now on; a join replays only then.
	Subscribed(topic string) bool
	// Shared reports whether positions come from outside this node: a broadcast a
	// join has read may then still be on its way, so the join holds the live ones
	// until the first after what it read (channel.holdUntilLive).
	Shared() bool
}

// memoryHistory is the HistoryStore of one node: history.Memory, whose Append
// delivers through the hub (and from there to the other nodes, which position what
// they get themselves).
type memoryHistory struct {
	m     *history.Memory[*hub.Broadcast]
	hub   Broadcaster
	peers bool // Config.Peers
}

// heard follows the first local subscriber of topic coming: with peers, the topic's
// broadcasts from other nodes come from now on, and did not before, so what the history
// holds (kept since the last subscriber left, or read or appended here meanwhile) cannot
// be told complete, and it is forgotten.
func (h *memoryHistory) heard(topic string) {
	if h.peers {
		h.m.Forget(topic)
	}
}

var _ HistoryStore = (*memoryHistory)(nil)

func (h *memoryHistory) Publish(b *hub.Broadcast, lim history.Limits) error {
	var err error
	h.Received(b, lim, func(b *hub.Broadcast) { err = h.hub.Broadcast(b) })
	return err
}

func (h *memoryHistory) Received(b *hub.Broadcast, lim history.Limits, deliver func(*hub.Broadcast)) {
	h.m.Append(b.Topic, lim, func(p history.Position) *hub.Broadcast {
		b.Ref = p.String()
		deliver(b)
		return b
	})
}

func (h *memoryHistory) Read(_ context.Context, topic string, lim history.Limits, since string, limit int) ([]history.Entry[*hub.Broadcast], history.Position, bool, error) {
	if limit < 0 {
		return nil, h.m.Current(topic, lim), since == "", nil
	}
	entries, cur, recovered := h.m.Read(topic, lim, since, limit)
	return entries, cur, recovered, nil
}

func (h *memoryHistory) Subscribed(string) bool { return true }
func (h *memoryHistory) Shared() bool           { return false }
