package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/internal/ratelog"
	"github.com/luachan/luachan/presence"
)

// DefaultPresenceTTL is how long a node's heartbeat lives in luachan_nodes. A node
// refreshes it every TTL/3 and looks for dead nodes every TTL/4, so the entries of a node
// that dies are gone (and their leaves broadcast) within TTL + TTL/4 (and JetStream's
// expiry check): 25 s, inside the 30 s of SPEC section 6.
const DefaultPresenceTTL = 20 * time.Second

// Bounds of the presence replica's NATS calls.
const (
	presenceCallTimeout = 250 * time.Millisecond // Put, Del and List, inside a script callback
	presenceReapTimeout = 4 * natsIOTimeout      // removing one dead node's entries
	presencePurgeEvery  = 10 * time.Minute       // dropping old delete markers from luachan_presence
)

// Presence keeps this node's presence entries in the JetStream bucket luachan_presence,
// so that presence_state and luachan.presence.list span the nodes, and removes the
// entries of nodes that died.
//
// Keys (topics and refs escaped as subject tokens; node is 16 hex digits):
//
//	luachan_presence  t.<node>.<topic>.<ref>  {"key":..., "meta":...}
//	luachan_presence  n.<node>                a node that has (or had) entries
//	luachan_nodes     <node>                  the heartbeat, refreshed every TTL/3; the bucket's TTL removes it
//
// A janitor (every TTL/4) takes each n.<node> whose heartbeat is gone and removes its
// entries, each with a delete conditional on the revision it read, so that each entry is
// removed, and its leave broadcast, by one survivor only; it broadcasts one presence_diff
// of the leaves per topic through the Hub (which reaches every node) and forgets the node.
//
// A node whose writes failed, or whose heartbeat lapsed (NATS away longer than the TTL),
// resyncs at its next heartbeat: it writes what the bucket lacks of its entries and
// broadcasts them as joins, and removes what it no longer has and broadcasts the leaves.
type Presence struct {
	js        jetstream.JetStream
	kv        jetstream.KeyValue // luachan_presence
	nodesKV   jetstream.KeyValue // luachan_nodes, opened by Start
	log       *slog.Logger
	node      string
	ttl       time.Duration
	broadcast func(*hub.Broadcast) error
	down      func() bool // the connection is lost: Put, Del and List fail at once

	// mu guards mine, the entries this node has put, to write them again after its
	// heartbeat lapsed.
	mu   sync.Mutex
	mine map[string]map[string]presence.Entry // topic -> ref -> entry

	stale   atomic.Bool // a write failed: the bucket may not hold exactly mine
	beatLog ratelog.Limiter

	ctx    context.Context // cancelled by Close: the goroutine and calls in flight return
	cancel context.CancelFunc
	wg     sync.WaitGroup // the heartbeat and janitor goroutine
}

var _ presence.Replica = (*Presence)(nil)

// Presence returns the presence replica on the adapter's connection, with this node's
// id. ttl <= 0 takes DefaultPresenceTTL. broadcast (Hub.Broadcast) carries the leaves of
// dead nodes to every node. It does no I/O: Start opens luachan_nodes, writes the
// heartbeat and starts the heartbeat and janitor goroutine; Close, before the PubSub's,
// stops it.
func (r *PubSub) Presence(ttl time.Duration, broadcast func(*hub.Broadcast) error) *Presence {
	if ttl <= 0 {
		ttl = DefaultPresenceTTL
	}
	p := &Presence{
		js:        r.js,
		kv:        r.presKV,
		log:       r.log.With("presence", "nats"),
		node:      fmt.Sprintf("%016x", r.node),
		ttl:       ttl,
		broadcast: broadcast,
		down:      r.isDown,
		mine:      make(map[string]map[string]presence.Entry),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p
}

func (p *Presence) entryKey(node, topic, ref string) string {
	return "t." + node + "." + escapeToken(topic) + "." + escapeToken(ref)
}
func (p *Presence) nodeKey(node string) string { return "n." + node }

// Node is this node's id, as in its keys.
func (p *Presence) Node() string { return p.node }

// opCtx bounds one NATS round trip of the background goroutine.
func (p *Presence) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(p.ctx, natsIOTimeout)
}

// callCtx bounds one NATS round trip of Put, Del or List.
func (p *Presence) callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(p.ctx, presenceCallTimeout)
}

// Start opens luachan_nodes (its TTL this node's), writes the heartbeat once, within ctx,
// and starts the heartbeat and janitor goroutine. Start is called once, before Close.
func (p *Presence) Start(ctx context.Context) {
	octx, cancel := context.WithTimeout(ctx, natsIOTimeout)
	kv, err := p.js.CreateOrUpdateKeyValue(octx, jetstream.KeyValueConfig{Bucket: NodesBucket, History: 1, TTL: p.ttl})
	cancel()
	if err != nil {
		p.log.Warn("luachan_nodes bucket not opened; retrying", "err", err)
	}
	p.nodesKV = kv
	if _, err := p.beat(ctx); err != nil {
		p.stale.Store(true)
		p.log.Warn("presence heartbeat not written; retrying", "err", err)
	}
	octx, cancel = context.WithTimeout(ctx, natsIOTimeout)
	if _, err := p.kv.Put(octx, p.nodeKey(p.node), []byte("1")); err != nil {
		p.stale.Store(true) // the resync writes it
	}
	cancel()
	p.wg.Add(1)
	go p.loop()
}

// Close stops the goroutine and waits for it, then removes the heartbeat, so that
// survivors clean up at once whatever entries are left. When ctx ends first it returns
// ctx's error; the heartbeat then lapses by itself within the TTL.
func (p *Presence) Close(ctx context.Context) error {
	p.cancel()
	if err := waitFor(ctx, p.wg.Wait); err != nil {
		return fmt.Errorf("nats: presence heartbeat still running: %w", err)
	}
	if p.nodesKV == nil {
		return nil
	}
	// In a goroutine of its own: nats.go holds the connection's lock while it tries to
	// reconnect, which no context cuts short; the call ends within natsIOTimeout after.
	done := make(chan error, 1)
	go func() {
		pctx, cancel := context.WithTimeout(context.Background(), natsIOTimeout)
		defer cancel()
		done <- p.nodesKV.Purge(pctx, p.node)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("nats: presence heartbeat not removed: %w", ctx.Err())
	}
}

// beat refreshes the heartbeat and reports whether it had lapsed (was missing).
func (p *Presence) beat(ctx context.Context) (lapsed bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, natsIOTimeout)
	defer cancel()
	if p.nodesKV == nil {
		kv, err := p.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: NodesBucket, History: 1, TTL: p.ttl})
		if err != nil {
			return false, err
		}
		p.nodesKV = kv
	}
	_, err = p.nodesKV.Get(ctx, p.node)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		lapsed = true
	case err != nil:
		return false, err
	}
	if _, err := p.nodesKV.Put(ctx, p.node, []byte("1")); err != nil {
		return false, err
	}
	return lapsed, nil
}

func (p *Presence) loop() {
	defer p.wg.Done()
	beatT, sweepT, purgeT := time.NewTicker(p.ttl/3), time.NewTicker(p.ttl/4), time.NewTicker(presencePurgeEvery)
	defer beatT.Stop()
	defer sweepT.Stop()
	defer purgeT.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-beatT.C:
			lapsed, err := p.beat(p.ctx)
			if err != nil {
				p.stale.Store(true)
				if ok, n := p.beatLog.Allow(1); ok && p.ctx.Err() == nil {
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
		case <-purgeT.C:
			ctx, cancel := context.WithTimeout(p.ctx, presenceReapTimeout)
			if err := p.kv.PurgeDeletes(ctx); err != nil && p.ctx.Err() == nil {
				p.log.Debug("presence delete markers not purged", "err", err)
			}
			cancel()
		}
	}
}

// keys returns the keys of the bucket matching filter (a subject filter), nil for none.
func (p *Presence) keys(ctx context.Context, filter string) ([]string, error) {
	kl, err := p.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, err
	}
	defer kl.Stop()
	var out []string
	for k := range kl.Keys() {
		out = append(out, k)
	}
	return out, nil
}

// entries returns the values of the bucket's keys matching filter, by key, with their
// revisions.
func (p *Presence) entries(ctx context.Context, filter string) (map[string]jetstream.KeyValueEntry, error) {
	w, err := p.kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	out := make(map[string]jetstream.KeyValueEntry)
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("nats: presence: watch of %s ended", filter)
			}
			if e == nil {
				return out, nil // the values so far are all there is
			}
			out[e.Key()] = e
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// parseEntryKey splits t.<node>.<topic>.<ref> into topic and ref.
func (p *Presence) parseEntryKey(k string) (topic, ref string, ok bool) {
	parts := strings.Split(k, ".")
	if len(parts) != 4 || parts[0] != "t" {
		return "", "", false
	}
	topic, ok1 := unescapeToken(parts[2])
	ref, ok2 := unescapeToken(parts[3])
	return topic, ref, ok1 && ok2
}

// has reports whether this node has ref on topic.
func (p *Presence) has(topic, ref string) (presence.Entry, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.mine[topic][ref]
	return e, ok
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
	if p.down() {
		p.stale.Store(true) // written once NATS is back
		return errDown
	}
	ctx, cancel := p.callCtx()
	defer cancel()
	if _, err := p.write(ctx, topic, ref, e, false); err != nil {
		p.stale.Store(true) // written again once NATS answers
		return err
	}
	return nil
}

// write stores the entry (create: unless the bucket has it) and reports whether it did.
func (p *Presence) write(ctx context.Context, topic, ref string, e presence.Entry, create bool) (bool, error) {
	v, err := json.Marshal(e)
	if err != nil {
		return false, err
	}
	k := p.entryKey(p.node, topic, ref)
	if !create {
		_, err = p.kv.Put(ctx, k, v)
		return err == nil, err
	}
	_, err = p.kv.Create(ctx, k, v)
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
		return false, nil
	}
	return err == nil, err
}

// Del removes this node's meta ref from topic.
func (p *Presence) Del(topic, ref string) error {
	p.mu.Lock()
	if es := p.mine[topic]; es != nil {
		delete(es, ref)
		if len(es) == 0 {
			delete(p.mine, topic)
		}
	}
	p.mu.Unlock()
	if p.down() {
		p.stale.Store(true) // removed once NATS is back
		return errDown
	}
	ctx, cancel := p.callCtx()
	defer cancel()
	if err := p.kv.Delete(ctx, p.entryKey(p.node, topic, ref)); err != nil {
		p.stale.Store(true) // removed once NATS answers
		return err
	}
	return nil
}

// List returns the other nodes' metas on topic, key -> metas, in a stable order.
func (p *Presence) List(topic string) (presence.State, error) {
	if p.down() {
		return nil, errDown
	}
	ctx, cancel := p.callCtx()
	defer cancel()
	all, err := p.entries(ctx, "t.*."+escapeToken(topic)+".*")
	if err != nil {
		return nil, err
	}
	out := make(presence.State)
	for _, k := range sortedKeys(all) {
		if strings.HasPrefix(k, "t."+p.node+".") {
			continue
		}
		var e presence.Entry
		if json.Unmarshal(all[k].Value(), &e) != nil || len(e.Meta) == 0 {
			continue
		}
		out[e.Key] = append(out[e.Key], e.Meta)
	}
	return out, nil
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

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
