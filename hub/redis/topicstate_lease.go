package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

const (
	// saveReadBack bounds the read that tells whether a save whose round trip failed
	// was stored all the same.
	saveReadBack = 500 * time.Millisecond
	// leaseStepsInFlight bounds the lease steps a cycle runs at once, so that thousands
	// of topics are renewed well within a lease.
	leaseStepsInFlight = 16
)

// leaseLoop renews the leases this node holds and tries to take the free ones of the
// topics it wants, every lease/3; a kick tries the topics not tried yet at once.
func (s *TopicStates) leaseLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(s.lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
			s.cycle(false)
		case <-s.kick:
			s.cycle(true)
		}
	}
}

// cycle runs a lease step for every wanted topic (onlyNew: those not tried yet, or
// announced free), up to
// leaseStepsInFlight at once, and returns once they are done.
func (s *TopicStates) cycle(onlyNew bool) {
	s.mu.Lock()
	entries := make([]*leaseEntry, 0, len(s.topics))
	for _, e := range s.topics {
		entries = append(entries, e)
	}
	s.mu.Unlock()
	slots := make(chan struct{}, leaseStepsInFlight)
	var wg sync.WaitGroup
	for _, e := range entries {
		if s.ctx.Err() != nil {
			break
		}
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.step(e, onlyNew)
			<-slots
		}()
	}
	wg.Wait()
}

// ownerOf is e's StateOwner.
func (s *TopicStates) ownerOf(e *leaseEntry) StateOwner {
	s.mu.Lock()
	defer s.mu.Unlock()
	return e.owner
}

// step renews e's lease, or takes it when it is free, telling e's owner of a change, and
// reports whether this node holds the lease after it.
func (s *TopicStates) step(e *leaseEntry, onlyNew bool) bool {
	e.op.Lock()
	defer e.op.Unlock()
	if e.gone || (onlyNew && e.tried && !e.freed.Swap(false)) {
		return e.lease != ""
	}
	e.tried = true
	lease, held := e.lease, e.lease != ""
	if !held {
		lease = s.newID() // a new lease for each taking: an old one never comes back
	}
	heldArg := "0"
	if held {
		heldArg = "1"
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(s.ctx, redisIOTimeout)
	res, err := leaseCycle.Run(ctx, s.client, s.keys(e.topic), lease,
		s.lease.Milliseconds(), stateKeep.Milliseconds(), s.node, heldArg).Slice()
	cancel()
	if err != nil || len(res) == 0 {
		if held && time.Since(e.renewed) >= s.lease {
			e.lease = ""
			s.log.Warn("topic-state lease lost: Redis did not renew it in time; calls and ticks of the topic stop here until a node takes it again", "topic", e.topic, "err", err)
			s.ownerOf(e).Lost(lease)
		} else if ok, n := s.failLog.Allow(1); ok && s.ctx.Err() == nil {
			s.log.Warn("topic-state lease not renewed or taken; retrying", "topic", e.topic, "err", err, "failures", n)
		}
		return e.lease != ""
	}
	switch code, _ := res[0].(int64); code {
	case 1:
		e.renewed = start
	case 2:
		e.lease, e.renewed = lease, start
		var state []byte
		if len(res) > 1 {
			if str, ok := res[1].(string); ok {
				state = []byte(str)
			}
		}
		s.log.Info("topic-state lease taken: this node owns the topic", "topic", e.topic, "from_saved_state", state != nil)
		s.takeOver(e.topic)
		s.ownerOf(e).Owned(lease, state)
	default:
		if held {
			e.lease = ""
			s.log.Warn("topic-state lease lost: it lapsed or another node took it", "topic", e.topic)
			s.ownerOf(e).Lost(lease)
		}
	}
	return e.lease != ""
}

// holding reports whether this node holds lease for topic, taking the lease first when
// it is free (and the topic wanted here): the caller then runs its call here.
func (s *TopicStates) holding(topic, lease string) bool {
	s.mu.Lock()
	e := s.topics[topic]
	s.mu.Unlock()
	if e == nil {
		return false
	}
	if lease == "" {
		// Free: one step renews or drops what this node held, a second takes it.
		return s.step(e, false) || s.step(e, false)
	}
	e.op.Lock()
	defer e.op.Unlock()
	return e.lease == lease
}

// Save stores state as topic's state (and reply as the reply of the forwarded call
// callID, when given) while lease is still this node's (ok). When the round trip
// fails, it asks Redis whether this save was stored, which holds even once the lease
// has gone to another node (a node paused past its lease, say: the new owner started
// from the state this save stored). An error means the state was not saved, or that
// Redis could not tell.
func (s *TopicStates) Save(ctx context.Context, topic, lease string, state []byte, callID string, reply []byte) (bool, error) {
	sctx, cancel := context.WithTimeout(ctx, redisIOTimeout)
	defer cancel()
	n := s.seq.Add(1)
	keys := []string{s.key(topic, "lease"), s.key(topic, "state"), s.key(topic, "saved:"+lease)}
	args := []any{lease, state, stateKeep.Milliseconds(), n}
	if callID != "" {
		keys = append(keys, s.key(topic, "reply:"+callID))
		args = append(args, append([]byte{'r'}, reply...), stateReplyKeep.Milliseconds())
	}
	res, err := saveState.Run(sctx, s.client, keys, args...).Int()
	if err == nil {
		return res == 1, nil
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), saveReadBack)
	defer rcancel()
	stored, rerr := s.stored(rctx, topic, lease, n)
	switch {
	case rerr != nil:
		return false, fmt.Errorf("redis: saving the state of %s: %w; and whether it was stored is unknown: %w", topic, err, rerr)
	case stored:
		return true, nil
	}
	return false, fmt.Errorf("redis: saving the state of %s: %w; Redis has no record of it: not stored", topic, err)
}

// stored reports whether this node's save number n under lease was stored. A topic's
// saves run one at a time, so a number at least n under the lease means n was stored.
func (s *TopicStates) stored(ctx context.Context, topic, lease string, n uint64) (bool, error) {
	last, err := s.client.Get(ctx, s.key(topic, "saved:"+lease)).Uint64()
	switch {
	case errors.Is(err, goredis.Nil):
		return false, nil
	case err != nil:
		return false, err
	}
	return last >= n, nil
}

// Load returns topic's saved state (nil: none) while lease is this node's (ok).
func (s *TopicStates) Load(ctx context.Context, topic, lease string) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, redisIOTimeout)
	defer cancel()
	res, err := loadState.Run(ctx, s.client, []string{s.key(topic, "lease"), s.key(topic, "state")}, lease).Slice()
	if err != nil {
		return nil, false, fmt.Errorf("redis: reading the state of %s: %w", topic, err)
	}
	if code, _ := res[0].(int64); code != 1 {
		return nil, false, nil
	}
	if len(res) > 1 {
		if str, ok := res[1].(string); ok {
			return []byte(str), true, nil
		}
	}
	return nil, true, nil
}
