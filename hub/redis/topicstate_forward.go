package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Forwarded calls. A node that does not own a topic publishes the call on the owner's
// channel, with a fresh id and the lease it is for; the owner runs it (only while it holds
// that very lease), saves the new state together with the reply under the call's id, then
// publishes the reply on the caller's channel. While it waits, the caller watches the
// lease: once it has changed, the call either was applied (its reply is in Redis) or never
// will be (no save under an old lease succeeds), and it is sent again to the new owner.

// replyBatch bounds the replies published in one pipeline.
const replyBatch = 64

// Reasons a call is sent again; they reach the caller only inside a timeout's error.
var (
	errNoOwner      = errors.New("no node owns the topic yet")
	errOwnerGone    = errors.New("the owner node is not listening (stopped or lost Redis)")
	errOwnerChanged = errors.New("the owner node lost the topic before it ran the call")
	errNotRun       = errors.New("the owner node no longer owned the topic")
	errOwnLapsing   = errors.New("a lease this node let go has not lapsed yet")
)

// wireState is a message on a node's topic-state channel: a call, a call's reply, or
// the news that a topic's lease is free.
type wireState struct {
	Kind  string          `json:"k"`            // "call", "reply", or "free" (a lease let go)
	ID    string          `json:"id"`           // the call's id (one per sending): its node is the caller
	Topic string          `json:"t,omitempty"`  // a call: its topic
	Lease string          `json:"l,omitempty"`  // a call: the lease it is for
	Wait  int64           `json:"w,omitempty"`  // a call: ms its caller still waits (0: no limit)
	Msg   json.RawMessage `json:"m,omitempty"`  // a call: msg; a reply: the reply
	Err   string          `json:"e,omitempty"`  // a reply: the call failed, why
	Moved bool            `json:"mv,omitempty"` // a reply: not run, the lease is not the node's
}

// outgoingReply is a reply waiting for the replier.
type outgoingReply struct {
	node string
	msg  wireState
}

// Forward sends a call on topic to the node that owns it and returns its reply, within
// ctx. here is true, and nothing was sent, when this node holds the lease (perhaps just
// taken, the topic being free): the caller runs the call itself. While the owner is gone
// and its lease not lapsed yet, the call waits and is sent again.
func (s *TopicStates) Forward(ctx context.Context, topic string, msg []byte) (reply []byte, here bool, err error) {
	var why error
	for try := 0; ; try++ {
		if try > 0 && !sleep(ctx, forwardRetry) || ctx.Err() != nil {
			if why == nil {
				why = ctx.Err()
			}
			return nil, false, fmt.Errorf("redis: no node answered the call on %s (%v): %w", topic, why, ctx.Err())
		}
		lease, err := s.client.Get(ctx, s.key(topic, "lease")).Result()
		switch {
		case err == goredis.Nil:
			if s.holding(topic, "") {
				return nil, true, nil
			}
			why = errNoOwner
			continue
		case err != nil:
			why = err
			continue
		case nodeOf(lease) == s.node:
			if s.holding(topic, lease) {
				return nil, true, nil
			}
			why = errOwnLapsing
			continue
		}
		reply, done, err := s.send(ctx, topic, lease, msg)
		if done {
			return reply, false, err
		}
		why = err
	}
}

// send sends the call once, to the holder of lease, and waits for its reply. done is
// false when the call was not run and will not be: it is to be sent again.
func (s *TopicStates) send(ctx context.Context, topic, lease string, msg []byte) (reply []byte, done bool, err error) {
	id := s.newID()
	ch := make(chan wireState, 1)
	s.mu.Lock()
	s.pending[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}()
	w := wireState{Kind: "call", ID: id, Topic: topic, Lease: lease, Msg: msg}
	if deadline, ok := ctx.Deadline(); ok {
		w.Wait = max(time.Until(deadline).Milliseconds(), 1)
	}
	data, err := json.Marshal(w)
	if err != nil {
		return nil, true, fmt.Errorf("redis: encoding a call on %s: %w", topic, err)
	}
	n, err := s.publishCmd(ctx, s.client, s.nodeChannel(nodeOf(lease)), data).Result()
	if err == nil && n == 0 {
		return nil, false, errOwnerGone // nobody heard it
	}
	// Sent (or perhaps sent, when the round trip failed): wait for the reply.
	check := time.NewTicker(forwardCheck)
	defer check.Stop()
	for {
		select {
		case r := <-ch:
			switch {
			case r.Moved:
				return nil, false, errNotRun
			case r.Err != "":
				return nil, true, errors.New(r.Err)
			}
			return r.Msg, true, nil
		case <-check.C:
			cur, err := s.client.Get(ctx, s.key(topic, "lease")).Result()
			if (err != nil && err != goredis.Nil) || cur == lease {
				continue // the owner still holds it (or Redis cannot tell): wait
			}
			// Applied under that lease (its reply saved with the state), or never.
			reply, found, err := s.savedReply(ctx, topic, id)
			switch {
			case err != nil:
				continue
			case found:
				return reply, true, nil
			}
			return nil, false, errOwnerChanged
		case <-ctx.Done():
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), forwardLastLook)
			reply, found, err := s.savedReply(lctx, topic, id)
			cancel()
			if err == nil && found {
				return reply, true, nil
			}
			return nil, true, fmt.Errorf("redis: the node owning %s did not answer: %w", topic, ctx.Err())
		}
	}
}

// savedReply returns the reply the owner saved with the state for call id, if any.
func (s *TopicStates) savedReply(ctx context.Context, topic, id string) ([]byte, bool, error) {
	v, err := s.client.Get(ctx, s.key(topic, "reply:"+id)).Bytes()
	switch {
	case err == goredis.Nil:
		return nil, false, nil
	case err != nil:
		return nil, false, err
	case len(v) == 0:
		return nil, false, nil
	}
	return v[1:], true, nil
}

// publishCmd publishes data on a node's channel: SPUBLISH on a Redis Cluster, where
// the count of receivers is then the channel's shard's, which its subscriber is on.
func (s *TopicStates) publishCmd(ctx context.Context, c goredis.Cmdable, channel string, data []byte) *goredis.IntCmd {
	if s.sharded {
		return c.SPublish(ctx, channel, data)
	}
	return c.Publish(ctx, channel, data)
}

// readLoop hands what arrives on this node's channel to serve (calls) or to the
// waiting callers (replies), until Close.
func (s *TopicStates) readLoop(ch <-chan *goredis.Message) {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			var w wireState
			if err := json.Unmarshal([]byte(m.Payload), &w); err != nil {
				if ok, n := s.dropLog.Allow(1); ok {
					s.log.Warn("ignoring messages luachan did not write", "channel", m.Channel, "ignored", n)
				}
				continue
			}
			switch w.Kind {
			case "reply":
				s.mu.Lock()
				wait := s.pending[w.ID]
				s.mu.Unlock()
				if wait != nil {
					select {
					case wait <- w:
					default:
					}
				}
			case "call":
				s.serve(w)
			case "free":
				s.mu.Lock()
				e := s.topics[w.Topic]
				s.mu.Unlock()
				if e != nil {
					e.freed.Store(true)
					s.wake()
				}
			}
		}
	}
}

// serve hands a forwarded call to its topic's state here, which answers it once run
// (or at once, moved, when this node has no state for the topic).
func (s *TopicStates) serve(w wireState) {
	s.mu.Lock()
	var o StateOwner
	if e := s.topics[w.Topic]; e != nil {
		o = e.owner
	}
	s.mu.Unlock()
	caller := nodeOf(w.ID)
	if o == nil {
		s.reply(caller, wireState{Kind: "reply", ID: w.ID, Moved: true})
		return
	}
	// The call is not run once its caller has given up, nor just before: the caller's
	// last look for its reply must find it saved if it ran.
	remaining := time.Duration(w.Wait)*time.Millisecond - 2*forwardLastLook
	if w.Wait <= 0 {
		remaining = stateReplyKeep
	}
	o.Call(w.Lease, w.ID, w.Msg, remaining, func(reply []byte, moved bool, err error) {
		r := wireState{Kind: "reply", ID: w.ID, Msg: reply, Moved: moved}
		if err != nil {
			r.Err = err.Error()
		}
		s.reply(caller, r)
	})
}

// reply queues r for the replier; a full queue drops it (its caller finds the reply
// saved in Redis once it has waited, or times out).
func (s *TopicStates) reply(node string, r wireState) {
	select {
	case s.replies <- outgoingReply{node: node, msg: r}:
	default:
		if ok, n := s.dropLog.Allow(1); ok {
			s.log.Warn("topic-state replies not sent: queue full", "dropped", n)
		}
	}
}

// replyLoop publishes the queued replies, pipelined, until Close.
func (s *TopicStates) replyLoop() {
	defer s.wg.Done()
	batch := make([]outgoingReply, 0, replyBatch)
	for {
		select {
		case <-s.ctx.Done():
			return
		case r := <-s.replies:
			batch = append(batch[:0], r)
		}
	more:
		for len(batch) < replyBatch {
			select {
			case r := <-s.replies:
				batch = append(batch, r)
			default:
				break more
			}
		}
		ctx, cancel := context.WithTimeout(s.ctx, redisIOTimeout)
		pipe := s.client.Pipeline()
		for _, r := range batch {
			data, err := json.Marshal(r.msg)
			if err != nil {
				data, _ = json.Marshal(wireState{Kind: "reply", ID: r.msg.ID, Err: "the reply could not be encoded: " + err.Error()})
			}
			s.publishCmd(ctx, pipe, s.nodeChannel(r.node), data)
		}
		_, err := pipe.Exec(ctx)
		cancel()
		if err != nil && s.ctx.Err() == nil {
			if ok, n := s.failLog.Allow(len(batch)); ok {
				s.log.Warn("topic-state replies not sent: their callers read them from Redis or time out", "err", err, "failed", n)
			}
		}
	}
}
