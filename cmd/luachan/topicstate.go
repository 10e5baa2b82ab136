package main

import (
	"context"
	"errors"
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
	n *node
}

var _ engine.TopicOwners = redisOwners{}

func (o redisOwners) Want(topic string, t engine.TopicOwner) { o.TopicStates.Want(topic, t) }

// Unwant lets the topic go once the broadcasts this node queued before (a last tick's)
// are in Redis, so that they are ahead of anything the next owner sends.
func (o redisOwners) Unwant(ctx context.Context, topic string, t engine.TopicOwner) (bool, error) {
	o.n.flushBeforeHandOver(ctx)
	return o.TopicStates.Unwant(ctx, topic, t)
}

// flushBeforeHandOver waits, up to handOverFlush, for the broadcasts queued for Redis:
// the publisher's and the history appender's.
func (n *node) flushBeforeHandOver(ctx context.Context) {
	rb, ok := n.pubsub.(redisBroker)
	if !ok {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, handOverFlush)
	defer cancel()
	err := rb.PubSub.Flush(fctx)
	if n.history != nil {
		err = errors.Join(err, n.history.Flush(fctx))
	}
	if err != nil {
		if ok, since := n.handOverLog.Allow(1); ok {
			n.log.Warn("topic-state lease let go with broadcasts still queued for Redis: other nodes may send the topic's next ones before them",
				"err", err.Error(), "times", since)
		}
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
	return redisOwners{TopicStates: n.states, n: n}
}

// stopTopicStates lets go of this node's leases, bounded by ctx, so that the other
// nodes take its topics at once.
func (n *node) stopTopicStates(ctx context.Context) {
	if n.states == nil {
		return
	}
	n.flushBeforeHandOver(ctx)
	if err := n.states.Close(ctx); err != nil {
		n.log.Warn("topic-state leases not released: other nodes take the topics once the leases lapse", "err", err)
	}
}
