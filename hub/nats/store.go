package nats

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/luachan/luachan/store"
)

// Bucket names and sizes of the JetStream key-value buckets.
const (
	StoreBucket    = "luachan_store"    // luachan.store
	PresenceBucket = "luachan_presence" // every node's presence entries
	NodesBucket    = "luachan_nodes"    // every node's heartbeat, expiring after the presence TTL

	storeCallTimeout = natsIOTimeout // one luachan.store call
	incrMaxTries     = 64            // compare-and-set rounds of one Incr against other nodes' writes
)

// Store keeps the shared state behind luachan.store (SPEC section 3) in the JetStream
// key-value bucket luachan_store, one key per store key (escaped as a subject token), so
// that every node sees it. Incr is a compare-and-set on the key's revision, retried
// while other nodes write between its read and its write: atomic across nodes. Calls are
// never retried after a failure (one could have happened): while NATS is unreachable
// every call fails, and the script calling it gets a Lua error. It satisfies
// luabind.Store, as store.Memory does.
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
	e, err := s.kv.Get(ctx, escapeToken(key))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, storeError(err)
	}
	return e.Value(), true, nil
}

// Set stores value (JSON text) under key.
func (s *Store) Set(key string, value []byte) error {
	if s.down() {
		return storeError(errDown)
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeCallTimeout)
	defer cancel()
	_, err := s.kv.Put(ctx, escapeToken(key), value)
	return storeError(err)
}

// Incr adds by to key's integer (a missing key counts as 0) and returns the sum.
func (s *Store) Incr(key string, by int64) (int64, error) {
	if s.down() {
		return 0, storeError(errDown)
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeCallTimeout)
	defer cancel()
	k := escapeToken(key)
	for range incrMaxTries {
		var n int64
		var rev uint64
		e, err := s.kv.Get(ctx, k)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return 0, storeError(err)
		default:
			rev = e.Revision()
			if n, err = strconv.ParseInt(string(e.Value()), 10, 64); err != nil {
				return 0, store.ErrNotInteger
			}
		}
		if (by > 0 && n > math.MaxInt64-by) || (by < 0 && n < math.MinInt64-by) {
			return 0, store.ErrNotInteger
		}
		n += by
		val := strconv.AppendInt(nil, n, 10)
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
