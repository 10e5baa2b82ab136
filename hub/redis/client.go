package redis

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The -pubsub URL schemes and the client each one builds:
//
//	redis://[user:password@]host:port/db        one Redis (rediss:// for TLS)
//	redis+cluster://[user:password@]host:port,host:port,...
//	                                            a Redis Cluster, found from any of the
//	                                            seed nodes; database 0 only, so no /db
//	redis+sentinel://[user:password@]master@host:port,host:port,.../db[?sentinel_password=p]
//	                                            the master named master, as the Sentinels
//	                                            at host:port,... know it; user:password is
//	                                            the master's (and replicas'),
//	                                            sentinel_password the Sentinels' own
//
// A password with '@', ':' or '/' in it is percent-encoded, as in any URL. Every scheme
// gets the same timeouts and no retries (a retried PUBLISH or INCRBY could happen twice).

// Schemes of a Redis Cluster and of a Sentinel-managed Redis.
const (
	schemeCluster  = "redis+cluster"
	schemeSentinel = "redis+sentinel"
)

// target is a parsed -pubsub URL: what to connect to and how to name it in logs.
type target struct {
	where    string // host:port, or the seed addresses, for logs and errors; never a password
	single   *goredis.Options
	cluster  *goredis.ClusterOptions
	failover *goredis.FailoverOptions
}

// parseTarget parses any of the three schemes. Its errors never contain the password.
func parseTarget(s string) (*target, error) {
	scheme, _, _ := strings.Cut(s, "://")
	switch scheme {
	case schemeCluster, schemeSentinel:
		return parseMulti(s, scheme)
	}
	opts, err := redisOptions(s)
	if err != nil {
		return nil, err
	}
	return &target{where: opts.Addr, single: opts}, nil
}

// newClient builds the client: a *goredis.Client for redis:// and redis+sentinel:// (a
// failover client, which asks the Sentinels for the master on every new connection and
// drops its connections when they announce a new one), a *goredis.ClusterClient for
// redis+cluster://.
func (t *target) newClient() goredis.UniversalClient {
	switch {
	case t.cluster != nil:
		return goredis.NewClusterClient(t.cluster)
	case t.failover != nil:
		return goredis.NewFailoverClient(t.failover)
	}
	return goredis.NewClient(t.single)
}

// parseMulti parses a redis+cluster:// or redis+sentinel:// URL.
func parseMulti(s, scheme string) (*target, error) {
	rest := strings.TrimPrefix(s, scheme+"://")
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	var userinfo, master string
	parts := strings.Split(authority, "@")
	switch {
	case scheme == schemeCluster && len(parts) == 2:
		userinfo = parts[0]
	case scheme == schemeCluster && len(parts) == 1:
	case scheme == schemeSentinel && len(parts) == 3:
		userinfo, master = parts[0], parts[1]
	case scheme == schemeSentinel && len(parts) == 2:
		master = parts[0]
	case scheme == schemeSentinel:
		return nil, urlError("want " + schemeSentinel + "://[user:password@]mastername@host:port,...")
	default:
		return nil, urlError("a password with @ in it is percent-encoded (%40)")
	}
	hosts := parts[len(parts)-1]
	if scheme == schemeSentinel && master == "" {
		return nil, urlError("no master name: want " + schemeSentinel + "://[user:password@]mastername@host:port,...")
	}
	var addrs []string
	for _, a := range strings.Split(hosts, ",") {
		if h, p, err := net.SplitHostPort(a); err != nil || h == "" || p == "" {
			return nil, urlError("want host:port, comma separated, after the @")
		}
		addrs = append(addrs, a)
	}
	var user, password string
	if userinfo != "" {
		u, err := url.Parse("redis://" + userinfo + "@h")
		if err != nil || u.User == nil {
			return nil, urlError("bad user:password")
		}
		user = u.User.Username()
		password, _ = u.User.Password()
	}
	rest2, err := url.Parse("redis://h" + tail)
	if err != nil || rest2.Fragment != "" {
		return nil, urlError("bad path or query")
	}
	db := 0
	if p := strings.TrimPrefix(rest2.Path, "/"); p != "" {
		if scheme == schemeCluster {
			return nil, urlError("a Redis Cluster has database 0 only: no /db")
		}
		if db, err = strconv.Atoi(p); err != nil || db < 0 {
			return nil, urlError("invalid database number")
		}
	}
	q := rest2.Query()
	sentinelPassword := q.Get("sentinel_password")
	q.Del("sentinel_password")
	if scheme == schemeCluster && sentinelPassword != "" {
		return nil, urlError("sentinel_password is for " + schemeSentinel + "://")
	}
	for k := range q {
		return nil, urlError("unknown option " + strconv.Quote(k))
	}

	t := &target{where: strings.Join(addrs, ",")}
	if scheme == schemeCluster {
		t.cluster = &goredis.ClusterOptions{
			Addrs: addrs, Username: user, Password: password,
			DialTimeout: redisDialTimeout, ReadTimeout: redisIOTimeout, WriteTimeout: redisIOTimeout,
			MaxRetries: -1, DialerRetries: 1, Protocol: 2,
			DisableIdentity: true, ContextTimeoutEnabled: true,
		}
		return t, nil
	}
	t.where = master + "@" + t.where
	t.failover = &goredis.FailoverOptions{
		MasterName: master, SentinelAddrs: addrs, SentinelPassword: sentinelPassword,
		Username: user, Password: password, DB: db,
		DialTimeout: redisDialTimeout, ReadTimeout: redisIOTimeout, WriteTimeout: redisIOTimeout,
		MaxRetries: -1, DialerRetries: 1, Protocol: 2,
		DisableIdentity: true, ContextTimeoutEnabled: true,
	}
	return t, nil
}

func urlError(why string) error { return &urlErr{why} }

// urlErr is ErrURL with the reason.
type urlErr struct{ why string }

func (e *urlErr) Error() string { return ErrURL.Error() + " (" + e.why + ")" }
func (e *urlErr) Unwrap() error { return ErrURL }

// subConn is the subscriber connection that session, readLoop and syncLoop drive: a
// *goredis.PubSub (SUBSCRIBE, on one Redis or a Sentinel's master) or a shardedSub
// (SSUBSCRIBE, on a Redis Cluster).
type subConn interface {
	Subscribe(ctx context.Context, channels ...string) error
	Unsubscribe(ctx context.Context, channels ...string) error
	Ping(ctx context.Context, payload ...string) error
	ReceiveTimeout(ctx context.Context, timeout time.Duration) (any, error)
	Close() error
}

// newSubConn opens the subscriber connection(s) for one session.
func (r *PubSub) newSubConn() subConn {
	if cc, ok := r.client.(*goredis.ClusterClient); ok {
		return newShardedSub(r.ctx, cc)
	}
	return r.client.Subscribe(r.ctx)
}

// publish adds topic's PUBLISH (SPUBLISH on a Redis Cluster, which sends it to the
// shard that owns the channel's slot only) to pipe.
func (r *PubSub) publish(ctx context.Context, pipe goredis.Pipeliner, channel string, msg []byte) {
	if r.sharded {
		pipe.SPublish(ctx, channel, msg)
		return
	}
	pipe.Publish(ctx, channel, msg)
}

// shardedSub is the subscriber connection on a Redis Cluster: one SSUBSCRIBE connection
// per master that owns the slot of a wanted channel, opened as the first such channel
// comes, with their messages merged. A sync PING is answered once every connection has
// answered it. Each connection's reader fails the whole on any error, or on silence
// longer than redisSilenceLimit; the session then starts over, asking the cluster again
// which master owns which slot. Subscribe, Unsubscribe and Ping are called by the sync
// goroutine, ReceiveTimeout by the reader; Close by either.
type shardedSub struct {
	cc     *goredis.ClusterClient
	ctx    context.Context // cancelled by Close: the shard readers return
	cancel context.CancelFunc
	in     chan shardEvent // what the shard readers received
	wg     sync.WaitGroup  // the shard readers
	once   sync.Once

	mu      sync.Mutex                 // guards the fields below
	shards  map[string]*goredis.PubSub // by the master's address
	on      map[string]*goredis.PubSub // channel -> the connection subscribed to it
	pending map[string]int             // sync PING payload -> connections yet to answer it
	unsubs  map[string]int             // channel -> our SUNSUBSCRIBEs not yet answered
}

// shardEvent is one message or error from a shard reader.
type shardEvent struct {
	msg any
	err error
}

// newShardedSub starts a session's connections. It has the cluster reload its slot map
// (in the background), so that a session after a slot moved finds the new owner.
func newShardedSub(ctx context.Context, cc *goredis.ClusterClient) *shardedSub {
	cc.ReloadState(ctx)
	s := &shardedSub{
		cc:      cc,
		in:      make(chan shardEvent, 64),
		shards:  make(map[string]*goredis.PubSub),
		on:      make(map[string]*goredis.PubSub),
		pending: make(map[string]int),
		unsubs:  make(map[string]int),
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	return s
}

// Subscribe sends SSUBSCRIBE for each channel to the master that owns its slot.
func (s *shardedSub) Subscribe(ctx context.Context, channels ...string) error {
	for _, ch := range channels {
		node, err := s.cc.MasterForKey(ctx, ch)
		if err != nil {
			return err
		}
		s.mu.Lock()
		ps := s.shards[node.Options().Addr]
		if ps == nil {
			ps = node.SSubscribe(s.ctx)
			s.shards[node.Options().Addr] = ps
			s.wg.Add(1)
			go s.read(ps)
		}
		s.on[ch] = ps
		s.mu.Unlock()
		if err := ps.SSubscribe(ctx, ch); err != nil {
			return err
		}
	}
	return nil
}

// Unsubscribe sends SUNSUBSCRIBE for each channel on the connection subscribed to it.
func (s *shardedSub) Unsubscribe(ctx context.Context, channels ...string) error {
	for _, ch := range channels {
		s.mu.Lock()
		ps := s.on[ch]
		delete(s.on, ch)
		if ps != nil {
			s.unsubs[ch]++
		}
		s.mu.Unlock()
		if ps == nil {
			continue
		}
		if err := ps.SUnsubscribe(ctx, ch); err != nil {
			return err
		}
	}
	return nil
}

// Ping pings every connection. A sync PING (redisSyncPing) comes out of ReceiveTimeout
// once all of them have answered it, or at once when there is none.
func (s *shardedSub) Ping(ctx context.Context, payload ...string) error {
	s.mu.Lock()
	all := make([]*goredis.PubSub, 0, len(s.shards))
	for _, ps := range s.shards {
		all = append(all, ps)
	}
	sync := len(payload) == 1 && strings.HasPrefix(payload[0], redisSyncPing)
	if sync && len(all) > 0 {
		s.pending[payload[0]] = len(all)
	}
	s.mu.Unlock()
	if sync && len(all) == 0 {
		select {
		case s.in <- shardEvent{msg: &goredis.Pong{Payload: payload[0]}}:
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
		return nil
	}
	for _, ps := range all {
		if err := ps.Ping(ctx, payload...); err != nil {
			return err
		}
	}
	return nil
}

// ReceiveTimeout returns the next message of any connection. The shard readers watch for
// silence, so timeout is not used.
func (s *shardedSub) ReceiveTimeout(ctx context.Context, _ time.Duration) (any, error) {
	for {
		var ev shardEvent
		select {
		case ev = <-s.in:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.ctx.Done():
			return nil, s.ctx.Err()
		}
		if ev.err != nil {
			return nil, ev.err
		}
		if p, ok := ev.msg.(*goredis.Pong); ok && strings.HasPrefix(p.Payload, redisSyncPing) {
			s.mu.Lock()
			n, waiting := s.pending[p.Payload]
			if waiting {
				n--
				if n > 0 {
					s.pending[p.Payload] = n
				} else {
					delete(s.pending, p.Payload)
				}
			}
			s.mu.Unlock()
			if waiting && n > 0 {
				continue // other connections have yet to answer
			}
		}
		return ev.msg, nil
	}
}

// errSlotMoved is a sunsubscribe we did not ask for: the master gave up the channel's slot.
var errSlotMoved = errors.New("redis: a subscribed channel's slot moved to another master")

// read passes what ps receives to ReceiveTimeout until ps fails or Close. A sunsubscribe
// that answers none of our SUNSUBSCRIBEs is the master dropping a channel whose slot it
// no longer owns (Redis does that when a slot moves): it fails the connections, and the
// next session subscribes on the slot's new owner.
func (s *shardedSub) read(ps *goredis.PubSub) {
	defer s.wg.Done()
	for {
		msg, err := ps.ReceiveTimeout(s.ctx, redisSilenceLimit)
		if sub, ok := msg.(*goredis.Subscription); ok && sub.Kind == "sunsubscribe" {
			s.mu.Lock()
			ours := s.unsubs[sub.Channel] > 0
			if ours {
				if s.unsubs[sub.Channel]--; s.unsubs[sub.Channel] == 0 {
					delete(s.unsubs, sub.Channel)
				}
			}
			s.mu.Unlock()
			if !ours {
				msg, err = nil, errSlotMoved
			}
		}
		select {
		case s.in <- shardEvent{msg: msg, err: err}:
		case <-s.ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// Close closes every connection and waits for their readers.
func (s *shardedSub) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.mu.Lock()
		for _, ps := range s.shards {
			_ = ps.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return nil
}

// presencePrefix is the prefix of Presence's keys. On a Redis Cluster they share one hash
// tag, "{presence}", so that its MULTI and Lua scripts (which take a topic's hash, a
// node's sets and its heartbeat together) find all their keys in one slot: presence
// lives on one shard. On one Redis the keys stay as they were.
func (r *PubSub) presencePrefix() string {
	if r.sharded {
		return r.cfg.Prefix + "{presence}:"
	}
	return r.cfg.Prefix
}
