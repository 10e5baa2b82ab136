package hub

import (
	"sync"
	"sync/atomic"
)

// numShards is how many independently locked parts the topic registry has; subscribes
// and broadcasts on different topics rarely meet on one lock.
const numShards = 64

// Subscriber is one channel subscribed to a topic. The engine implements it. Subscribers
// are compared with ==, so they must be comparable (pointers are).
type Subscriber interface {
	Conn() *Conn
	// Intercepts reports whether event must go through Deliver instead of the fast lane.
	// A subscriber may take events it does not intercept too, to keep them in order
	// behind intercepted ones it has not yet sent on.
	Intercepts(event string) bool
	// Deliver hands an intercepted broadcast to the subscriber. Must not block.
	Deliver(b *Broadcast)
}

// registry maps topics to their local subscribers, sharded by topic hash.
type registry struct {
	shards [numShards]shard
	topics atomic.Int64 // topics with at least one subscriber
	subs   atomic.Int64 // subscriptions over all topics
}

// shard is one part of the registry.
//
// topics is changed only with both subMu and mu held, so it may be read with either:
// Broadcast reads it under mu.RLock; Subscribe and Unsubscribe, holding subMu, read it
// without mu and take mu only for the moment of the change.
type shard struct {
	// subMu serialises Subscribe and Unsubscribe, and is held across the PubSub calls
	// they make, so a topic's first subscribe and last unsubscribe reach the PubSub in
	// order. Broadcasts never take it.
	subMu sync.Mutex
	// mu guards topics against the readers that do not hold subMu.
	mu     sync.RWMutex
	topics map[string]*subscriberSet
}

// subscriberSet is a topic's subscribers: a list to copy quickly when broadcasting,
// plus an index for constant-time removal.
type subscriberSet struct {
	list  []Subscriber
	index map[Subscriber]int // position of each subscriber in list
}

func (r *registry) init() {
	for i := range r.shards {
		r.shards[i].topics = make(map[string]*subscriberSet)
	}
}

// shard returns the shard holding topic (FNV-1a hash).
func (r *registry) shard(topic string) *shard {
	h := uint32(2166136261)
	for i := 0; i < len(topic); i++ {
		h ^= uint32(topic[i])
		h *= 16777619
	}
	return &r.shards[h%numShards]
}

// snapshot appends topic's subscribers to dst. The copy lets the caller write to them
// without holding the shard lock.
func (r *registry) snapshot(topic string, dst []Subscriber) []Subscriber {
	sh := r.shard(topic)
	sh.mu.RLock()
	if set := sh.topics[topic]; set != nil {
		dst = append(dst, set.list...)
	}
	sh.mu.RUnlock()
	return dst
}

// snapshotPool recycles the subscriber lists Broadcast copies into, so that a broadcast
// allocates nothing per subscriber.
var snapshotPool = sync.Pool{New: func() any { return new([]Subscriber) }}

// Subscribe adds s to topic's subscribers; subscribing twice is the same as once. The
// topic's first local subscriber subscribes this node to it on the PubSub.
func (h *Hub) Subscribe(topic string, s Subscriber) { h.SubscribeAfter(topic, s, nil) }

// SubscribeAfter is Subscribe that also runs first (when not nil) in the same critical
// section as the subscription: typically first queues the join reply on s's connection.
// Every broadcast s then receives is queued after what first queued, and every broadcast
// published after SubscribeAfter returns reaches s: a client never sees a broadcast
// before its join reply, nor misses one sent after it. first must not block; it may
// queue on connections (shard.mu is taken before writer.mu). It reports whether s is the
// topic's first local subscriber: the topic's broadcasts from other nodes come from now
// on, and did not while it had none.
func (h *Hub) SubscribeAfter(topic string, s Subscriber, first func()) (firstHere bool) {
	sh := h.reg.shard(topic)
	sh.subMu.Lock()
	defer sh.subMu.Unlock()
	set := sh.topics[topic]
	if set != nil {
		if _, dup := set.index[s]; dup {
			if first != nil {
				first()
			}
			return false
		}
	} else if h.cfg.PubSub != nil {
		if err := h.cfg.PubSub.Subscribe(topic); err != nil {
			h.log.Warn("pubsub subscribe failed", "topic", topic, "reason", err)
		}
	}

	sh.mu.Lock()
	if set == nil {
		set = &subscriberSet{index: make(map[Subscriber]int)}
		sh.topics[topic] = set
		h.reg.topics.Add(1)
	}
	set.index[s] = len(set.list)
	set.list = append(set.list, s)
	if first != nil {
		first()
	}
	sh.mu.Unlock()
	h.reg.subs.Add(1)
	return len(set.list) == 1
}

// Unsubscribe removes s from topic's subscribers, if it is one. The topic's last local
// subscriber leaving unsubscribes this node from it on the PubSub.
func (h *Hub) Unsubscribe(topic string, s Subscriber) {
	sh := h.reg.shard(topic)
	sh.subMu.Lock()
	defer sh.subMu.Unlock()
	set := sh.topics[topic]
	if set == nil {
		return
	}
	i, ok := set.index[s]
	if !ok {
		return
	}

	sh.mu.Lock()
	last := len(set.list) - 1
	moved := set.list[last]
	set.list[i] = moved
	set.index[moved] = i
	set.list[last] = nil
	set.list = set.list[:last]
	delete(set.index, s)
	empty := len(set.list) == 0
	if empty {
		delete(sh.topics, topic)
		h.reg.topics.Add(-1)
	}
	sh.mu.Unlock()
	h.reg.subs.Add(-1)

	if empty && h.cfg.PubSub != nil {
		if err := h.cfg.PubSub.Unsubscribe(topic); err != nil {
			h.log.Warn("pubsub unsubscribe failed", "topic", topic, "reason", err)
		}
	}
}
