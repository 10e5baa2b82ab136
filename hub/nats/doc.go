// Package nats runs several luachan nodes on one NATS server or cluster (SPEC sections 5,
// 6 and 12): PubSub, the hub.PubSub that carries broadcasts between the nodes over core
// NATS subjects; Presence, the presence.Replica that shares presence entries through a
// JetStream key-value bucket and removes those of dead nodes; and Store, luachan.store
// kept in another bucket. All three share one connection, owned by PubSub.
//
// It implements interfaces its consumers declare (hub.PubSub, presence.Replica,
// luabind.Store) and imports neither the engine nor luabind; cmd/luachan wires it. It is
// the sibling of hub/redis and mirrors its shape. nats.go is imported as natsgo.
//
// Subjects and buckets (every byte of a topic or key outside [A-Za-z0-9_-] is written
// =XX, so any topic maps to one valid subject token):
//
//	luachan.topic.<topic>        core NATS subject of a topic's broadcasts
//	luachan_presence             bucket: <topic>.<node>.<ref> -> {"key":..., "meta":...}
//	luachan_nodes                bucket, TTL = the presence TTL: <node> -> heartbeat
//	luachan_store                bucket: <key> -> luachan.store's value, as
//	                             "@<deadline, Unix ms> <value>" when it has a ttl
//
// # Locks
//
//	PubSub.mu      the topics wanted, the subscription batches and the connection state
//	Presence.mu    this node's own entries, to write them again after an outage
//	ratelog.Limiter.mu  one rate-limited log line's counters; a leaf
//
// The hub calls PubSub.Subscribe and Unsubscribe holding a registry shard's subMu, so
// PubSub.mu comes after it. Nothing holding PubSub.mu or Presence.mu calls into the hub
// or NATS: only the subscriber goroutine touches the connection's subscriptions, since
// nats.go holds the connection's lock while it tries to reconnect.
//
// # Goroutines
//
// Dial (connects) or PubSub.Presence (no I/O) builds a type, Start(ctx) starts its
// goroutines, Close(ctx) stops them and waits. PubSub.Start starts the publisher
// (publishLoop), which hands the publish queue in order to the connection, the
// subscriber (subscribeLoop), which makes the connection's subscriptions follow the
// topics wanted, and the deliverer (deliverLoop), which hands every subscribed subject's messages, in arrival
// order, to the hub; nats.go's own goroutines (reader, flusher, reconnect) belong to the
// connection, which PubSub.Close drains and closes. Presence.Start starts its heartbeat
// and janitor (loop); Presence.Close, called before PubSub.Close, stops it and removes
// the heartbeat.
package nats
