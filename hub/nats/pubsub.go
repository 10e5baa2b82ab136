package nats

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/internal/ratelog"
)

// Defaults for the zero values of Config.
const (
	DefaultSubjectPrefix = "luachan.topic." // of every topic's subject
	DefaultInboxLen      = 65536            // messages from other nodes waiting for delivery
	DefaultQueueLen      = 16384            // broadcasts waiting to be published
	DefaultQueueBytes    = 64 << 20         // their payload bytes (64 MiB)
)

// Timeouts and sizes of the NATS adapter.
const (
	natsDialTimeout    = 2 * time.Second        // one connection attempt
	natsIOTimeout      = 3 * time.Second        // one JetStream request, or a blocked socket write
	natsPingEvery      = time.Second            // keep-alive: a silent server is lost after natsMaxPingsOut of them
	natsMaxPingsOut    = 3                      // unanswered pings before the connection counts as lost
	natsReconnectWait  = 100 * time.Millisecond // between reconnect attempts (nats.go adds jitter)
	natsSubscribeWait  = time.Second            // how long a topic's first Subscribe waits for NATS to confirm
	natsReconnectBuf   = 8 << 20                // bytes published while disconnected, sent on reconnect
	natsMaxSubject     = 3000                   // longest subject: NATS refuses control lines over 4 KiB
	natsCloseDrainWait = time.Second            // how long Close lets queued publishes go out
	natsMaxKeptBuf     = 1 << 20                // the publisher keeps an encoding buffer up to this size
)

// ErrURL is returned for a URL that is not a usable nats:// or tls:// URL.
var ErrURL = errors.New("nats: bad NATS URL")

// Config configures a PubSub. Zero values take the defaults in parentheses.
type Config struct {
	// URL is nats://[user:password@]host:port, or tls:// for TLS; several servers of a
	// cluster may be given, comma-separated. Required.
	URL      string
	Logger   *slog.Logger // (slog.Default())
	InboxLen int          // (DefaultInboxLen) other nodes' messages waiting for delivery; beyond it NATS drops them
	// QueueLen and QueueBytes bound the broadcasts waiting to be published ((DefaultQueueLen),
	// (DefaultQueueBytes)); beyond them they are dropped for the other nodes.
	QueueLen   int
	QueueBytes int64
}

// PubSub is the hub.PubSub for several nodes on one NATS, and the owner of the
// connection that Store and Presence share.
//
// Each topic is one core NATS subject, luachan.topic.<escaped topic>. A node subscribes
// to it while the topic has local subscribers, so NATS sends a node only the topics it
// serves, once per node. Every message carries the id of the node that published it,
// and a node skips its own: the Hub has served local subscribers already.
//
// Publish only queues: one publisher goroutine hands the queue, in order, to the one
// connection, so broadcasts from one sender reach every node in the order they were made
// (NATS keeps a publisher's order per subject), and a slow NATS never blocks a
// broadcaster. What does not fit the queue, or what NATS refuses (too large, the
// reconnect buffer full, the connection closed), is lost for the other nodes only; it is
// counted and logged, never retried.
//
// When the connection is lost, nats.go reconnects and subscribes again to every subject
// the node has; the node logs both and keeps delivering locally meanwhile.
type PubSub struct {
	cfg     Config
	log     *slog.Logger
	nc      *natsgo.Conn
	js      jetstream.JetStream
	storeKV jetstream.KeyValue   // luachan_store
	presKV  jetstream.KeyValue   // luachan_presence
	node    uint64               // this node's id, in every message it publishes
	deliver func(*hub.Broadcast) // Hub.DeliverLocal, set by Start

	inbox      chan *natsgo.Msg    // every subscription's messages, in arrival order
	queue      chan *hub.Broadcast // broadcasts waiting for the publisher
	queueBytes atomic.Int64        // their payload bytes
	closing    atomic.Bool         // Close started: Publish drops
	kick       chan struct{}       // (cap 1) tells the subscriber that want changed

	mu        sync.Mutex          // guards the fields below
	want      map[string]struct{} // topics with local subscribers
	changed   map[string]struct{} // topics whose want changed since the subscriber last looked
	taken     uint64              // subscription batches the subscriber has taken
	confirmed uint64              // the last batch NATS has answered
	down      bool                // the connection is lost and not back yet
	stalled   bool                // a Subscribe timed out waiting for NATS; none waits again until NATS answers
	notify    chan struct{}       // closed (and replaced) when confirmed, down or stalled change
	started   bool

	count natsCounters

	dropLog, junkLog, errLog ratelog.Limiter

	ctx      context.Context // cancelled by Close: the subscriber's wait for NATS ends
	cancel   context.CancelFunc
	stop     chan struct{} // closed by Close: the publisher sends what is queued and returns, the deliverer returns
	wg       sync.WaitGroup
	stopOnce sync.Once
	closed   chan error // shutdown's result, made by the first Close
}

var _ hub.PubSub = (*PubSub)(nil)

// natsCounters are the adapter's totals since start.
type natsCounters struct {
	published  atomic.Uint64
	dropped    atomic.Uint64
	received   atomic.Uint64
	own        atomic.Uint64
	reconnects atomic.Uint64
}

// Stats is a snapshot of a PubSub's counters.
type Stats struct {
	Published  uint64 // broadcasts handed to NATS (or kept in the reconnect buffer while it is away)
	Dropped    uint64 // broadcasts the other nodes did not get (a slow consumer's losses are logged, not counted here)
	Received   uint64 // broadcasts from other nodes delivered here
	Own        uint64 // this node's broadcasts coming back, skipped
	Reconnects uint64 // times the connection came back after a loss
	Topics     int    // topics this node is subscribed to
	Connected  bool   // the connection is up
}

// CheckURL reports whether s is a usable nats:// or tls:// URL (or a comma-separated
// list of them). Its errors never contain the password.
func CheckURL(s string) error {
	_, err := natsServers(s)
	return err
}

// natsServers splits a -pubsub URL into the servers nats.go is given.
func natsServers(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		u, err := url.Parse(part)
		if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
			return nil, ErrURL
		}
		if u.Path != "" && u.Path != "/" {
			return nil, fmt.Errorf("%w (no path: NATS has no databases)", ErrURL)
		}
		out = append(out, part)
	}
	if len(out) == 0 {
		return nil, ErrURL
	}
	return out, nil
}

// Deliverer is what the adapter needs from the hub: delivery of the other nodes'
// broadcasts to this node's subscribers. *hub.Hub implements it.
type Deliverer interface {
	DeliverLocal(b *hub.Broadcast)
}

// Dial connects to the NATS at cfg.URL within ctx. It starts no goroutine of its own:
// the adapter delivers once Start has given it a Hub, and Close releases it.
func Dial(ctx context.Context, cfg Config) (*PubSub, error) {
	servers, err := natsServers(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.InboxLen <= 0 {
		cfg.InboxLen = DefaultInboxLen
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	var id [8]byte
	_, _ = crand.Read(id[:])
	r := &PubSub{
		cfg:     cfg,
		node:    binary.BigEndian.Uint64(id[:]) | 1, // never 0
		inbox:   make(chan *natsgo.Msg, cfg.InboxLen),
		queue:   make(chan *hub.Broadcast, cfg.QueueLen),
		kick:    make(chan struct{}, 1),
		want:    make(map[string]struct{}),
		changed: make(map[string]struct{}),
		notify:  make(chan struct{}),
		stop:    make(chan struct{}),
	}
	host := "?"
	if u, err := url.Parse(servers[0]); err == nil {
		host = u.Host
	}
	r.log = cfg.Logger.With("pubsub", "nats", "nats", host)
	r.ctx, r.cancel = context.WithCancel(context.Background())

	opts := []natsgo.Option{
		natsgo.Name("luachan"),
		natsgo.Timeout(natsDialTimeout),
		natsgo.PingInterval(natsPingEvery),
		natsgo.MaxPingsOutstanding(natsMaxPingsOut),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(natsReconnectWait),
		natsgo.ReconnectBufSize(natsReconnectBuf),
		natsgo.FlusherTimeout(natsIOTimeout),
		natsgo.DisconnectErrHandler(r.onDisconnect),
		natsgo.ReconnectHandler(r.onReconnect),
		natsgo.ErrorHandler(r.onError),
	}
	type result struct {
		nc  *natsgo.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := natsgo.Connect(strings.Join(servers, ","), opts...)
		done <- result{nc, err}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			return nil, fmt.Errorf("nats: cannot reach NATS at %s: %w", host, res.err)
		}
		r.nc = res.nc
		if err := r.openBuckets(ctx); err != nil {
			r.nc.Close()
			return nil, err
		}
	case <-ctx.Done():
		go func() { // the attempt ends within natsDialTimeout; let go of what it made
			if res := <-done; res.nc != nil {
				res.nc.Close()
			}
		}()
		return nil, fmt.Errorf("nats: cannot reach NATS at %s: %w", host, ctx.Err())
	}
	return r, nil
}

// openBuckets makes sure luachan_store and luachan_presence exist, within ctx.
func (r *PubSub) openBuckets(ctx context.Context) error {
	js, err := jetstream.New(r.nc)
	if err != nil {
		return fmt.Errorf("nats: JetStream: %w", err)
	}
	r.js = js
	ctx, cancel := context.WithTimeout(ctx, natsIOTimeout)
	defer cancel()
	if r.storeKV, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: StoreBucket, History: 1}); err != nil {
		return fmt.Errorf("nats: cannot open the %s bucket (is JetStream on? start nats-server with -js): %w", StoreBucket, err)
	}
	if r.presKV, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: PresenceBucket, History: 1}); err != nil {
		return fmt.Errorf("nats: cannot open the %s bucket (is JetStream on? start nats-server with -js): %w", PresenceBucket, err)
	}
	return nil
}

// Start starts the publisher and the deliverer; broadcasts from other nodes go to
// h.DeliverLocal. Start is
// called once, before Close.
func (r *PubSub) Start(_ context.Context, h Deliverer) {
	r.mu.Lock()
	started := r.started
	r.started = true
	r.mu.Unlock()
	if started {
		return
	}
	r.deliver = h.DeliverLocal // before the goroutine that reads it starts
	r.wg.Add(3)
	go r.publishLoop()
	go r.subscribeLoop()
	go r.deliverLoop()
	r.log.Info("sharing broadcasts, presence and luachan.store through NATS", "node", fmt.Sprintf("%016x", r.node))
}

// Close stops the publisher (which hands what is queued to the connection first) and the
// deliverer and waits for them, lets the connection send what it holds (for up to 1 s,
// within ctx), and closes it: the Store and the Presence stop working too, so Close them
// first. When ctx ends first, Close returns ctx's error at once; the closing goes on
// without it and ends within a connection attempt's timeout (nats.go holds the
// connection's lock while it tries to reconnect, so nothing on it can be cut short).
func (r *PubSub) Close(ctx context.Context) error {
	r.stopOnce.Do(func() {
		r.closing.Store(true)
		close(r.stop)
		r.cancel()
		r.closed = make(chan error, 1)
		go func() { r.closed <- r.shutdown() }()
	})
	select {
	case err := <-r.closed:
		r.closed <- err // for another Close
		return err
	case <-ctx.Done():
		return fmt.Errorf("nats: still letting go of NATS: %w", ctx.Err())
	}
}

// shutdown waits for the publisher and the deliverer (the publisher returns once the
// queue is handed over), flushes for up to natsCloseDrainWait and closes the connection.
func (r *PubSub) shutdown() error {
	r.wg.Wait()
	var err error
	if r.nc.IsConnected() {
		if ferr := r.nc.FlushTimeout(natsCloseDrainWait); ferr != nil {
			err = fmt.Errorf("nats: queued broadcasts not flushed: %w", ferr)
		}
	} else if n, berr := r.nc.Buffered(); berr == nil && n > 0 {
		r.log.Warn("broadcasts kept for NATS while it was away are lost: shutting down", "bytes", n)
	}
	r.nc.Close()
	return err
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
	topics, up := len(r.want), !r.down
	r.mu.Unlock()
	return Stats{
		Published:  r.count.published.Load(),
		Dropped:    r.count.dropped.Load(),
		Received:   r.count.received.Load(),
		Own:        r.count.own.Load(),
		Reconnects: r.count.reconnects.Load(),
		Topics:     topics,
		Connected:  up,
	}
}

// errDown is a call made while the connection is lost: it fails at once rather than wait
// on nats.go, which holds the connection's lock while it tries to reconnect.
var errDown = errors.New("nats: NATS is unreachable (reconnecting); try again once it is back")

// isDown reports whether the connection is lost and not back yet.
func (r *PubSub) isDown() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.down
}

// onDisconnect is nats.go's word that the connection is lost.
func (r *PubSub) onDisconnect(_ *natsgo.Conn, err error) {
	if r.closing.Load() {
		return
	}
	r.mu.Lock()
	r.down = true
	r.wakeWaitersLocked()
	r.mu.Unlock()
	r.log.Warn("lost NATS: local delivery carries on; reconnecting", "reason", err)
}

// onReconnect is nats.go's word that the connection is back, every subscription sent
// again. Sent is not taken: nats.go calls it before its first flush, and a broadcast
// another node publishes in between is not delivered here. So it waits for a round trip,
// after which the server has every subscription, before it says this node is back; up to
// natsSubscribeWait, after which it says so anyway (the keep-alive ends a dead connection).
func (r *PubSub) onReconnect(nc *natsgo.Conn) {
	r.count.reconnects.Add(1)
	r.mu.Lock()
	r.down, r.stalled = false, false
	r.wakeWaitersLocked()
	topics := len(r.want)
	r.mu.Unlock()
	if err := nc.FlushTimeout(natsSubscribeWait); err != nil {
		if r.closing.Load() {
			return
		}
		r.log.Warn("NATS is back, but did not confirm the subscriptions: broadcasts from other nodes may miss this one for a while",
			"topics", topics, "reason", err)
		return
	}
	r.log.Info("NATS is back: resubscribed", "topics", topics)
}

// onError is nats.go's report of an asynchronous error: a slow consumer (the inbox full,
// messages from other nodes dropped) or a server error.
func (r *PubSub) onError(_ *natsgo.Conn, sub *natsgo.Subscription, err error) {
	if errors.Is(err, natsgo.ErrSlowConsumer) && sub != nil {
		n, _ := sub.Dropped()
		r.log.Warn("broadcasts from other nodes dropped: this node does not keep up", "subject", sub.Subject, "dropped", n)
		return
	}
	if ok, since := r.errLog.Allow(1); ok {
		r.log.Warn("NATS error", "reason", err, "errors", since)
	}
}
