package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/internal/ratelog"
	"github.com/luachan/luachan/presence"
	goredis "github.com/redis/go-redis/v9"
)

// DefaultPresenceTTL is how long a node's presence heartbeat lives in Redis. A node
// refreshes it every TTL/3 and looks for dead nodes every TTL/4, so the entries of a node
// that dies are gone (and their leaves broadcast) within TTL + TTL/4: 25 s, inside the
// 30 s of SPEC section 6.
const DefaultPresenceTTL = 20 * time.Second

// presenceCallTimeout bounds the Redis round trip of Put, Del and List, which run inside a
// script callback and its CPU budget: past it they fail, presence carries on locally
// and the heartbeat's resync repairs Redis.
const presenceCallTimeout = 100 * time.Millisecond

// Presence keeps this node's presence entries in Redis, so that presence_state and
// luachan.presence.list span the nodes, and removes the entries of nodes that died.
//
// Keys (Prefix is the adapter's, "luachan:" by default):
//
//	Prefix+"presence:t:"+topic  hash, field node+"|"+ref -> {"key":..., "meta":...}
//	Prefix+"presence:nodes"     set of the nodes that have (or had) entries
//	Prefix+"presence:n:"+node   set of the topics a node has put entries on
//	Prefix+"node:"+node         the node's heartbeat, SET EX TTL, refreshed every TTL/3
//	Prefix+"presence:claim:"+node  SET NX EX by the survivor that cleans a dead node up
//
// A janitor goroutine (every TTL/4) takes each node of presence:nodes whose heartbeat is
// gone, claims it with SET NX (so that one survivor does the work), removes its entries
// topic by topic with a Lua script that takes them only while the heartbeat is still gone
// (so each entry is removed, and its leave broadcast, once, and never a live node's),
// broadcasts one presence_diff of the leaves per topic through the Hub (which reaches
// every node) and forgets the node.
//
// A node whose writes failed, or that lost Redis for longer than TTL and was taken for
// dead, resyncs at its next heartbeat: it writes what Redis lacks of its entries and
// broadcasts them as joins, and removes what it no longer has and broadcasts the leaves.
type Presence struct {
	client    goredis.UniversalClient
	log       *slog.Logger
	prefix    string
	node      string
	ttl       time.Duration
	broadcast func(*hub.Broadcast) error

	// mu guards mine, the entries this node has put, to write them again after its
	// heartbeat lapsed.
	mu   sync.Mutex
	mine map[string]map[string]presence.Entry // topic -> ref -> entry

	stale   atomic.Bool // a write failed: Redis may not hold exactly mine
	beatLog ratelog.Limiter

	ctx    context.Context // cancelled by Close: the goroutine and calls in flight return
	cancel context.CancelFunc
	wg     sync.WaitGroup // the heartbeat and janitor goroutine
}

// Presence returns the presence replica on the adapter's Redis client, with this node's
// id. ttl <= 0 takes DefaultPresenceTTL. broadcast (Hub.Broadcast) carries the leaves of
// dead nodes to every node. It does no I/O: Start writes the heartbeat and starts the
// heartbeat and janitor goroutine; Close, before the PubSub's, stops it.
func (r *PubSub) Presence(ttl time.Duration, broadcast func(*hub.Broadcast) error) *Presence {
	if ttl <= 0 {
		ttl = DefaultPresenceTTL
	}
	p := &Presence{
		client:    r.client,
		log:       r.log.With("presence", "redis"),
		prefix:    r.presencePrefix(),
		node:      fmt.Sprintf("%016x", r.node),
		ttl:       ttl,
		broadcast: broadcast,
		mine:      make(map[string]map[string]presence.Entry),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p
}

func (p *Presence) topicKey(topic string) string  { return p.prefix + "presence:t:" + topic }
func (p *Presence) nodesKey() string              { return p.prefix + "presence:nodes" }
func (p *Presence) nodeTopicsKey(n string) string { return p.prefix + "presence:n:" + n }
func (p *Presence) heartbeatKey(n string) string  { return p.prefix + "node:" + n }
func (p *Presence) claimKey(n string) string      { return p.prefix + "presence:claim:" + n }

// opCtx bounds one Redis round trip of the background goroutine.
func (p *Presence) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(p.ctx, redisIOTimeout)
}

// callCtx bounds one Redis round trip of Put, Del or List.
func (p *Presence) callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(p.ctx, presenceCallTimeout)
}

// Node is this node's id, as in its Redis keys.
func (p *Presence) Node() string { return p.node }

// Start writes the heartbeat once, within ctx (so the node's entries are never taken for
// a dead node's), and starts the heartbeat and janitor goroutine. Start is called once,
// before Close.
func (p *Presence) Start(ctx context.Context) {
	if _, err := p.beat(ctx); err != nil {
		p.stale.Store(true)
		p.log.Warn("presence heartbeat not written; retrying", "err", err)
	}
	p.wg.Add(1)
	go p.loop()
}

// Close stops the goroutine and waits for it, then removes the heartbeat, so that
// survivors clean up at once whatever entries are left. When ctx ends first it returns
// ctx's error; the heartbeat then lapses by itself within the TTL.
func (p *Presence) Close(ctx context.Context) error {
	p.cancel()
	if err := waitFor(ctx, p.wg.Wait); err != nil {
		return fmt.Errorf("redis: presence heartbeat still running: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, redisIOTimeout)
	defer cancel()
	return p.client.Del(ctx, p.heartbeatKey(p.node)).Err()
}

// beat refreshes the heartbeat, within ctx and one command's timeout, and reports
// whether it had lapsed (was missing).
func (p *Presence) beat(ctx context.Context) (lapsed bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, redisIOTimeout)
	defer cancel()
	err = p.client.SetArgs(ctx, p.heartbeatKey(p.node), "1", goredis.SetArgs{TTL: p.ttl, Get: true}).Err()
	if err == goredis.Nil {
		return true, nil
	}
	return false, err
}

func (p *Presence) loop() {
	defer p.wg.Done()
	beatEvery, sweepEvery := p.ttl/3, p.ttl/4
	beatT, sweepT := time.NewTicker(beatEvery), time.NewTicker(sweepEvery)
	defer beatT.Stop()
	defer sweepT.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-beatT.C:
			lapsed, err := p.beat(p.ctx)
			if err != nil {
				p.stale.Store(true)
				if ok, n := p.beatLog.Allow(1); ok {
					p.log.Warn("presence heartbeat not written", "err", err, "failures", n)
				}
				continue
			}
			if stale := p.stale.Swap(false); lapsed || stale {
				if lapsed {
					p.log.Warn("presence heartbeat had lapsed: this node's entries may have been removed; writing them again")
				}
				if err := p.resync(); err != nil {
					p.stale.Store(true)
					p.log.Warn("presence entries not written again; retrying", "err", err)
				}
			}
		case <-sweepT.C:
			p.sweep()
		}
	}
}

// resync makes Redis hold exactly this node's entries, after a write failed or the
// heartbeat lapsed (the other nodes may have removed them): it writes the missing ones
// and broadcasts them as joins, and removes those this node no longer has and broadcasts
// their leaves, since the other nodes' clients may have missed either.
func (p *Presence) resync() error {
	p.mu.Lock()
	topics := make(map[string]struct{}, len(p.mine))
	for t := range p.mine {
		topics[t] = struct{}{}
	}
	p.mu.Unlock()
	ctx, cancel := p.opCtx()
	stored, err := p.client.SMembers(ctx, p.nodeTopicsKey(p.node)).Result()
	cancel()
	if err != nil {
		return err
	}
	for _, t := range stored {
		topics[t] = struct{}{}
	}
	names := make([]string, 0, len(topics))
	for t := range topics {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, topic := range names {
		if err := p.resyncTopic(topic); err != nil {
			return err
		}
	}
	return nil
}

// has reports whether this node has ref on topic.
func (p *Presence) has(topic, ref string) (presence.Entry, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.mine[topic][ref]
	return e, ok
}

func (p *Presence) resyncTopic(topic string) error {
	ctx, cancel := p.opCtx()
	all, err := p.client.HGetAll(ctx, p.topicKey(topic)).Result()
	cancel()
	if err != nil {
		return err
	}
	joins, leaves := make(presence.State), make(presence.State)
	// Entries in Redis this node no longer has. A Put adds to mine before it writes, so
	// one not in mine now is gone for good.
	var gone []string
	for f := range all {
		if ref, ok := strings.CutPrefix(f, p.node+"|"); ok {
			if _, ok := p.has(topic, ref); !ok {
				gone = append(gone, f)
			}
		}
	}
	sort.Strings(gone)
	for _, f := range gone {
		ctx, cancel := p.opCtx()
		n, err := p.client.HDel(ctx, p.topicKey(topic), f).Result()
		cancel()
		if err != nil {
			return err
		}
		var e presence.Entry
		if n > 0 && json.Unmarshal([]byte(all[f]), &e) == nil && len(e.Meta) > 0 {
			leaves[e.Key] = append(leaves[e.Key], e.Meta)
		}
	}
	// Entries this node has that Redis lacks.
	p.mu.Lock()
	var refs []string
	for ref := range p.mine[topic] {
		if _, ok := all[p.node+"|"+ref]; !ok {
			refs = append(refs, ref)
		}
	}
	p.mu.Unlock()
	sort.Strings(refs)
	for _, ref := range refs {
		e, ok := p.has(topic, ref)
		if !ok {
			continue
		}
		ctx, cancel := p.opCtx()
		added, err := p.write(ctx, topic, ref, e, true)
		cancel()
		if err != nil {
			return err
		}
		if _, still := p.has(topic, ref); !still {
			// Del ran meanwhile, perhaps before the write: remove it again.
			ctx, cancel := p.opCtx()
			err := p.client.HDel(ctx, p.topicKey(topic), p.node+"|"+ref).Err()
			cancel()
			if err != nil {
				return err
			}
			continue
		}
		if added {
			joins[e.Key] = append(joins[e.Key], e.Meta)
		}
	}
	if len(joins) > 0 || len(leaves) > 0 {
		p.send(topic, presence.EncodeDiff(joins, leaves))
	}
	return nil
}

// Put stores this node's meta (JSON with phx_ref) under key for topic.
func (p *Presence) Put(topic, ref, key string, meta []byte) error {
	e := presence.Entry{Key: key, Meta: append(json.RawMessage(nil), meta...)}
	p.mu.Lock()
	if p.mine[topic] == nil {
		p.mine[topic] = make(map[string]presence.Entry)
	}
	p.mine[topic][ref] = e
	p.mu.Unlock()
	return p.put(topic, ref, e)
}

func (p *Presence) put(topic, ref string, e presence.Entry) error {
	ctx, cancel := p.callCtx()
	defer cancel()
	_, err := p.write(ctx, topic, ref, e, false)
	if err != nil {
		p.stale.Store(true) // written again once Redis answers
	}
	return err
}

// write stores the entry (nx: unless Redis has it) and reports whether it did.
func (p *Presence) write(ctx context.Context, topic, ref string, e presence.Entry, nx bool) (bool, error) {
	v, err := json.Marshal(e)
	if err != nil {
		return false, err
	}
	pipe := p.client.TxPipeline()
	pipe.SAdd(ctx, p.nodesKey(), p.node)
	pipe.SAdd(ctx, p.nodeTopicsKey(p.node), topic)
	var set *goredis.BoolCmd
	if nx {
		set = pipe.HSetNX(ctx, p.topicKey(topic), p.node+"|"+ref, v)
	} else {
		pipe.HSet(ctx, p.topicKey(topic), p.node+"|"+ref, v)
	}
	if _, err = pipe.Exec(ctx); err != nil {
		return false, err
	}
	return set != nil && set.Val(), nil
}

// delLast removes a node's field from a topic hash and, when the node has no other
// field there, the topic from the node's set. KEYS: topic hash, node's topic set;
// ARGV: field, node+"|", topic.
var delLast = goredis.NewScript(`
redis.call('HDEL', KEYS[1], ARGV[1])
local all = redis.call('HKEYS', KEYS[1])
for _, f in ipairs(all) do
  if string.sub(f, 1, #ARGV[2]) == ARGV[2] then return 0 end
end
redis.call('SREM', KEYS[2], ARGV[3])
return 1
`)

// Del removes this node's meta ref from topic.
func (p *Presence) Del(topic, ref string) error {
	last := false
	p.mu.Lock()
	if es := p.mine[topic]; es != nil {
		delete(es, ref)
		if len(es) == 0 {
			delete(p.mine, topic)
			last = true
		}
	}
	p.mu.Unlock()
	ctx, cancel := p.callCtx()
	defer cancel()
	field := p.node + "|" + ref
	var err error
	if last {
		// Atomic with Put's MULTI: a Put on topic either precedes it (its field keeps
		// the topic in the set) or follows it (and adds the topic again).
		err = delLast.Run(ctx, p.client, []string{p.topicKey(topic), p.nodeTopicsKey(p.node)}, field, p.node+"|", topic).Err()
	} else {
		err = p.client.HDel(ctx, p.topicKey(topic), field).Err()
	}
	if err != nil {
		p.stale.Store(true) // removed once Redis answers
	}
	return err
}

// List returns the other nodes' metas on topic, key -> metas, in a stable order.
func (p *Presence) List(topic string) (presence.State, error) {
	ctx, cancel := p.callCtx()
	defer cancel()
	all, err := p.client.HGetAll(ctx, p.topicKey(topic)).Result()
	if err != nil {
		return nil, err
	}
	fields := make([]string, 0, len(all))
	for f := range all {
		if !strings.HasPrefix(f, p.node+"|") {
			fields = append(fields, f)
		}
	}
	sort.Strings(fields)
	out := make(presence.State)
	for _, f := range fields {
		var e presence.Entry
		if json.Unmarshal([]byte(all[f]), &e) != nil || len(e.Meta) == 0 {
			continue
		}
		out[e.Key] = append(out[e.Key], e.Meta)
	}
	return out, nil
}

// sweep cleans up after every node whose heartbeat is gone.
func (p *Presence) sweep() {
	ctx, cancel := p.opCtx()
	nodes, err := p.client.SMembers(ctx, p.nodesKey()).Result()
	cancel()
	if err != nil {
		if p.ctx.Err() == nil {
			p.log.Debug("presence sweep failed", "err", err)
		}
		return
	}
	for _, n := range nodes {
		if n == p.node || p.ctx.Err() != nil {
			continue
		}
		if err := p.reap(n); err != nil && p.ctx.Err() == nil {
			p.log.Warn("presence cleanup of a dead node failed", "node", n, "err", err)
		}
	}
}

// reapTopic atomically removes node n's fields from a topic hash and returns them (field,
// value, ...), unless n's heartbeat exists (then nil): a node whose heartbeat came back
// keeps its entries, and each entry is removed, and its leave broadcast, once.
// KEYS: heartbeat, topic hash; ARGV: n+"|".
var reapTopic = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local all = redis.call('HGETALL', KEYS[2])
local out = {}
for i = 1, #all, 2 do
  if string.sub(all[i], 1, #ARGV[1]) == ARGV[1] then
    redis.call('HDEL', KEYS[2], all[i])
    out[#out+1] = all[i]
    out[#out+1] = all[i+1]
  end
end
return out
`)

// forgetNode forgets node n (ARGV[1]) once its entries are gone, unless its heartbeat
// came back. KEYS: heartbeat, the node's topic set, the set of nodes.
var forgetNode = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
`)

// reap removes node n's entries, broadcasting their leaves, if n's heartbeat is gone and
// this node wins the claim.
func (p *Presence) reap(n string) error {
	ctx, cancel := context.WithTimeout(p.ctx, 4*redisIOTimeout)
	defer cancel()
	hb := p.heartbeatKey(n)
	alive, err := p.client.Exists(ctx, hb).Result()
	if err != nil || alive > 0 {
		return err
	}
	// The claim only spares the others the work: reapTopic removes each entry once.
	won, err := p.client.SetNX(ctx, p.claimKey(n), p.node, p.ttl).Result()
	if err != nil || !won {
		return err
	}
	defer p.client.Del(context.WithoutCancel(ctx), p.claimKey(n))
	topics, err := p.client.SMembers(ctx, p.nodeTopicsKey(n)).Result()
	if err != nil {
		return err
	}
	sort.Strings(topics)
	removed := 0
	for _, topic := range topics {
		res, err := reapTopic.Run(ctx, p.client, []string{hb, p.topicKey(topic)}, n+"|").Result()
		if err == goredis.Nil {
			return nil // the node is back
		}
		if err != nil {
			return err
		}
		pairs, _ := res.([]any)
		type field struct{ name, value string }
		var fields []field
		for i := 0; i+1 < len(pairs); i += 2 {
			f, _ := pairs[i].(string)
			v, _ := pairs[i+1].(string)
			fields = append(fields, field{f, v})
		}
		sort.Slice(fields, func(i, j int) bool { return fields[i].name < fields[j].name })
		leaves := make(presence.State)
		for _, f := range fields {
			var e presence.Entry
			if json.Unmarshal([]byte(f.value), &e) == nil && len(e.Meta) > 0 {
				leaves[e.Key] = append(leaves[e.Key], e.Meta)
			}
		}
		if len(leaves) > 0 {
			p.send(topic, presence.EncodeDiff(nil, leaves))
		}
		removed += len(fields)
	}
	if err := forgetNode.Run(ctx, p.client, []string{hb, p.nodeTopicsKey(n), p.nodesKey()}, n).Err(); err != nil {
		return err
	}
	if removed > 0 {
		p.log.Info("removed the presence entries of a node that is gone", "node", n, "entries", removed, "topics", len(topics))
	}
	return nil
}

// send broadcasts a presence_diff on topic to every node.
func (p *Presence) send(topic string, payload []byte) {
	if p.broadcast == nil {
		return
	}
	if err := p.broadcast(&hub.Broadcast{Topic: topic, Event: presence.EventDiff, Payload: payload}); err != nil {
		p.log.Warn("presence_diff not published", "topic", topic, "err", err)
	}
}
