package hub

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// A tap is the dev console's window on one topic: it sees every broadcast delivered
// locally on that topic. Taps exist only while someone looks, and a broadcast on a
// topic nobody taps costs one atomic load, so the console open costs fan-out nothing
// per subscriber.

// taps holds the topics being tapped, copy-on-write: DeliverLocal reads the map with
// one atomic load and no lock.
type taps struct {
	mu  sync.Mutex                          // serialises Tap and its stop
	cur atomic.Pointer[map[string][]*tapFn] // nil while nothing is tapped
}

// tapFn is one tap; a pointer, so that a stop removes exactly its own.
type tapFn struct{ f func(*Broadcast) }

// Tap calls f with every broadcast delivered locally on topic (from this node or
// another), after it is queued to the subscribers, until stop is called. f runs on the
// broadcasting goroutine: it must be quick, must not block and must not keep b's
// Payload past its return without copying it.
func (h *Hub) Tap(topic string, f func(b *Broadcast)) (stop func()) {
	t := &tapFn{f: f}
	h.taps.update(func(m map[string][]*tapFn) { m[topic] = append(m[topic], t) })
	var once sync.Once
	return func() {
		once.Do(func() {
			h.taps.update(func(m map[string][]*tapFn) {
				m[topic] = slices.DeleteFunc(slices.Clone(m[topic]), func(x *tapFn) bool { return x == t })
				if len(m[topic]) == 0 {
					delete(m, topic)
				}
			})
		})
	}
}

// update replaces the tap map with a changed copy.
func (t *taps) update(change func(map[string][]*tapFn)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	next := make(map[string][]*tapFn)
	if cur := t.cur.Load(); cur != nil {
		for k, v := range *cur {
			next[k] = v
		}
	}
	change(next)
	if len(next) == 0 {
		t.cur.Store(nil)
		return
	}
	t.cur.Store(&next)
}

// notify hands b to the taps on its topic, if any.
func (t *taps) notify(b *Broadcast) {
	m := t.cur.Load()
	if m == nil {
		return
	}
	for _, tf := range (*m)[b.Topic] {
		tf.f(b)
	}
}

// TopicCount is a topic and its local subscribers.
type TopicCount struct {
	Topic       string `json:"topic"`
	Subscribers int    `json:"subscribers"`
}

// TopicCounts returns the n topics with the most local subscribers among those whose
// name contains filter ("" matches all), most first, and how many topics matched. Each
// registry shard is read under its read lock in turn, so broadcasts are held up by no
// more than one shard's scan.
func (h *Hub) TopicCounts(filter string, n int) (top []TopicCount, matched int) {
	for i := range h.reg.shards {
		sh := &h.reg.shards[i]
		sh.mu.RLock()
		for topic, set := range sh.topics {
			if filter == "" || strings.Contains(topic, filter) {
				top = append(top, TopicCount{topic, len(set.list)})
			}
		}
		sh.mu.RUnlock()
	}
	matched = len(top)
	slices.SortFunc(top, func(a, b TopicCount) int {
		if a.Subscribers != b.Subscribers {
			return b.Subscribers - a.Subscribers
		}
		return strings.Compare(a.Topic, b.Topic)
	})
	if len(top) > n {
		top = top[:n]
	}
	return top, matched
}

// SubscriberCount returns how many local subscribers topic has.
func (h *Hub) SubscriberCount(topic string) int {
	sh := h.reg.shard(topic)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if set := sh.topics[topic]; set != nil {
		return len(set.list)
	}
	return 0
}
