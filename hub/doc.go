// Package hub owns luachan's client connections: the Phoenix wire codec (V1 JSON,
// V2 JSON and V2 binary, with Supabase realtime-js's user broadcast kinds 3 and 4), WebSocket connections with one reader goroutine each and at
// most one writer at a time (the hub reads and writes RFC 6455 frames itself;
// gorilla/websocket only performs the handshake; see Goroutines below), Phoenix's LongPoll transport for clients that cannot
// use WebSockets, per-connection limits (frame size, inbound message rate, a
// bytes-bounded outbound queue, idle timeout), the sharded topic registry and broadcast
// to local subscribers.
//
// hub is transport and routing only, and imports nothing of luachan's. What a frame
// means is decided by a Handler (the engine), which hub calls through the Handler,
// Session and Subscriber interfaces; broadcasts reach other nodes through a PubSub, an
// adapter in a package of its own (hub/redis); the HTTP API is httpapi's. cmd/luachan
// wires them together.
//
// # Locks
//
//	shard.subMu  serialises Subscribe/Unsubscribe of one registry shard, and their PubSub calls
//	shard.mu     the shard's topic map; Broadcast takes it for reading only
//	Hub.mu       the connection set, the socket-id index, the LongPoll tokens and the shutdown flag
//	writer.mu    one connection's outbound queue, writer state, corks and close request
//	             (Conn.w; it also guards a LongPoll's unsent frames)
//	longPoll.handleMu  serialises one LongPoll session's POSTed frames, and its end
//	flushQueue.mu      the writers waiting for a flusher; never held with any other
//	longPollSlots.mu   the LongPoll session counts, in all and by address; never held with any other
//	parker.mu          the parked connections and the poller's epoll set; never held with any other
//
// Each guards only the fields documented next to it, and nothing slow (I/O, callbacks
// into the engine) runs while one is held, with one exception: shard.subMu is held
// across PubSub.Subscribe/Unsubscribe, so that a topic's first subscribe and last
// unsubscribe reach the PubSub in the order they happened; broadcasts never wait for it.
//
// Lock order: longPoll.handleMu before shard.subMu before shard.mu before writer.mu
// (SubscribeAfter queues a join reply under shard.mu, so that no broadcast can slip in
// ahead of it; a LongPoll POST calls Session.Handle, which may subscribe, holding
// handleMu). No other two are ever held together:
// Broadcast copies a topic's subscribers under shard.mu and queues to them after
// releasing it; Disconnect and Close copy the connections they need under Hub.mu
// and close them after releasing it.
//
// # Goroutines
//
// Every WebSocket connection has one goroutine of its own, its reader (ServeHTTP
// returns after the upgrade, so net/http's per-request state is not kept), while its
// client is active: on Linux a reader quiet for a second parks (park.go), its goroutine
// ending, and the Hub's one poller goroutine (parker.poll, while anything is parked)
// starts a fresh one when the client sends, the idle deadline comes (a timer per parked
// connection), or the writer finishes a close. It has no
// writer goroutine while it has nothing to write. Its writer (writer.go, whose doc
// comment lists the states and who may write in each) hands the role of writing the
// socket to at most one goroutine at a time: the goroutine that sends a reply or push,
// with a write that never blocks (writerInline); one of at most GOMAXPROCS shared
// flushers for broadcasts, each writing every frame queued for a subscriber in one
// writev (writerFlushing); and only for a socket whose kernel buffer is full, or one
// that is closing, a writer goroutine (writeLoop, writerLooping) for as long as it has
// something to write. A LongPoll session has one goroutine of its own (runLongPoll),
// which ends it when it is closed or idle; its requests run on their net/http
// goroutines. The Hub counts all of them, and every
// request it admits, in a WaitGroup, so Close returns only once every Session.Closed
// has returned and every connection goroutine has exited (a parked connection counts as
// one). Rate limits need no goroutine or timer of their own per WebSocket: the token
// bucket refills lazily. The idle timeout is the reader's read deadline, and a parked
// connection's timer.
package hub
