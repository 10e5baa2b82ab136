package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/luachan/luachan/engine"
	"github.com/luachan/luachan/hub/redis"
)

// handOverFlush bounds how long a node waits for its queued broadcasts to reach Redis
// before it lets a topic-state lease go.
const handOverFlush = time.Second

// redisOwners is the engine's TopicOwners on Redis: the same methods, with the engine's
// TopicOwner handed to Redis as the StateOwner it matches.
type redisOwners struct {
	*redis.TopicStates
	pubsub *redis.PubSub
	log    *slog.Logger
}

var _ engine.TopicOwners = redisOwners{}

func (o redisOwners) Want(topic string, t engine.TopicOwner) { o.TopicStates.Want(topic, t) }

// Unwant lets the topic go once the broadcasts this node queued before (a last tick's)
// have reached Redis: the next owner's first tick then reaches every subscriber after
// them, not before.
func (o redisOwners) Unwant(ctx context.Context, topic string, t engine.TopicOwner) (bool, error) {
	flushBeforeHandOver(ctx, o.pubsub, o.log, "topic", topic)
	return o.TopicStates.Unwant(ctx, topic, t)
}

// flushBeforeHandOver waits, up to handOverFlush, for the broadcasts queued for Redis.
func flushBeforeHandOver(ctx context.Context, ps *redis.PubSub, log *slog.Logger, args ...any) {
	fctx, cancel := context.WithTimeout(ctx, handOverFlush)
	defer cancel()
	if err := ps.Flush(fctx); err != nil {
		log.Warn("topic-state lease let go with broadcasts still queued: subscribers on other nodes may get the next owner's first ones before them",
			append(args, "err", err.Error())...)
	}
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
	return redisOwners{TopicStates: n.states, pubsub: rb.PubSub, log: n.log}
}

// stopTopicStates lets go of this node's leases, bounded by ctx, so that the other
// nodes take its topics at once.
func (n *node) stopTopicStates(ctx context.Context) {
	if n.states == nil {
		return
	}
	if rb, ok := n.pubsub.(redisBroker); ok {
		flushBeforeHandOver(ctx, rb.PubSub, n.log, "at", "shutdown")
	}
	if err := n.states.Close(ctx); err != nil {
		n.log.Warn("topic-state leases not released: other nodes take the topics once the leases lapse", "err", err)
	}
}
