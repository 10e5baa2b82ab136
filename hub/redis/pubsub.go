package redis

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/internal/ratelog"
)

// Defaults for the zero values of Config.
const (
	DefaultPrefix     = "luachan:" // of every Redis channel and key luachan uses
	DefaultQueueLen   = 16384      // broadcasts waiting to be published
	DefaultQueueBytes = 64 << 20   // their payload bytes (64 MiB)
)

// Timeouts and sizes of the Redis adapter.
const (
	redisDialTimeout    = 2 * time.Second        // one connection attempt
	redisIOTimeout      = 3 * time.Second        // one command's write or reply
	redisPingEvery      = time.Second            // keep-alive on the subscriber connection
	redisSilenceLimit   = 3 * redisPingEvery     // no reply for this long: the connection is lost
	redisSubscribeWait  = time.Second            // how long a topic's first Subscribe waits for Redis to confirm
	redisBackoffMin     = 100 * time.Millisecond // first reconnect delay
	redisBackoffMax     = 3 * time.Second        // longest reconnect delay
	redisMaxBatch       = 512                    // broadcasts per PUBLISH pipeline
	redisMaxBatchBytes  = 1 << 20                // payload bytes per PUBLISH pipeline, once reached
	redisSubscribeChunk = 1024                   // channels per SUBSCRIBE command
	redisCloseFlush     = time.Second            // how long Close tries to publish what is queued
	redisSyncPing       = "sync:"                // PING payload marking the end of a subscription batch
)

// ErrURL is returned for a URL that is not a usable redis:// or rediss:// URL.
var ErrURL = errors.New("redis: bad Redis URL")

// Config configures a PubSub. Zero values take the defaults in parentheses.
type Config struct {
	// URL is redis://[user:password@]host:port/db, or rediss:// for TLS. Required.
	URL        string
	Prefix     string       // (DefaultPrefix) of every Redis channel and key, so clusters can share a Redis
	Logger     *slog.Logger // (slog.Default())
	QueueLen   int          // (DefaultQueueLen) broadcasts waiting to be published; beyond it they are dropped
	QueueBytes int64        // (DefaultQueueBytes) payload bytes waiting to be published; likewise
}

// PubSub is the hub.PubSub for several nodes on one Redis, and the owner of the Redis
// client that Store shares.
//
// Each topic is one Redis channel, Prefix+"topic:"+topic. A node subscribes to it while
// the topic has local subscribers, so Redis sends a node only the topics it serves.
// Every message carries the id of the node that published it, and a node skips its own:
// the Hub has served local subscribers already.
//
// Publish only queues: one publisher goroutine sends the queue in order, pipelined, on
// one connection at a time, so broadcasts from one sender reach every node in the order
// they were made. A full queue or a failed pipeline loses broadcasts for the other nodes
// only; they are counted and logged, never retried (a retry could deliver twice).
//
// Subscriptions live on one dedicated connection, owned by the subscriber goroutine.
// When it is lost, the node logs it, keeps delivering locally, reconnects with backoff
// and subscribes again to every topic it then has.
//
// Lifecycle: Dial connects (no goroutine yet), Start starts the publisher and the
// subscriber, which runs one sync goroutine per subscriber connection, and Close(ctx)
// stops and waits for all of them. Locks: the Hub calls
// Subscribe and Unsubscribe holding a registry shard's subMu, so PubSub.mu comes
// after shard.subMu; nothing holding PubSub.mu calls into the Hub or Redis, and the
// ratelog.Limiter locks are leaves.
type PubSub struct {
	cfg     Config
	log     *slog.Logger
	client  goredis.UniversalClient // *goredis.ClusterClient for redis+cluster://
	sharded bool                    // a Redis Cluster: SSUBSCRIBE and SPUBLISH
	node    uint64                  // this node's id, in every message it publishes
	deliver func(*hub.Broadcast)    // Hub.DeliverLocal, set by Start

	queue      chan *hub.Broadcast // broadcasts waiting for the publisher
	queueBytes atomic.Int64        // their payload bytes
	closing    atomic.Bool         // Close started: Publish drops
	kick       chan struct{}       // (cap 1) tells the subscriber that want changed
	progress   queueProgress       // the publisher's, for Flush

	mu         sync.Mutex          // guards the fields below
	want       map[string]struct{} // topics with local subscribers
	changed    map[string]struct{} // topics whose want changed since the subscriber last looked
	pingWanted bool                // a CatchUp waits for a batch (a PING), changes or not
	taken      uint64              // subscription batches the subscriber has taken
	confirmed  uint64              // the last batch Redis has answered
	up         bool                // the subscriber connection is up and subscribed
	stalled    bool                // a Subscribe timed out waiting for Redis; no other waits until Redis answers
	notify     chan struct{}       // closed (and replaced) when confirmed or up changes
	started    bool
	histories  []*History // made by History: Flush waits for their queues too

	count    redisCounters
	lost     bool        // a subscriber connection failed and none is up since; the subscriber goroutine's own
	histSeen historySeen // the last history position delivered per topic; the subscriber goroutine's own

	pubLog, dropLog, downLog, junkLog ratelog.Limiter

	stop       chan struct{}   // closed by Close: the publisher flushes the queue and returns
	ctx        context.Context // cancelled by Close: the subscriber returns
	cancel     context.CancelFunc
	wg         sync.WaitGroup // the publisher and subscriber goroutines
	stopOnce   sync.Once      // Close's stop and cancel
	clientOnce sync.Once      // Close's closing of client, whose error is clientErr
	clientErr  error
}

var _ hub.PubSub = (*PubSub)(nil)

// redisCounters are the adapter's totals since start.
type redisCounters struct {
	published  atomic.Uint64
	dropped    atomic.Uint64
	received   atomic.Uint64
	own        atomic.Uint64
	reconnects atomic.Uint64
}

// Stats is a snapshot of a PubSub's counters.
type Stats struct {
	Published  uint64 // broadcasts published to Redis
	Dropped    uint64 // broadcasts the other nodes did not get: queue full, or Redis failed
	Received   uint64 // broadcasts from other nodes delivered here
	Own        uint64 // this node's broadcasts coming back, skipped
	Reconnects uint64 // times the subscriber connection came back after a loss
	Topics     int    // topics this node is subscribed to (or wants to be)
	Connected  bool   // the subscriber connection is up and subscribed
	Queued     int    // broadcasts waiting in the publish queue
}

// CheckURL reports whether s is a usable redis://, rediss://, redis+cluster:// or
// redis+sentinel:// URL (client.go). Its errors never contain the password.
func CheckURL(s string) error {
	_, err := parseTarget(s)
	return err
}

// redisOptions parses a -pubsub URL into client options, with luachan's timeouts where
// the URL sets none.
func redisOptions(s string) (*goredis.Options, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return nil, ErrURL
	}
	opts, err := goredis.ParseURL(s)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", ErrURL, strings.TrimPrefix(err.Error(), "redis: "))
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = redisDialTimeout
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = redisIOTimeout
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = redisIOTimeout
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = -1 // a retried PUBLISH or INCRBY could happen twice
	}
	if opts.DialerRetries == 0 {
		opts.DialerRetries = 1 // the adapter has its own backoff
	}
	if opts.Protocol == 0 {
		opts.Protocol = 2 // RESP2: what every Redis-compatible server speaks
	}
	opts.DisableIdentity = true       // no CLIENT SETINFO, which older servers refuse
	opts.ContextTimeoutEnabled = true // Close's flush is bounded by its context
	return opts, nil
}

// Deliverer is what the adapter needs from the hub: delivery of the other nodes'
// broadcasts to this node's subscribers. *hub.Hub implements it.
type Deliverer interface {
	DeliverLocal(b *hub.Broadcast)
}

// Dial connects to the Redis at cfg.URL and checks that it answers, within ctx. It starts
// no goroutine: the adapter publishes and subscribes once Start has given it a Hub, and
// Close releases it.
func Dial(ctx context.Context, cfg Config) (*PubSub, error) {
	tgt, err := parseTarget(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	goredis.SetLogger(redisClientLog{cfg.Logger}) // process-wide: go-redis has one logger
	client := tgt.newClient()
	pctx, cancel := context.WithTimeout(ctx, redisDialTimeout+redisIOTimeout)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("redis: cannot reach Redis at %s: %w", tgt.where, err)
	}

	var id [8]byte
	_, _ = crand.Read(id[:])
	r := &PubSub{
		cfg:     cfg,
		log:     cfg.Logger.With("pubsub", "redis", "redis", tgt.where),
		client:  client,
		sharded: tgt.cluster != nil,
		node:    binary.BigEndian.Uint64(id[:]) | 1, // never 0
		queue:   make(chan *hub.Broadcast, cfg.QueueLen),
		kick:    make(chan struct{}, 1),
		want:    make(map[string]struct{}),
		changed: make(map[string]struct{}),
		notify:  make(chan struct{}),
		stop:    make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// Start starts the publisher and the subscriber; broadcasts from other nodes go to
// h.DeliverLocal. Topics subscribed to before Start are subscribed to now. It waits (up
// to 5 s, or until ctx ends) for the subscriber connection, so that a node serves clients
// only once it hears the others; Redis not answering by then is logged, and the
// subscriber keeps trying. Start is called once, before Close.
func (r *PubSub) Start(ctx context.Context, h Deliverer) {
	r.mu.Lock()
	started := r.started
	r.started = true
	r.mu.Unlock()
	if started {
		return
	}
	r.deliver = h.DeliverLocal // before the goroutines that read it start
	r.wg.Add(2)
	go r.publishLoop()
	go r.subscribeLoop()
	r.log.Info("sharing broadcasts and luachan.store through Redis", "node", fmt.Sprintf("%016x", r.node))
	if !r.waitState(ctx, redisDialTimeout+redisIOTimeout, func() bool { return r.up }) {
		r.log.Warn("not subscribed on Redis yet; serving, and retrying")
	}
}

// Close publishes what is queued (for up to 1 s), stops the goroutines and waits for them,
// then closes the Redis client: the Store and the Presence stop working too, so Close
// them first. When ctx ends first, Close closes the client at once, cutting off what
// is in flight (the goroutines then return on their own), and returns ctx's error.
func (r *PubSub) Close(ctx context.Context) error {
	r.stopOnce.Do(func() {
		r.closing.Store(true)
		close(r.stop) // the publisher flushes the queue, then returns
		r.cancel()    // the subscriber returns
	})
	waited := waitFor(ctx, r.wg.Wait)
	r.clientOnce.Do(func() { r.clientErr = r.client.Close() })
	if waited != nil {
		return fmt.Errorf("redis: publisher or subscriber still running: %w", waited)
	}
	return r.clientErr
}

// waitFor runs wait and returns nil once it has, or ctx's error when ctx ends first;
// wait's goroutine then finishes on its own.
func waitFor(ctx context.Context, wait func()) error {
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the adapter's counters.
func (r *PubSub) Stats() Stats {
	r.mu.Lock()
	topics, up := len(r.want), r.up
	r.mu.Unlock()
	return Stats{
		Published:  r.count.published.Load(),
		Dropped:    r.count.dropped.Load(),
		Received:   r.count.received.Load(),
		Own:        r.count.own.Load(),
		Reconnects: r.count.reconnects.Load(),
		Topics:     topics,
		Connected:  up,
		Queued:     len(r.queue),
	}
}

// Store returns luachan.store kept in this Redis, sharing the adapter's client.
func (r *PubSub) Store() *Store {
	return &Store{client: r.client, prefix: r.cfg.Prefix + "store:"}
}

// channel returns topic's Redis channel.
func (r *PubSub) channel(topic string) string {
	if r.sharded {
		// The topic is the channel's hash tag, as it is its history keys': the
		// history script's SPUBLISH must be in the slot of the keys it writes.
		return r.cfg.Prefix + "topic:{" + topic + "}"
	}
	return r.cfg.Prefix + "topic:" + topic
}

// topicOf is the inverse of channel; ok is false for a channel that is not a topic's.
func (r *PubSub) topicOf(channel string) (topic string, ok bool) {
	topic, ok = strings.CutPrefix(channel, r.cfg.Prefix+"topic:")
	if ok && r.sharded {
		topic, ok = strings.CutPrefix(topic, "{")
		if ok {
			topic, ok = strings.CutSuffix(topic, "}")
		}
	}
	return topic, ok
}

// publishCommand is the command that publishes to a topic's channel.
func (r *PubSub) publishCommand() string {
	if r.sharded {
		return "SPUBLISH"
	}
	return "PUBLISH"
}

// Publish queues b for the other nodes and returns at once. It never fails: when the
// queue is full (Redis slow or gone) b is dropped for the other nodes, counted and
// logged; local subscribers have it already.
func (r *PubSub) Publish(b *hub.Broadcast) error {
	if r.closing.Load() {
		r.dropped(1, "shutting down")
		return nil
	}
	n := int64(len(b.Payload))
	if r.queueBytes.Add(n) > r.cfg.QueueBytes {
		r.queueBytes.Add(-n)
		r.dropped(1, "publish queue full")
		return nil
	}
	r.progress.in()
	select {
	case r.queue <- b:
	default:
		r.progress.undo()
		r.queueBytes.Add(-n)
		r.dropped(1, "publish queue full")
	}
	return nil
}

// dropped counts n broadcasts lost for the other nodes and logs it, rate-limited.
func (r *PubSub) dropped(n int, why string) {
	r.count.dropped.Add(uint64(n))
	if ok, since := r.dropLog.Allow(n); ok {
		r.log.Warn("broadcasts not sent to other nodes", "reason", why, "dropped", since)
	}
}

// Subscribe makes this node receive topic's broadcasts from the other nodes. It does not
// fail: while Redis is unreachable the topic is subscribed to once it is back. When the
// subscriber connection is up, it waits (up to 1 s) for Redis to confirm, so that a
// broadcast published anywhere after a join reply reaches the new subscriber.
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

// Unsubscribe stops this node receiving topic's broadcasts; it does not wait for Redis.
func (r *PubSub) Unsubscribe(topic string) error {
	r.mu.Lock()
	delete(r.want, topic)
	r.changed[topic] = struct{}{}
	r.mu.Unlock()
	r.wake()
	return nil
}

// wake tells the subscriber goroutine that want changed.
func (r *PubSub) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// await waits until Redis has answered subscription batch ticket, the subscriber
// connection is down, or redisSubscribeWait passes. It waits at most once per stall: while
// Redis does not answer, the callers (holding a registry shard's subMu) must not queue up.
func (r *PubSub) await(ticket uint64) {
	done := r.waitState(context.Background(), redisSubscribeWait, func() bool { return !r.up || r.stalled || r.confirmed >= ticket })
	if !done {
		// Redis is slow or the connection is dead but not yet known to be: the
		// subscription applies when it can, and joins stop waiting until Redis answers.
		r.mu.Lock()
		r.stalled = true
		r.mu.Unlock()
		r.log.Warn("Redis did not confirm a subscription in time", "wait", redisSubscribeWait)
	}
}

// waitState waits until cond holds (it is called with r.mu held), or (false) Close is
// called, ctx ends or timeout passes.
func (r *PubSub) waitState(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		r.mu.Lock()
		ok := cond()
		ch := r.notify
		r.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		case <-r.ctx.Done():
			return false
		}
	}
}

// setStateLocked records a confirmed batch and whether the connection is up, and wakes
// the waiters. r.mu must be held.
func (r *PubSub) setStateLocked(confirmed uint64, up bool) {
	r.confirmed = max(r.confirmed, confirmed)
	r.up = up
	r.stalled = false
	close(r.notify)
	r.notify = make(chan struct{})
}

// redisClientLog turns go-redis's own log lines into debug lines: the adapter logs what
// an operator needs (Redis lost, back, unreachable) itself.
type redisClientLog struct{ log *slog.Logger }

func (l redisClientLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug("redis client", "detail", fmt.Sprintf(format, v...))
}

// backoff is a capped exponential delay with jitter, for reconnecting.
type backoff struct{ attempt int }

func (b *backoff) next() time.Duration {
	d := redisBackoffMax
	if b.attempt < 16 {
		d = min(redisBackoffMin<<b.attempt, redisBackoffMax)
	}
	b.attempt++
	return d/2 + rand.N(d/2+1) // full delay spread over [d/2, d]
}

func (b *backoff) reset() { b.attempt = 0 }

// sleep waits d, or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// syncPing is the PING payload that marks the end of subscription batch n.
func syncPing(n uint64) string { return redisSyncPing + strconv.FormatUint(n, 10) }
