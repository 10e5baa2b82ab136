package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"sync/atomic"

	"github.com/luachan/luachan/engine"
	"github.com/luachan/luachan/httpapi"
	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/hub/redis"
)

// apiHub is the HTTP API's view of the node: broadcasts go through the engine,
// which gives those of a topic with a history their positions; the rest is the
// hub's.
type apiHub struct {
	*hub.Hub
	eng *engine.Engine
}

// Broadcast is /api/broadcast.
func (a apiHub) Broadcast(b *hub.Broadcast) error { return a.eng.Publish(b) }

// apiHistory serves /api/history from the engine's histories.
type apiHistory struct{ eng *engine.Engine }

var (
	_ httpapi.Hub         = apiHub{}
	_ httpapi.History     = apiHistory{}
	_ engine.HistoryStore = (*redis.History)(nil)
)

// startHistory starts the topic histories in Redis with -pubsub redis: every node
// then gives a broadcast the same position. Nil (the engine's memory history, each
// node's own) otherwise, NATS included.
func (n *node) startHistory(ctx context.Context) engine.HistoryStore {
	rb, ok := n.pubsub.(redisBroker)
	if !ok {
		return nil
	}
	n.history = rb.History()
	n.history.Start(ctx)
	return n.history
}

// stopHistory appends what is queued, bounded by ctx, and stops the appender.
func (n *node) stopHistory(ctx context.Context) {
	if n.history == nil {
		return
	}
	if err := n.history.Close(ctx); err != nil {
		n.log.Warn("history appends still queued at shutdown: not delivered", "err", err)
	}
}

// History converts the engine's entries for the API; a binary payload is
// given as a base64 JSON string.
func (a apiHistory) History(topic, since string, limit int) ([]httpapi.HistoryEntry, string, bool, bool) {
	entries, current, recovered, ok := a.eng.History(topic, since, limit)
	out := make([]httpapi.HistoryEntry, len(entries))
	for i, e := range entries {
		p := json.RawMessage(e.Payload)
		if e.Binary {
			p, _ = json.Marshal(base64.StdEncoding.EncodeToString(e.Payload))
		}
		out[i] = httpapi.HistoryEntry{Position: e.Position, Event: e.Event, Payload: p}
	}
	return out, current, recovered, ok
}

// remoteDeliverer hands the other nodes' broadcasts (from the PubSub) to the
// hub through the engine, once there is one, so that those of a topic with a
// history get this node's positions too.
type remoteDeliverer struct {
	hub *hub.Hub
	eng atomic.Pointer[engine.Engine]
}

// DeliverLocal is the PubSub's delivery of a broadcast from another node.
func (r *remoteDeliverer) DeliverLocal(b *hub.Broadcast) {
	eng := r.eng.Load()
	if eng == nil {
		r.hub.DeliverLocal(b) // no channel yet to position it for
		return
	}
	eng.Positioned(b, r.hub.DeliverLocal)
}
