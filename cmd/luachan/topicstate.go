package main

import (
	"context"

	"github.com/luachan/luachan/engine"
	"github.com/luachan/luachan/hub/redis"
)

// redisOwners is the engine's TopicOwners on Redis: the same methods, with the engine's
// TopicOwner handed to Redis as the StateOwner it matches.
type redisOwners struct{ *redis.TopicStates }

var _ engine.TopicOwners = redisOwners{}

func (o redisOwners) Want(topic string, t engine.TopicOwner) { o.TopicStates.Want(topic, t) }

func (o redisOwners) Unwant(ctx context.Context, topic string, t engine.TopicOwner) (bool, []byte, error) {
	return o.TopicStates.Unwant(ctx, topic, t)
}

// startTopicStates shares the topics' states through Redis with -pubsub redis: one node
// at a time owns each, the others forward their calls to it. Nil (each node keeps its
// own) otherwise, NATS included.
func (n *node) startTopicStates(ctx context.Context) engine.TopicOwners {
	rb, ok := n.pubsub.(redisBroker)
	if !ok {
		return nil
	}
	n.states = rb.TopicStates(redis.DefaultStateLease)
	n.states.Start(ctx)
	return redisOwners{n.states}
}

// stopTopicStates lets go of this node's leases, bounded by ctx, so that the other
// nodes take its topics at once.
func (n *node) stopTopicStates(ctx context.Context) {
	if n.states == nil {
		return
	}
	if err := n.states.Close(ctx); err != nil {
		n.log.Warn("topic-state leases not released: other nodes take the topics once the leases lapse", "err", err)
	}
}
