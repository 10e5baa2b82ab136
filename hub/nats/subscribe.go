package nats

import (
	"strings"
)

// The subscribing half of PubSub: one subscription per topic with local subscribers, all
// feeding one inbox that the deliverer empties in arrival order. nats.go sends the
// subscriptions again when it reconnects.

// Subscribe makes this node receive topic's broadcasts from the other nodes. It does not
// fail: while NATS is away the subscription is sent once it is back. When the connection
// is up it waits (up to 1 s) for NATS to confirm, so that a broadcast published anywhere
// after a join reply reaches the new subscriber.
func (r *PubSub) Subscribe(topic string) error {
	subject := r.subject(topic)
	if len(subject) > natsMaxSubject {
		r.log.Warn("topic too long for a NATS subject: it does not span the nodes", "topic_bytes", len(topic))
		return nil
	}
	r.mu.Lock()
	if _, ok := r.subs[topic]; ok {
		r.mu.Unlock()
		return nil
	}
	sub, err := r.nc.ChanSubscribe(subject, r.inbox)
	if err == nil {
		r.subs[topic] = sub
	}
	r.mu.Unlock()
	if err != nil {
		r.log.Warn("NATS subscription failed: this topic does not hear the other nodes", "reason", err)
		return nil
	}
	if r.nc.IsConnected() && !r.stalled.Load() {
		if err := r.nc.FlushTimeout(natsSubscribeWait); err != nil {
			// NATS is slow or the connection is dead but not yet known to be: the
			// subscription applies when it can, and joins stop waiting until NATS is back.
			r.stalled.Store(true)
			r.log.Warn("NATS did not confirm a subscription in time", "wait", natsSubscribeWait, "reason", err)
		}
	}
	return nil
}

// Unsubscribe stops this node receiving topic's broadcasts; it does not wait for NATS.
func (r *PubSub) Unsubscribe(topic string) error {
	r.mu.Lock()
	sub := r.subs[topic]
	delete(r.subs, topic)
	r.mu.Unlock()
	if sub != nil {
		_ = sub.Unsubscribe() // fails only on a closed connection, which has no subscription left
	}
	return nil
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
			node, b, err := parseNATSMessage(m.Data)
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
			b.Topic = topic
			r.count.received.Add(1)
			r.deliver(b)
		}
	}
}
