// Package store is the shared state behind luachan.store (SPEC section 3) kept in this
// process: Memory, the default without -pubsub redis, and ErrNotInteger, which every
// store returns for an Incr it cannot do. Values are JSON text, every operation is
// atomic, and every channel and VM sees the same keys.
//
// The interface is luabind.Store, declared by its consumer; the Redis store, which every
// node shares, is in hub/redis. store imports nothing of luachan's. Memory.mu guards
// its map and is a leaf; no goroutine is started.
package store
