package nats

import (
	"context"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/luachan/luachan/hub/internal/wire"
)

// The subscribing half of PubSub: Subscribe and Unsubscribe record what the hub wants;
// one subscriber goroutine makes the connection's subscriptions follow it (one per
// topic with local subscribers, all feeding one inbox) and confirms each batch with a
// flush; the deliverer empties the inbox in arrival order. nats.go sends the
// subscriptions again when it reconnects. Nothing the hub calls touches the connection:
// nats.go holds its lock while it tries to reconnect, which could stall a join.

// Subscribe makes this node receive topic's broadcasts from the other nodes. It does not
// fail: while NATS is away the subscription is made once it is back. When the connection
// is up it waits (up to 1 s) for NATS to confirm, so that a broadcast published anywhere
// after a join reply reaches the new subscriber.
func (r *PubSub) Subscribe(topic string) error {
	r.mu.Lock()
	r.want[topic] = struct{}{}
	r.changed[topic] = struct{}{}
	ticket := r.taken + 1 // the batch that will carry this change
	r.mu.Unlock()
	r.wake()
	r.await(ticket)
	return nil
}

// Unsubscribe stops this node receiving topic's broadcasts; it does not wait for NATS
// (what NATS still sends before it applies the change is dropped on arrival).
func (r *PubSub) Unsubscribe(topic string) error {
	r.mu.Lock()
	delete(r.want, topic)
	r.changed[topic] = struct{}{}
	r.mu.Unlock()
	r.wake()
	return nil
}

// wanted reports whether the hub wants topic's broadcasts (between its Subscribe and
// its Unsubscribe).
func (r *PubSub) wanted(topic string) bool {
	r.mu.Lock()
	_, ok := r.want[topic]
	r.mu.Unlock()
	return ok
}

// wake tells the subscriber goroutine that want changed.
func (r *PubSub) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// await waits until NATS has confirmed subscription batch ticket, the connection is
// down, or natsSubscribeWait passes. It waits at most once per stall: while NATS does
// not answer, the callers (holding a registry shard's subMu) must not queue up.
func (r *PubSub) await(ticket uint64) {
	timer := time.NewTimer(natsSubscribeWait)
	defer timer.Stop()
	for {
		r.mu.Lock()
		done := r.down || r.stalled || r.confirmed >= ticket
		ch := r.notify
		r.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-r.stop:
			return
		case <-timer.C:
			// NATS is slow or the connection is dead but not yet known to be: the
			// subscription applies when it can, and joins stop waiting until NATS answers.
			r.mu.Lock()
			r.stalled = true
			r.mu.Unlock()
			r.log.Warn("NATS did not confirm a subscription in time", "wait", natsSubscribeWait)
			return
		}
	}
}

// wakeWaitersLocked wakes the Subscribes waiting in await. r.mu must be held.
func (r *PubSub) wakeWaitersLocked() {
	close(r.notify)
	r.notify = make(chan struct{})
}

// subscribeLoop applies want's changes to the connection's subscriptions, a batch at a
// time, until Close.
func (r *PubSub) subscribeLoop() {
	defer r.wg.Done()
	subs := make(map[string]*natsgo.Subscription) // topic -> its subscription
	for {
		select {
		case <-r.stop:
			return
		case <-r.kick:
			r.syncBatch(subs)
		}
	}
}

// syncBatch subscribes to the topics wanted and not subscribed, unsubscribes from those
// subscribed and no longer wanted, then flushes: NATS's answer confirms the batch.
func (r *PubSub) syncBatch(subs map[string]*natsgo.Subscription) {
	r.mu.Lock()
	if len(r.changed) == 0 {
		r.mu.Unlock()
		return
	}
	r.taken++
	n := r.taken
	var sub, unsub []string
	for t := range r.changed {
		_, want := r.want[t]
		_, have := subs[t]
		switch {
		case want && !have:
			sub = append(sub, t)
		case !want && have:
			unsub = append(unsub, t)
		}
	}
	clear(r.changed)
	r.mu.Unlock()

	for _, t := range unsub {
		_ = subs[t].Unsubscribe() // fails only on a closed connection, which has no subscription left
		delete(subs, t)
	}
	for _, t := range sub {
		subject := r.subject(t)
		if len(subject) > natsMaxSubject {
			r.log.Warn("topic too long for a NATS subject: it does not span the nodes", "topic_bytes", len(t))
			continue
		}
		s, err := r.nc.ChanSubscribe(subject, r.inbox)
		if err != nil {
			r.log.Warn("NATS subscription failed: this topic does not hear the other nodes", "reason", err)
			continue
		}
		subs[t] = s
	}
	ctx, cancel := context.WithTimeout(r.ctx, natsIOTimeout) // Close ends the wait
	defer cancel()
	if err := r.nc.FlushWithContext(ctx); err != nil {
		return // down, or slow: the waiters give up on their own
	}
	r.mu.Lock()
	r.confirmed = max(r.confirmed, n)
	r.stalled = false
	r.wakeWaitersLocked()
	r.mu.Unlock()
}

// deliverLoop hands the other nodes' messages to the hub, in the order they arrived,
// skipping this node's own, until Close.
func (r *PubSub) deliverLoop() {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		case m := <-r.inbox:
			topic, ok := strings.CutPrefix(m.Subject, DefaultSubjectPrefix)
			if ok {
				topic, ok = unescapeToken(topic)
			}
			node, b, err := wire.ParseBroadcast(m.Data)
			if !ok || err != nil {
				if ok, n := r.junkLog.Allow(1); ok {
					r.log.Warn("ignoring messages luachan did not write", "subject", m.Subject, "ignored", n)
				}
				continue
			}
			if node == r.node {
				r.count.own.Add(1)
				continue
			}
			if !r.wanted(topic) {
				// Unsubscribed, and NATS had not yet applied it: no local subscriber
				// is left to miss it, and Unsubscribe promised no more deliveries.
				continue
			}
			b.Topic = topic
			r.count.received.Add(1)
			r.deliver(b)
		}
	}
}
