// Package store is the shared state behind luachan.store (SPEC sections 3 and 11) kept
// in this process: Memory, the default without -pubsub, and ErrNotInteger, which every
// store returns for an Incr it cannot do. Values are JSON text, every operation (CAS
// included) is atomic, and every channel and VM sees the same keys. A key may have a
// ttl, on a clock the caller can give (NewMemoryClock: `luachan test`'s virtual one).
//
// The interface is luabind.Store, declared by its consumer; the stores every node
// shares are in hub/redis and hub/nats. store imports nothing of luachan's. Memory.mu
// guards its maps and is a leaf; no goroutine is started: expired keys are dropped when
// touched, or swept a few at a time by writes that set a ttl.
package store
