// Package redis runs several luachan nodes on one Redis (SPEC sections 5 and 6): PubSub,
// the hub.PubSub that carries broadcasts between the nodes; Presence, the
// presence.Replica that shares presence entries and removes those of dead nodes;
// Store, luachan.store kept in Redis; and History, the topics' histories (SPEC section
// 10), whose append script positions, keeps and publishes a broadcast in one step; and
// TopicStates, the topic states of SPEC section 11, each owned by one node at a time under
// a lease, saved after every change, with the other nodes' calls forwarded to the owner.
// All five share one client, owned by PubSub.
//
// It implements interfaces its consumers declare (hub.PubSub, presence.Replica,
// luabind.Store) and imports neither the engine nor luabind; cmd/luachan wires it. Another
// broker is a sibling package implementing the same interfaces. go-redis is imported as
// goredis.
//
// # Locks
//
//	PubSub.mu      the wanted topics, the subscription batches and the connection state
//	Presence.mu    this node's own entries, to write them again after an outage
//	leaseEntry.op  one topic's lease steps and its Owned and Lost calls; before TopicStates.mu
//	TopicStates.mu the wanted topics and the forwarded calls waiting for replies; a leaf
//	ratelog.Limiter.mu  one rate-limited log line's counters; a leaf
//
// The hub calls PubSub.Subscribe and Unsubscribe holding a registry shard's subMu, so
// PubSub.mu comes after it. Nothing holding PubSub.mu or Presence.mu calls into the hub
// or Redis.
//
// # Goroutines
//
// Every type reads the same: Dial (PubSub; connects) or PubSub.Presence (no I/O) builds
// it, Start(ctx) starts its goroutines, Close(ctx) stops them and waits, giving up when
// ctx ends. PubSub.Start starts the publisher (publishLoop) and the subscriber
// (subscribeLoop), which runs one sync goroutine (syncLoop) per subscriber connection.
// On a Redis Cluster that connection is a shardedSub (client.go), one SSUBSCRIBE
// connection per master, each read by a goroutine of its own that the shardedSub's Close
// stops and waits for.
// Presence.Start starts its heartbeat and janitor (loop); Presence.Close, called before
// PubSub.Close (which closes the client they share), stops it and removes the heartbeat.
// History.Start starts its appender (appendLoop); History.Close, also before PubSub.Close,
// appends what is queued and stops it. TopicStates.Start subscribes to the node's own
// channel and starts the lease loop, the reader of that channel and the replier;
// TopicStates.Close, also before PubSub.Close, stops them and lets the node's leases go.
// History.Subscribed reads PubSub.mu's subscription
// state, as Subscribe does.
package redis
