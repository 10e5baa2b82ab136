package nats

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/luachan/luachan/store"
)

// Bucket names and sizes of the JetStream key-value buckets.
const (
	StoreBucket    = "luachan_store"    // luachan.store
	PresenceBucket = "luachan_presence" // every node's presence entries
	NodesBucket    = "luachan_nodes"    // every node's heartbeat, expiring after the presence TTL

	storeCallTimeout = natsIOTimeout // one luachan.store call
	incrMaxTries     = 64            // compare-and-set rounds of one Incr or CAS against other nodes' writes
)

// expiryMark starts a value that has a ttl, kept as "@<deadline> <JSON>", the deadline
// in Unix milliseconds: nats-server before 2.11 has no per-key TTL, and JSON text never
// starts with '@'. Every node judges the deadline on its own clock.
const expiryMark = '@'

// Store keeps the shared state behind luachan.store (SPEC sections 3 and 11) in the
// JetStream key-value bucket luachan_store, one key per store key (escaped as a subject
// token), so that every node sees it. Incr and CAS are a compare-and-set on the key's
// revision, retried while other nodes write between its read and its write: atomic
// across nodes. A key past its ttl (see expiryMark) reads as absent; its entry stays in
// the bucket until the key is next read or written. Calls are never retried after a
// failure (one could have happened): while NATS is unreachable every call fails, and
// the script calling it gets a Lua error. It satisfies luabind.Store, as store.Memory
// does.
type Store struct {
	kv   jetstream.KeyValue
	down func() bool // the connection is lost: calls fail at once
}

// Store returns luachan.store kept in NATS, sharing the adapter's connection.
func (r *PubSub) Store() *Store { return &Store{kv: r.storeKV, down: r.isDown} }

// Get returns key's value, or ok=false when it has none.
func (s *Store) Get(key string) (value []byte, ok bool, err error) {
	if s.down() {
		return nil, false, storeError(errDown)
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeCallTimeout)
	defer cancel()
	k := escapeToken(key)
	e, err := s.kv.Get(ctx, k)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, storeError(err)
	}
	v := e.Value()
	if len(v) == 0 || v[0] != expiryMark {
		return v, true, nil
	}
	v, deadline := splitExpiry(v)
	if expired(deadline) {
		s.dropExpired(ctx, k, e.Revision())
		return nil, false, nil
	}
	return v, true, nil
}

// Set stores value (JSON text) under key, with no expiry (clearing any ttl).
func (s *Store) Set(key string, value []byte) error {
	if s.down() {
		return storeError(errDown)
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeCallTimeout)
	defer cancel()
	_, err := s.kv.Put(ctx, escapeToken(key), value)
	return storeError(err)
}

// SetTTL stores value under key, expiring ttl (> 0) from now.
func (s *Store) SetTTL(key string, value []byte, ttl time.Duration) error {
	if s.down() {
		return storeError(errDown)
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeCallTimeout)
	defer cancel()
	_, err := s.kv.Put(ctx, escapeToken(key), withExpiry(value, deadlineIn(ttl)))
	return storeError(err)
}

// CAS sets key to value (nil: deletes it) if its value is old byte for byte (nil: if
// it has none), with expiry ttl (0: none), and reports whether it did.
func (s *Store) CAS(key string, old, value []byte, ttl time.Duration) (bool, error) {
	if s.down() {
		return false, storeError(errDown)
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeCallTimeout)
	defer cancel()
	k := escapeToken(key)
	for range incrMaxTries {
		cur, rev, err := s.read(ctx, k)
		if err != nil {
			return false, storeError(err)
		}
		if !cur.is(old) {
			return false, nil
		}
		switch {
		case value == nil && rev == 0:
			return true, nil // absent, and to stay so
		case value == nil:
			err = s.kv.Delete(ctx, k, jetstream.LastRevision(rev))
		case rev == 0:
			_, err = s.kv.Create(ctx, k, withExpiry(value, deadlineIn(ttl)))
		default:
			_, err = s.kv.Update(ctx, k, withExpiry(value, deadlineIn(ttl)), rev)
		}
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, jetstream.ErrKeyExists), isWrongSequence(err):
			continue // another node wrote in between: compare again
		default:
			return false, storeError(err)
		}
	}
	return false, fmt.Errorf("nats: store: %q changed under every one of %d attempts to compare and set it; try again", key, incrMaxTries)
}

// TTL returns the time key has left: ok=false when it is absent, ttl < 0 when it has no
// expiry.
func (s *Store) TTL(key string) (ttl time.Duration, ok bool, err error) {
	if s.down() {
		return 0, false, storeError(errDown)
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeCallTimeout)
	defer cancel()
	cur, _, err := s.read(ctx, escapeToken(key))
	switch {
	case err != nil:
		return 0, false, storeError(err)
	case cur == nil:
		return 0, false, nil
	case cur.deadline == 0:
		return -1, true, nil
	}
	return time.Until(time.UnixMilli(cur.deadline)), true, nil
}

// Incr adds by to key's integer (a missing key counts as 0) and returns the sum; the
// key keeps its ttl.
func (s *Store) Incr(key string, by int64) (int64, error) {
	if s.down() {
		return 0, storeError(errDown)
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeCallTimeout)
	defer cancel()
	k := escapeToken(key)
	for range incrMaxTries {
		var n int64
		cur, rev, err := s.read(ctx, k)
		if err != nil {
			return 0, storeError(err)
		}
		var deadline int64
		if cur != nil {
			deadline = cur.deadline
			if n, err = strconv.ParseInt(string(cur.value), 10, 64); err != nil {
				return 0, store.ErrNotInteger
			}
		}
		if (by > 0 && n > math.MaxInt64-by) || (by < 0 && n < math.MinInt64-by) {
			return 0, store.ErrNotInteger
		}
		n += by
		val := withExpiry(strconv.AppendInt(nil, n, 10), deadline)
		if rev == 0 {
			_, err = s.kv.Create(ctx, k, val)
		} else {
			_, err = s.kv.Update(ctx, k, val, rev)
		}
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, jetstream.ErrKeyExists), isWrongSequence(err):
			continue // another node wrote in between: read again
		default:
			return 0, storeError(err)
		}
	}
	return 0, fmt.Errorf("nats: store: %q changed under every one of %d attempts to add to it; try again", key, incrMaxTries)
}

// Del removes key; a missing key is no error.
func (s *Store) Del(key string) error {
	if s.down() {
		return storeError(errDown)
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeCallTimeout)
	defer cancel()
	return storeError(s.kv.Delete(ctx, escapeToken(key)))
}

// live is a key's value that has not expired, and its deadline (0: none).
type live struct {
	value    []byte
	deadline int64
}

// is reports whether l holds old byte for byte, or is absent (nil) and old nil.
func (l *live) is(old []byte) bool {
	if l == nil {
		return old == nil
	}
	return old != nil && bytes.Equal(l.value, old)
}

// read returns key k's live value (nil when it is absent or expired) and the revision to
// compare-and-set against (0 when the key has no entry, or a deleted one).
func (s *Store) read(ctx context.Context, k string) (*live, uint64, error) {
	e, err := s.kv.Get(ctx, k)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, 0, nil
	case err != nil:
		return nil, 0, err
	}
	v, deadline := splitExpiry(e.Value())
	if expired(deadline) {
		return nil, e.Revision(), nil
	}
	return &live{value: v, deadline: deadline}, e.Revision(), nil
}

// dropExpired deletes key k's expired entry, unless it was written since (rev): a
// tidy-up, so its failure is no error.
func (s *Store) dropExpired(ctx context.Context, k string, rev uint64) {
	_ = s.kv.Delete(ctx, k, jetstream.LastRevision(rev))
}

// deadlineIn returns the deadline ttl from now, in Unix milliseconds (0 for no ttl).
func deadlineIn(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return time.Now().Add(ttl).UnixMilli()
}

// expired reports whether deadline (Unix ms, 0: none) is past.
func expired(deadline int64) bool {
	return deadline != 0 && time.Now().UnixMilli() >= deadline
}

// withExpiry returns value as kept with deadline (Unix ms, 0: none); see expiryMark.
func withExpiry(value []byte, deadline int64) []byte {
	if deadline == 0 {
		return value
	}
	out := make([]byte, 0, len(value)+21)
	out = append(out, expiryMark)
	out = strconv.AppendInt(out, deadline, 10)
	out = append(out, ' ')
	return append(out, value...)
}

// splitExpiry undoes withExpiry: the value and its deadline (0: none). A value that
// starts with expiryMark but is not of withExpiry's shape is taken as it is.
func splitExpiry(v []byte) (value []byte, deadline int64) {
	if len(v) == 0 || v[0] != expiryMark {
		return v, 0
	}
	sp := bytes.IndexByte(v, ' ')
	if sp < 0 {
		return v, 0
	}
	d, err := strconv.ParseInt(string(v[1:sp]), 10, 64)
	if err != nil || d <= 0 {
		return v, 0
	}
	return v[sp+1:], d
}

// isWrongSequence reports a compare-and-set that lost to another writer.
func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// storeError marks an error as NATS's.
func storeError(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("nats: store: %w", err)
}
