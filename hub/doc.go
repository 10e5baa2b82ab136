// Package hub owns luachan's WebSocket connections: the Phoenix wire codec (V1 JSON,
// V2 JSON and V2 binary), one reader and one writer goroutine per socket with a
// bytes-bounded outbound queue, the sharded topic registry, local PubSub fan-out and
// the small HTTP API for broadcasting from outside.
//
// hub knows nothing about scripts. What a frame means is decided by a Handler (the
// engine), which hub calls through the Handler, Session and Subscriber interfaces;
// cmd/luachan wires the two together.
//
// # Locks
//
//	shard.subMu  serialises Subscribe/Unsubscribe of one registry shard, and their PubSub calls
//	shard.mu     the shard's topic map; Broadcast takes it for reading only
//	Hub.mu       the connection set, the socket-id index and the shutdown flag
//	Conn.mu      one connection's outbound queue and close state
//
// Each guards only the fields documented next to it, and nothing slow (I/O, callbacks
// into the engine) runs while one is held, with one exception: shard.subMu is held
// across PubSub.Subscribe/Unsubscribe, so that a topic's first subscribe and last
// unsubscribe reach the PubSub in the order they happened; broadcasts never wait for it.
//
// Lock order: shard.subMu before shard.mu before Conn.mu (SubscribeAfter queues a join
// reply under shard.mu, so that no broadcast can slip in ahead of it). No other two are
// ever held together:
// Broadcast copies a topic's subscribers under shard.mu and queues to them after
// releasing it; Disconnect and Shutdown copy the connections they need under Hub.mu
// and close them after releasing it.
//
// # Goroutines
//
// Every connection runs on the net/http handler goroutine that accepted it (which
// becomes its reader) plus one writer goroutine that the reader starts and waits for.
// The Hub counts both in a WaitGroup, so Shutdown returns only once every Session.Closed
// has returned and every connection goroutine has exited.
package hub
