package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/luachan/luachan/hub/internal/wire"
)

// The subscribing half of PubSub: one connection at a time, subscribed to the
// channels of the topics with local subscribers, read by the subscriber goroutine and
// written by a sync goroutine of its own, and replaced with backoff when it is lost.

// subscribeLoop keeps a subscriber connection, reconnecting with backoff when it is lost,
// until Close.
func (r *PubSub) subscribeLoop() {
	defer r.wg.Done()
	var bo backoff
	for {
		wasUp, err := r.session()
		r.mu.Lock()
		r.setStateLocked(0, false)
		r.mu.Unlock()
		if r.ctx.Err() != nil {
			return
		}
		r.lost = true
		if wasUp {
			bo.reset()
			r.downLog.Reset()
			r.downLog.Allow(1) // the next line in ratelog.Every at the earliest
			r.log.Warn("lost Redis: local delivery carries on; reconnecting", "reason", err)
		} else if ok, n := r.downLog.Allow(1); ok {
			r.log.Warn("Redis unreachable; retrying", "reason", err, "attempts", n)
		}
		if !sleep(r.ctx, bo.next()) {
			return
		}
	}
}

// session runs one subscriber connection: the sync goroutine writes the subscriptions
// and keep-alive pings, this goroutine reads. It returns when either fails or Close is
// called, with whether the connection was ever up (subscribed to every wanted topic).
func (r *PubSub) session() (wasUp bool, err error) {
	ps := r.newSubConn()
	ctx, cancel := context.WithCancel(r.ctx)
	syncErr := make(chan error, 1)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		syncErr <- r.syncLoop(ctx, ps)
	}()
	wasUp, err = r.readLoop(ps)
	cancel()
	if serr := <-syncErr; serr != nil {
		err = serr // the first failure: the reader then saw the connection closed
	}
	_ = ps.Close()
	return wasUp, err
}

// readLoop delivers what arrives on ps until it fails. Any silence longer than
// redisSilenceLimit fails it: the sync goroutine pings every redisPingEvery.
func (r *PubSub) readLoop(ps subConn) (wasUp bool, err error) {
	for {
		msg, err := ps.ReceiveTimeout(r.ctx, redisSilenceLimit)
		if err != nil {
			return wasUp, err
		}
		switch m := msg.(type) {
		case *goredis.Message:
			topic, ok := r.topicOf(m.Channel)
			if !ok {
				continue
			}
			if isHistoryMessage(m.Payload) {
				r.receiveHistory(topic, m.Payload)
				continue
			}
			node, b, err := wire.ParseBroadcast(m.Payload)
			if err != nil {
				if ok, n := r.junkLog.Allow(1); ok {
					r.log.Warn("ignoring messages luachan did not write", "channel", m.Channel, "ignored", n)
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
		case *goredis.Subscription:
			if m.Kind == "unsubscribe" {
				r.forgetSeen(m.Channel)
			}
		case *goredis.Pong:
			n, ok := strings.CutPrefix(m.Payload, redisSyncPing)
			if !ok {
				continue
			}
			batch, _ := strconv.ParseUint(n, 10, 64)
			r.mu.Lock()
			topics := len(r.want)
			r.setStateLocked(batch, true)
			r.mu.Unlock()
			if !wasUp {
				wasUp = true
				if r.lost {
					r.lost = false
					r.count.reconnects.Add(1)
					r.log.Info("Redis is back: resubscribed", "topics", topics)
				} else {
					r.log.Debug("subscribed on Redis", "topics", topics)
				}
			}
		}
	}
}

// syncLoop makes ps's subscriptions follow want: every wanted topic first, then each
// change, each batch followed by a PING whose answer confirms it to Subscribe; and it
// pings every redisPingEvery, so that the reader hears from Redis. It closes ps when it
// returns, which ends the reader too.
func (r *PubSub) syncLoop(ctx context.Context, ps subConn) error {
	defer ps.Close()
	applied := make(map[string]struct{}) // the topics ps is subscribed to
	if err := r.syncBatch(ctx, ps, applied, true); err != nil {
		return err
	}
	tick := time.NewTicker(redisPingEvery)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
			err = r.syncBatch(ctx, ps, applied, false)
		case <-tick.C:
			err = ps.Ping(ctx, "keepalive")
		}
		if err != nil {
			return err
		}
	}
}

// syncBatch subscribes ps to every wanted topic (all) or applies the changed ones, then
// sends the batch's PING.
func (r *PubSub) syncBatch(ctx context.Context, ps subConn, applied map[string]struct{}, all bool) error {
	var sub, unsub []string
	r.mu.Lock()
	if !all && len(r.changed) == 0 && !r.pingWanted {
		r.mu.Unlock()
		return nil
	}
	r.pingWanted = false
	r.taken++
	n := r.taken
	if all {
		for t := range r.want {
			sub = append(sub, t)
		}
	} else {
		for t := range r.changed {
			_, want := r.want[t]
			_, have := applied[t]
			switch {
			case want && !have:
				sub = append(sub, t)
			case !want && have:
				unsub = append(unsub, t)
			}
		}
	}
	clear(r.changed)
	r.mu.Unlock()

	if err := r.sendChunked(ctx, ps.Subscribe, sub); err != nil {
		return err
	}
	if err := r.sendChunked(ctx, ps.Unsubscribe, unsub); err != nil {
		return err
	}
	for _, t := range sub {
		applied[t] = struct{}{}
	}
	for _, t := range unsub {
		delete(applied, t)
	}
	return ps.Ping(ctx, syncPing(n))
}

// CatchUp returns once this node has delivered every broadcast that Redis had sent its
// subscriber connection before the call, on any topic: it sends a PING on that
// connection and waits for its answer, which Redis sends after them. It fails at once
// when the connection is down (what Redis sends meanwhile is not delivered at all), and
// with ctx's error. TopicStates calls it when it takes a lease, so that the broadcasts
// the last owner sent before it let the lease go are delivered here before the first
// ones the new owner sends. Before Start it returns at once.
func (r *PubSub) CatchUp(ctx context.Context) error {
	r.mu.Lock()
	if !r.started {
		r.mu.Unlock()
		return nil // not receiving at all (no Start): nothing to wait for
	}
	r.pingWanted = true
	ticket := r.taken + 1 // the batch that will carry the PING
	r.mu.Unlock()
	r.wake()
	up := true
	if !r.waitState(ctx, redisSubscribeWait, func() bool { up = r.up; return !up || r.confirmed >= ticket }) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("redis: the subscriber connection has not answered a PING: %w", err)
		}
		return fmt.Errorf("redis: the subscriber connection has not answered a PING within %v", redisSubscribeWait)
	}
	if !up {
		return errors.New("redis: the subscriber connection is down")
	}
	return nil
}

// sendChunked calls cmd (SUBSCRIBE or UNSUBSCRIBE) with the channels of topics, at most
// redisSubscribeChunk at a time, and not at all when there are none (UNSUBSCRIBE with no
// channel would unsubscribe from all of them).
func (r *PubSub) sendChunked(ctx context.Context, cmd func(context.Context, ...string) error, topics []string) error {
	for len(topics) > 0 {
		n := min(len(topics), redisSubscribeChunk)
		channels := make([]string, n)
		for i, t := range topics[:n] {
			channels[i] = r.channel(t)
		}
		if err := cmd(ctx, channels...); err != nil {
			return err
		}
		topics = topics[n:]
	}
	return nil
}
