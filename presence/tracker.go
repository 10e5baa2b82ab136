package presence

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// replicaLogEvery is how often replica failures are logged at most: while Redis is
// down every track would fail, and the Redis adapter logs the outage itself.
const replicaLogEvery = 10 * time.Second

// ErrBadMeta is a meta that is not a JSON object.
var ErrBadMeta = errors.New("presence: meta must be a table")

// Tracker tracks who is on each topic of this node: for every topic, the metas of
// every key, each owned by the O (the engine's channel) that tracked it. It returns
// the payloads to send; sending them is its caller's.
//
// With a Replica, every change is also put there, outside mu, and presence_state adds
// the other nodes' entries; presence_diffs reach the other nodes as every broadcast
// does. A node that dies has its entries removed, and their leaves broadcast, by a
// survivor (the Redis adapter).
type Tracker[O comparable] struct {
	log *slog.Logger
	rep Replica // the other nodes' entries; nil: this node only

	// mu guards topics and owned.
	mu     sync.Mutex
	topics map[string]map[string][]meta[O]  // topic -> key -> metas, oldest first
	owned  map[owner[O]]map[string]struct{} // keys each owner tracks on a topic

	node     string        // this node's prefix for phx_ref, so refs stay unique across nodes
	seq      atomic.Uint64 // numbers phx_refs
	repLogAt atomic.Int64  // unix nanos before which replica failures are not logged
}

// meta is one tracked meta: a JSON object that includes its phx_ref.
type meta[O comparable] struct {
	owner O
	ref   string
	json  []byte
}

// owner is one owner's tracking on one topic.
type owner[O comparable] struct {
	topic string
	o     O
}

// NewTracker returns an empty Tracker; rep may be nil. Replica failures are logged to
// log, at most once per replicaLogEvery.
func NewTracker[O comparable](rep Replica, log *slog.Logger) *Tracker[O] {
	if log == nil {
		log = slog.Default()
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &Tracker[O]{
		log:    log,
		rep:    rep,
		topics: make(map[string]map[string][]meta[O]),
		owned:  make(map[owner[O]]map[string]struct{}),
		node:   base64.RawURLEncoding.EncodeToString(b[:]),
	}
}

func (t *Tracker[O]) newRef() string {
	return t.node + strconv.FormatUint(t.seq.Add(1), 36)
}

// replicaFailed logs a replica failure, at most once per replicaLogEvery.
func (t *Tracker[O]) replicaFailed(msg, topic string, err error) {
	now := time.Now().UnixNano()
	next := t.repLogAt.Load()
	if now < next || !t.repLogAt.CompareAndSwap(next, now+int64(replicaLogEvery)) {
		return
	}
	t.log.Warn(msg, "topic", topic, "err", err)
}

// withRefs returns m (a JSON object) with phx_ref, and phx_ref_prev when prev is not
// empty, added first.
func withRefs(m []byte, ref, prev string) ([]byte, error) {
	m = bytes.TrimSpace(m)
	if len(m) < 2 || m[0] != '{' {
		return nil, ErrBadMeta
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"phx_ref":%q`, ref)
	if prev != "" {
		fmt.Fprintf(&b, `,"phx_ref_prev":%q`, prev)
	}
	rest := bytes.TrimSpace(m[1:])
	if len(rest) > 0 && rest[0] != '}' {
		b.WriteByte(',')
	}
	b.Write(rest)
	return b.Bytes(), nil
}

// Track adds m under key on topic for o. It returns topic's presence_state, for o's
// client, and the presence_diff of the join, for every subscriber.
func (t *Tracker[O]) Track(topic string, o O, key string, m []byte) (state, diff []byte, err error) {
	ref := t.newRef()
	m, err = withRefs(m, ref, "")
	if err != nil {
		return nil, nil, err
	}
	t.mu.Lock()
	keys := t.topics[topic]
	if keys == nil {
		keys = make(map[string][]meta[O])
		t.topics[topic] = keys
	}
	keys[key] = append(keys[key], meta[O]{owner: o, ref: ref, json: m})
	ok := owner[O]{topic, o}
	if t.owned[ok] == nil {
		t.owned[ok] = make(map[string]struct{})
	}
	t.owned[ok][key] = struct{}{}
	local := t.localLocked(topic)
	t.mu.Unlock()

	t.put(topic, ref, key, m)
	return t.encodeState(topic, local), keyDiff(key, [][]byte{m}, nil), nil
}

// Update replaces o's metas under key on topic with m and returns the presence_diff:
// the new meta (phx_ref_prev naming the old) joining and the old leaving.
func (t *Tracker[O]) Update(topic string, o O, key string, m []byte) (diff []byte, err error) {
	t.mu.Lock()
	metas := t.topics[topic][key]
	var left [][]byte
	var leftRefs []string
	var kept []meta[O]
	prev := ""
	for _, x := range metas {
		if x.owner == o {
			left = append(left, x.json)
			leftRefs = append(leftRefs, x.ref)
			prev = x.ref
		} else {
			kept = append(kept, x)
		}
	}
	if prev == "" {
		t.mu.Unlock()
		return nil, fmt.Errorf("presence: %q is not tracked on this channel", key)
	}
	ref := t.newRef()
	m, err = withRefs(m, ref, prev)
	if err != nil {
		t.mu.Unlock()
		return nil, err
	}
	t.topics[topic][key] = append(kept, meta[O]{owner: o, ref: ref, json: m})
	t.mu.Unlock()
	t.put(topic, ref, key, m)
	for _, r := range leftRefs {
		t.del(topic, r)
	}
	return keyDiff(key, [][]byte{m}, left), nil
}

// Untrack removes o's metas under key on topic and returns the presence_diff of the
// leave, or nil when o tracked none.
func (t *Tracker[O]) Untrack(topic string, o O, key string) (diff []byte) {
	t.mu.Lock()
	left := t.removeLocked(topic, o, key)
	if keys := t.owned[owner[O]{topic, o}]; keys != nil {
		delete(keys, key)
	}
	t.mu.Unlock()
	if len(left) == 0 {
		return nil
	}
	return keyDiff(key, nil, t.dropped(topic, left))
}

// UntrackAll removes everything o tracked on topic, when it ends, and returns the
// presence_diffs of the leaves, one per key.
func (t *Tracker[O]) UntrackAll(topic string, o O) (diffs [][]byte) {
	t.mu.Lock()
	ok := owner[O]{topic, o}
	keys := t.owned[ok]
	delete(t.owned, ok)
	type leave struct {
		key  string
		left []meta[O]
	}
	var leaves []leave
	for key := range keys {
		if left := t.removeLocked(topic, o, key); len(left) > 0 {
			leaves = append(leaves, leave{key, left})
		}
	}
	t.mu.Unlock()
	for _, l := range leaves {
		diffs = append(diffs, keyDiff(l.key, nil, t.dropped(topic, l.left)))
	}
	return diffs
}

// removeLocked drops o's metas under key on topic and returns them.
func (t *Tracker[O]) removeLocked(topic string, o O, key string) []meta[O] {
	keys := t.topics[topic]
	var left, kept []meta[O]
	for _, x := range keys[key] {
		if x.owner == o {
			left = append(left, meta[O]{ref: x.ref, json: x.json})
		} else {
			kept = append(kept, x)
		}
	}
	if len(kept) == 0 {
		delete(keys, key)
		if len(keys) == 0 {
			delete(t.topics, topic)
		}
	} else {
		keys[key] = kept
	}
	return left
}

// List returns topic's presence_state: this node's entries and, with a replica, the
// other nodes'.
func (t *Tracker[O]) List(topic string) []byte {
	t.mu.Lock()
	local := t.localLocked(topic)
	t.mu.Unlock()
	return t.encodeState(topic, local)
}

// localLocked returns this node's metas on topic.
func (t *Tracker[O]) localLocked(topic string) State {
	keys := t.topics[topic]
	out := make(State, len(keys))
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
// replica, as presence_state. It must not be called holding t.mu.
func (t *Tracker[O]) encodeState(topic string, local State) []byte {
	if t.rep != nil {
		remote, err := t.rep.List(topic)
		if err != nil {
			t.replicaFailed("presence of other nodes not listed", topic, err)
		}
		for k, metas := range remote {
			local[k] = append(local[k], metas...)
		}
	}
	return EncodeState(local)
}

// put stores a meta of this node in the replica, if any.
func (t *Tracker[O]) put(topic, ref, key string, m []byte) {
	if t.rep == nil {
		return
	}
	if err := t.rep.Put(topic, ref, key, m); err != nil {
		t.replicaFailed("presence not shared with other nodes", topic, err)
	}
}

// del removes a meta of this node from the replica, if any.
func (t *Tracker[O]) del(topic, ref string) {
	if t.rep == nil {
		return
	}
	if err := t.rep.Del(topic, ref); err != nil {
		t.replicaFailed("presence leave not shared with other nodes", topic, err)
	}
}

// dropped removes the metas left from the replica and returns their JSON.
func (t *Tracker[O]) dropped(topic string, left []meta[O]) [][]byte {
	out := make([][]byte, len(left))
	for i, m := range left {
		t.del(topic, m.ref)
		out[i] = m.json
	}
	return out
}
