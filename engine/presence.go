package engine

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/luachan/luachan/luabind"
)

// Presence events, with the payload shapes of Phoenix.Presence so the JS
// client's Presence works unchanged:
//
//	presence_state {"<key>": {"metas": [{...meta, "phx_ref": "..."}]}}
//	presence_diff  {"joins": {...same shape}, "leaves": {...same shape}}
const (
	eventPresenceState = "presence_state"
	eventPresenceDiff  = "presence_diff"
)

// Presence backs luachan.presence.
func (e *Engine) Presence() luabind.Presence { return e.presence }

var _ luabind.PresenceHost = (*Engine)(nil)

// PresenceReplica shares presence entries between nodes (hub.RedisPresence): this node
// puts and deletes its own, and lists the other nodes'. Without one (Config.Presence nil)
// presence is this node's only. Its errors are logged: presence then carries on with the
// local entries.
type PresenceReplica interface {
	// Put stores this node's meta (JSON with phx_ref) ref under key on topic.
	Put(topic, ref, key string, meta []byte) error
	// Del removes this node's meta ref from topic.
	Del(topic, ref string) error
	// List returns the other nodes' metas on topic: key -> metas.
	List(topic string) (map[string][][]byte, error)
}

// errNotJoined is returned for presence calls on a channel that is over.
var errNotJoined = errors.New("presence: the channel is not joined")

// presence tracks who is on each topic of this node: for every topic, the
// metas of every key, each owned by the channel that tracked it. A channel
// that ends is untracked by itself.
//
// With a replica (Redis), every change is also put there, outside p.mu, and
// presence_state and List add the other nodes' entries; presence_diffs reach
// the other nodes as every broadcast does. A node that dies has its entries
// removed, and their leaves broadcast, by a survivor (hub.RedisPresence).
type presence struct {
	e *Engine

	// mu guards topics and owned.
	mu     sync.Mutex
	topics map[string]map[string][]presenceMeta // topic -> key -> metas, oldest first
	owned  map[*channel]map[string]struct{}     // keys each channel tracks

	node string        // this node's prefix for phx_ref, so refs stay unique across nodes
	seq  atomic.Uint64 // numbers phx_refs

	rep      PresenceReplica // the other nodes' entries; nil: this node only
	repLogAt atomic.Int64    // unix nanos before which replica failures are not logged
}

// replicaLogEvery is how often replica failures are logged at most: while Redis is
// down every track would fail, and the Redis adapter logs the outage itself.
const replicaLogEvery = 10 * time.Second

// replicaFailed logs a replica failure, at most once per replicaLogEvery.
func (p *presence) replicaFailed(msg, topic string, err error) {
	now := time.Now().UnixNano()
	next := p.repLogAt.Load()
	if now < next || !p.repLogAt.CompareAndSwap(next, now+int64(replicaLogEvery)) {
		return
	}
	p.e.log.Warn(msg, "topic", topic, "err", err)
}

// presenceMeta is one tracked meta: a JSON object that includes its phx_ref.
type presenceMeta struct {
	ch   *channel
	ref  string
	json []byte
}

func newPresence(e *Engine) *presence {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &presence{
		e:      e,
		topics: make(map[string]map[string][]presenceMeta),
		owned:  make(map[*channel]map[string]struct{}),
		node:   base64.RawURLEncoding.EncodeToString(b[:]),
		rep:    e.cfg.Presence,
	}
}

func (p *presence) newRef() string {
	return p.node + strconv.FormatUint(p.seq.Add(1), 36)
}

// withRefs returns meta (a JSON object) with phx_ref, and phx_ref_prev when
// prev is not empty, added first.
func withRefs(meta []byte, ref, prev string) ([]byte, error) {
	meta = bytes.TrimSpace(meta)
	if len(meta) < 2 || meta[0] != '{' {
		return nil, errors.New("presence: meta must be a table")
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"phx_ref":%q`, ref)
	if prev != "" {
		fmt.Fprintf(&b, `,"phx_ref_prev":%q`, prev)
	}
	rest := bytes.TrimSpace(meta[1:])
	if len(rest) > 0 && rest[0] != '}' {
		b.WriteByte(',')
	}
	b.Write(rest)
	return b.Bytes(), nil
}

// Track adds meta under key for the channel's topic, sends the channel
// presence_state and every subscriber a presence_diff with the join.
func (p *presence) Track(sock luabind.Socket, key string, meta []byte) error {
	ch := sock.(*channel)
	ref := p.newRef()
	m, err := withRefs(meta, ref, "")
	if err != nil {
		return err
	}
	p.mu.Lock()
	if ch.ended {
		p.mu.Unlock()
		return errNotJoined
	}
	keys := p.topics[ch.topic]
	if keys == nil {
		keys = make(map[string][]presenceMeta)
		p.topics[ch.topic] = keys
	}
	keys[key] = append(keys[key], presenceMeta{ch: ch, ref: ref, json: m})
	if p.owned[ch] == nil {
		p.owned[ch] = make(map[string]struct{})
	}
	p.owned[ch][key] = struct{}{}
	local := p.localLocked(ch.topic)
	p.mu.Unlock()

	p.put(ch.topic, ref, key, m)
	state := p.encodeState(ch.topic, local)
	if err := ch.Push(eventPresenceState, luabind.Payload{Data: state}); err != nil {
		return err
	}
	return ch.Broadcast(eventPresenceDiff, luabind.Payload{Data: diff(key, [][]byte{m}, nil)}, false)
}

// Update replaces the channel's metas under key with meta: one diff with
// the new meta (phx_ref_prev naming the old) joining and the old leaving.
func (p *presence) Update(sock luabind.Socket, key string, meta []byte) error {
	ch := sock.(*channel)
	p.mu.Lock()
	metas := p.topics[ch.topic][key]
	var left [][]byte
	var leftRefs []string
	var kept []presenceMeta
	prev := ""
	for _, m := range metas {
		if m.ch == ch {
			left = append(left, m.json)
			leftRefs = append(leftRefs, m.ref)
			prev = m.ref
		} else {
			kept = append(kept, m)
		}
	}
	if prev == "" {
		p.mu.Unlock()
		return fmt.Errorf("presence: %q is not tracked on this channel", key)
	}
	ref := p.newRef()
	m, err := withRefs(meta, ref, prev)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	p.topics[ch.topic][key] = append(kept, presenceMeta{ch: ch, ref: ref, json: m})
	p.mu.Unlock()
	p.put(ch.topic, ref, key, m)
	for _, r := range leftRefs {
		p.del(ch.topic, r)
	}
	return ch.Broadcast(eventPresenceDiff, luabind.Payload{Data: diff(key, [][]byte{m}, left)}, false)
}

// Untrack removes the channel's metas under key and broadcasts the leave.
func (p *presence) Untrack(sock luabind.Socket, key string) error {
	ch := sock.(*channel)
	p.mu.Lock()
	left := p.removeLocked(ch, key)
	if keys := p.owned[ch]; keys != nil {
		delete(keys, key)
	}
	p.mu.Unlock()
	if len(left) == 0 {
		return nil
	}
	return ch.Broadcast(eventPresenceDiff, luabind.Payload{Data: diff(key, nil, p.dropped(ch.topic, left))}, false)
}

// untrackAll removes everything the channel tracked, when it ends, and
// broadcasts the leaves straight to the hub (the channel itself is over).
func (p *presence) untrackAll(ch *channel) {
	p.mu.Lock()
	keys := p.owned[ch]
	delete(p.owned, ch)
	type leave struct {
		key  string
		left []presenceMeta
	}
	var leaves []leave
	for key := range keys {
		if left := p.removeLocked(ch, key); len(left) > 0 {
			leaves = append(leaves, leave{key, left})
		}
	}
	p.mu.Unlock()
	for _, l := range leaves {
		if err := ch.broadcast(eventPresenceDiff, luabind.Payload{Data: diff(l.key, nil, p.dropped(ch.topic, l.left))}, false); err != nil {
			p.e.log.Warn("presence leave not published", "topic", ch.topic, "err", err)
		}
	}
}

// removeLocked drops ch's metas under key on its topic and returns them.
func (p *presence) removeLocked(ch *channel, key string) []presenceMeta {
	keys := p.topics[ch.topic]
	var left []presenceMeta
	var kept []presenceMeta
	for _, m := range keys[key] {
		if m.ch == ch {
			left = append(left, presenceMeta{ref: m.ref, json: m.json})
		} else {
			kept = append(kept, m)
		}
	}
	if len(kept) == 0 {
		delete(keys, key)
		if len(keys) == 0 {
			delete(p.topics, ch.topic)
		}
	} else {
		keys[key] = kept
	}
	return left
}

// List returns topic's presence_state: this node's entries and, with a replica, the
// other nodes'.
func (p *presence) List(topic string) ([]byte, error) {
	p.mu.Lock()
	local := p.localLocked(topic)
	p.mu.Unlock()
	return p.encodeState(topic, local), nil
}

// localLocked returns this node's metas on topic, key -> metas, oldest first.
func (p *presence) localLocked(topic string) map[string][][]byte {
	keys := p.topics[topic]
	out := make(map[string][][]byte, len(keys))
	for k, ms := range keys {
		metas := make([][]byte, len(ms))
		for j, m := range ms {
			metas[j] = m.json
		}
		out[k] = metas
	}
	return out
}

// encodeState encodes local, plus the other nodes' metas on topic when there is a
// replica, as presence_state. It must not be called holding p.mu.
func (p *presence) encodeState(topic string, local map[string][][]byte) []byte {
	if p.rep != nil {
		remote, err := p.rep.List(topic)
		if err != nil {
			p.replicaFailed("presence of other nodes not listed", topic, err)
		}
		for k, metas := range remote {
			local[k] = append(local[k], metas...)
		}
	}
	names := make([]string, 0, len(local))
	for k := range local {
		names = append(names, k)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		writeEntry(&b, k, local[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}

// put stores a meta of this node in the replica, if any.
func (p *presence) put(topic, ref, key string, meta []byte) {
	if p.rep == nil {
		return
	}
	if err := p.rep.Put(topic, ref, key, meta); err != nil {
		p.replicaFailed("presence not shared with other nodes", topic, err)
	}
}

// del removes a meta of this node from the replica, if any.
func (p *presence) del(topic, ref string) {
	if p.rep == nil {
		return
	}
	if err := p.rep.Del(topic, ref); err != nil {
		p.replicaFailed("presence leave not shared with other nodes", topic, err)
	}
}

// dropped removes the metas left from the replica and returns their JSON.
func (p *presence) dropped(topic string, left []presenceMeta) [][]byte {
	out := make([][]byte, len(left))
	for i, m := range left {
		p.del(topic, m.ref)
		out[i] = m.json
	}
	return out
}

// diff encodes a presence_diff with one key's joins and leaves.
func diff(key string, joins, leaves [][]byte) []byte {
	var b bytes.Buffer
	b.WriteString(`{"joins":{`)
	if len(joins) > 0 {
		writeEntry(&b, key, joins)
	}
	b.WriteString(`},"leaves":{`)
	if len(leaves) > 0 {
		writeEntry(&b, key, leaves)
	}
	b.WriteString(`}}`)
	return b.Bytes()
}

// writeEntry writes "key":{"metas":[...]}.
func writeEntry(b *bytes.Buffer, key string, metas [][]byte) {
	name, _ := json.Marshal(key) // a Go string always marshals
	b.Write(name)
	b.WriteString(`:{"metas":[`)
	for i, m := range metas {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(m)
	}
	b.WriteString(`]}`)
}
