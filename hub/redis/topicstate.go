package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/luachan/luachan/internal/ratelog"
)

// DefaultStateLease is how long a topic-state lease lasts unless its owner renews it.
// The owner renews it every third of it; when the owner dies, another node with
// subscribers on the topic takes the lease within it and a third (4 s), inside the 5 s a
// socket:call waits.
const DefaultStateLease = 3 * time.Second

// Bounds of TopicStates.
const (
	// stateKeep is how long a topic's saved state outlives its owner's last renewal:
	// nodes that come back within it continue the state; after it, a join starts over
	// with init.
	stateKeep = time.Minute
	// stateReplyKeep is how long a forwarded call's reply is kept with the state, for
	// its caller to find when the owner died before answering.
	stateReplyKeep = 30 * time.Second
	// forwardRetry is the pause before a forwarded call is sent again because no node
	// took it (its owner is gone and the lease not lapsed yet).
	forwardRetry = 50 * time.Millisecond
	// forwardCheck is how often a caller waiting for a forwarded call's reply checks that
	// the node it sent it to still holds the lease.
	forwardCheck = 250 * time.Millisecond
	// forwardLastLook bounds the last look for a reply in Redis once a caller gave up.
	forwardLastLook = 100 * time.Millisecond
	// stateReplyQueue bounds the replies waiting to be published to their callers.
	stateReplyQueue = 4096
	// handOverFlush bounds how long a node waits for its queued broadcasts to reach
	// Redis before it lets a lease go (handOver).
	handOverFlush = time.Second
	// takeOverCatchUp bounds how long a node that took a lease waits to have delivered
	// what Redis sent it before (takeOver).
	takeOverCatchUp = time.Second
)

// StateOwner is one topic's state on this node (the engine's): TopicStates tells it
// when this node takes or loses the topic's lease, and hands it the calls other nodes
// forward. It matches engine.TopicOwner, which this package does not import.
type StateOwner interface {
	// Owned: this node took the lease; state is the saved state, nil for none.
	Owned(lease string, state []byte)
	// Lost: lease is no longer this node's.
	Lost(lease string)
	// Call runs a forwarded call sent to the holder of lease and answers with done.
	Call(lease, callID string, msg []byte, remaining time.Duration, done func(reply []byte, moved bool, err error))
}

// TopicStates shares topic states between the nodes on one Redis (SPEC section 11): one
// node at a time owns a topic's state, under a lease; the owner saves the state after
// every change; the others forward their calls to it.
//
// Keys (Prefix is the adapter's; the topic is their hash tag):
//
//	Prefix+"ts:{"+topic+"}:lease"       the owner's lease, SET NX PX lease, renewed every lease/3
//	Prefix+"ts:{"+topic+"}:state"       the saved state (JSON), PX stateKeep, renewed with the lease
//	Prefix+"ts:{"+topic+"}:nodes"       sorted set of the nodes that want the topic, by expiry
//	Prefix+"ts:{"+topic+"}:reply:"+id   a forwarded call's reply, saved with the state it made
//	Prefix+"ts:{"+topic+"}:saved:"+lease the number of the last save stored under lease
//	Prefix+"ts:node:"+node              the channel a node hears calls and replies on
//
// A lease's value is unique to one taking of it (node id and a counter), and every save
// compares it in the same script, so a node that lost a lease never overwrites the new
// owner's state, even with calls it had queued. A forwarded call whose owner dies is
// sent again only when its lease is gone and its reply is not in Redis: it was not
// applied, and never will be.
//
// Lifecycle: PubSub.TopicStates builds it (no I/O); Start subscribes to this node's
// channel and starts the lease loop, the reader and the replier; Close, before
// PubSub.Close, stops them and lets this node's leases go, so other nodes take over at
// once. Locks: mu guards topics and pending and is a leaf; a topic's leaseEntry.op
// serializes its lease steps and their Owned and Lost calls (taken before mu, never
// the other way round).
type TopicStates struct {
	ps      *PubSub // whose queued broadcasts go out before a lease is let go (handOver)
	client  goredis.UniversalClient
	sharded bool
	log     *slog.Logger
	prefix  string // of the keys and channels: the adapter's Prefix+"ts:"
	node    string
	lease   time.Duration

	seq atomic.Uint64 // leases and call ids

	mu      sync.Mutex
	topics  map[string]*leaseEntry    // the topics with subscribers here
	pending map[string]chan wireState // forwarded calls waiting for a reply, by id

	replies  chan outgoingReply
	kick     chan struct{} // (cap 1) a topic wants its lease at once
	sub      *goredis.PubSub
	failLog  ratelog.Limiter
	dropLog  ratelog.Limiter
	flushLog ratelog.Limiter
	catchLog ratelog.Limiter

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the lease loop, the reader and the replier
	startOnce sync.Once
	closeOnce sync.Once
}

// leaseEntry is one wanted topic's lease on this node.
type leaseEntry struct {
	topic string
	owner StateOwner // guarded by TopicStates.mu: Want may name a new one

	op      sync.Mutex // guards the fields below, held across their Redis steps
	lease   string     // the lease this node holds; "" for none
	renewed time.Time  // when the last successful renewal started
	tried   bool       // a lease step ran since Want
	gone    bool       // Unwant ran: no more steps

	freed atomic.Bool // another node let the lease go: the next kick tries it again
}

// TopicStates returns the topic states shared through r's Redis; lease <= 0 takes
// DefaultStateLease.
func (r *PubSub) TopicStates(lease time.Duration) *TopicStates {
	if lease <= 0 {
		lease = DefaultStateLease
	}
	s := &TopicStates{
		ps:      r,
		client:  r.client,
		sharded: r.sharded,
		log:     r.log.With("part", "topic-state", "node", fmt.Sprintf("%016x", r.node)),
		prefix:  r.cfg.Prefix + "ts:",
		node:    fmt.Sprintf("%016x", r.node),
		lease:   lease,
		topics:  make(map[string]*leaseEntry),
		pending: make(map[string]chan wireState),
		replies: make(chan outgoingReply, stateReplyQueue),
		kick:    make(chan struct{}, 1),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

func (s *TopicStates) key(topic, what string) string {
	return s.prefix + "{" + topic + "}:" + what
}

func (s *TopicStates) keys(topic string) []string {
	return []string{s.key(topic, "lease"), s.key(topic, "state"), s.key(topic, "nodes")}
}

// nodeChannel is the channel node hears calls and replies on.
func (s *TopicStates) nodeChannel(node string) string { return s.prefix + "node:" + node }

// newID returns a lease or call id unique to this node's lifetime, prefixed with its id.
func (s *TopicStates) newID() string {
	return s.node + "." + strconv.FormatUint(s.seq.Add(1), 36)
}

// nodeOf is the node of a lease or call id.
func nodeOf(id string) string {
	for i := 0; i < len(id); i++ {
		if id[i] == '.' {
			return id[:i]
		}
	}
	return id
}

// Start subscribes to this node's channel, waiting for Redis to confirm within ctx,
// and starts the lease loop, the reader and the replier.
func (s *TopicStates) Start(ctx context.Context) {
	s.startOnce.Do(func() {
		ch := s.nodeChannel(s.node)
		if s.sharded {
			s.sub = s.client.SSubscribe(s.ctx, ch)
		} else {
			s.sub = s.client.Subscribe(s.ctx, ch)
		}
		cctx, cancel := context.WithTimeout(ctx, redisDialTimeout+redisIOTimeout)
		if _, err := s.sub.Receive(cctx); err != nil {
			s.log.Warn("not subscribed to this node's topic-state channel yet: calls forwarded here fail until it is; retrying", "err", err)
		}
		cancel()
		s.wg.Add(3)
		go s.leaseLoop()
		go s.readLoop(s.sub.Channel())
		go s.replyLoop()
	})
}

// Close stops the goroutines and waits for them, then lets go of every lease this
// node holds, so that the other nodes with subscribers take the topics at once, from
// the saved states. It gives up when ctx ends; the leases then lapse by themselves.
func (s *TopicStates) Close(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		s.cancel()
		if s.sub != nil {
			_ = s.sub.Close()
		}
		if err = waitFor(ctx, s.wg.Wait); err != nil {
			err = fmt.Errorf("redis: topic-state goroutines still running: %w", err)
			return
		}
		s.handOver(ctx)
		s.mu.Lock()
		entries := make([]*leaseEntry, 0, len(s.topics))
		for _, e := range s.topics {
			entries = append(entries, e)
		}
		s.mu.Unlock()
		released := 0
		var freed []string
		for _, e := range entries {
			e.op.Lock()
			lease := e.lease
			e.lease, e.gone = "", true
			e.op.Unlock()
			if lease != "" {
				freed = append(freed, e.topic)
			}
			// Without a lease too: the node leaves the topic's interest set, which would
			// otherwise keep it wanted (for 3 leases) and stop the last node that does
			// want it from ending it.
			rctx, cancel := context.WithTimeout(ctx, redisIOTimeout)
			n, _, rerr := s.release(rctx, e.topic, lease, "shutdown")
			cancel()
			if rerr != nil {
				err = fmt.Errorf("redis: topic-state leases not released (the other nodes take them once they lapse): %w", rerr)
				break
			}
			released += n
		}
		for _, topic := range freed {
			s.announceFree(ctx, topic)
		}
		if released > 0 {
			s.log.Info("topic-state leases handed over at shutdown: other nodes with subscribers take them now", "topics", released)
		}
	})
	return err
}

// Want says that this node has subscribers on topic; o hears of its lease and gets its
// forwarded calls. The lease is tried at once, then every lease/3.
func (s *TopicStates) Want(topic string, o StateOwner) {
	s.mu.Lock()
	e := s.topics[topic]
	if e == nil {
		e = &leaseEntry{topic: topic}
		s.topics[topic] = e
	}
	e.owner = o
	s.mu.Unlock()
	s.wake()
}

// wake has the lease loop try the topics not tried yet, at once.
func (s *TopicStates) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Unwant says that o, topic's state here, ended. It lets the lease go; last is true
// when no other node wants the topic, and the saved state is then deleted and given back
// as saved: the caller runs terminate on it when it has no state of its own (its owner let
// the lease go to this node while this node was ending too, or this node took it as it
// ended). When Want has named a new state for topic since, the lease is let go for it to
// take afresh, with the saved state.
func (s *TopicStates) Unwant(ctx context.Context, topic string, o StateOwner) (last bool, saved []byte, err error) {
	s.mu.Lock()
	e := s.topics[topic]
	rewanted := e != nil && e.owner != o
	if e != nil && !rewanted {
		delete(s.topics, topic)
	}
	s.mu.Unlock()
	if e == nil {
		return false, nil, nil
	}
	s.handOver(ctx)
	e.op.Lock()
	defer e.op.Unlock()
	mode := "unwant"
	if rewanted {
		mode = "handover"
	} else {
		e.gone = true
	}
	lease := e.lease
	e.lease, e.tried = "", false
	ctx, cancel := context.WithTimeout(ctx, redisIOTimeout)
	defer cancel()
	n, saved, err := s.release(ctx, topic, lease, mode)
	if err != nil {
		return false, nil, fmt.Errorf("redis: releasing the topic-state lease of %s: %w", topic, err)
	}
	switch {
	case n == 2:
		s.log.Info("topic state ended: no node has subscribers left; saved state deleted", "topic", topic)
	case n == 1 && rewanted:
		s.wake()
	case n == 1:
		s.log.Info("topic-state lease released: a node that wants the topic (with subscribers, or within its grace) takes it over", "topic", topic)
		s.announceFree(ctx, topic)
	}
	return n == 2, saved, nil
}

// release runs releaseLease for topic: its code, and the saved state it deleted when this
// node ended the topic.
func (s *TopicStates) release(ctx context.Context, topic, lease, mode string) (n int, saved []byte, err error) {
	res, err := releaseLease.Run(ctx, s.client, s.keys(topic), lease, s.node, mode).Slice()
	if err != nil {
		return 0, nil, err
	}
	if len(res) == 0 {
		return 0, nil, fmt.Errorf("releasing the lease: an empty reply")
	}
	code, ok := res[0].(int64)
	if !ok {
		return 0, nil, fmt.Errorf("releasing the lease: a reply of %T", res[0])
	}
	if len(res) > 1 {
		if st, ok := res[1].(string); ok {
			saved = []byte(st)
		}
	}
	return int(code), saved, nil
}

// handOver waits, up to handOverFlush, for the broadcasts this node has queued for Redis
// (PubSub.Flush), before a lease is let go: a last tick's broadcasts are then in Redis
// before another node can take the topic and tick on.
func (s *TopicStates) handOver(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, handOverFlush)
	defer cancel()
	if err := s.ps.Flush(ctx); err != nil {
		if ok, since := s.flushLog.Allow(1); ok {
			s.log.Warn("lease let go with broadcasts still queued for Redis: other nodes may send the topic's next ones before them",
				"err", err.Error(), "times", since)
		}
	}
}

// takeOver waits, up to takeOverCatchUp, until this node, which has just taken topic's
// lease, has delivered the broadcasts Redis sent it before (PubSub.CatchUp). The last
// owner's were in Redis before it let the lease go (handOver), so its last tick reaches
// this node's subscribers before the first one this node sends, which it delivers to
// them directly.
func (s *TopicStates) takeOver(topic string) {
	ctx, cancel := context.WithTimeout(s.ctx, takeOverCatchUp)
	defer cancel()
	if err := s.ps.CatchUp(ctx); err != nil && s.ctx.Err() == nil {
		if ok, since := s.catchLog.Allow(1); ok {
			s.log.Warn("topic taken over before the last owner's broadcasts were delivered here: its subscribers here may get this node's first ones before them",
				"topic", topic, "err", err.Error(), "times", since)
		}
	}
}

// announceFree tells the other nodes that want topic that its lease is free, so that
// one takes it at once rather than at its next lease step. Failing that, they do then.
func (s *TopicStates) announceFree(ctx context.Context, topic string) {
	ctx, cancel := context.WithTimeout(ctx, redisIOTimeout)
	defer cancel()
	nodes, err := s.client.ZRange(ctx, s.key(topic, "nodes"), 0, -1).Result()
	if err != nil {
		return
	}
	data, _ := json.Marshal(wireState{Kind: "free", Topic: topic})
	pipe := s.client.Pipeline()
	for _, n := range nodes {
		if n != s.node {
			s.publishCmd(ctx, pipe, s.nodeChannel(n), data)
		}
	}
	if pipe.Len() > 0 {
		_, _ = pipe.Exec(ctx)
	}
}
