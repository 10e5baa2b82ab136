// Package presence is Phoenix Presence for luachan (SPEC section 6): a Tracker of who
// is on each topic of this node, the one encoder of its wire shapes (presence_state and
// presence_diff), and the Replica interface and Entry type through which an adapter
// (hub/redis) shares the entries between nodes.
//
// It imports nothing of luachan's. The engine owns a Tracker whose owners are its
// channels and sends what the Tracker returns; a replica adapter encodes the leaves of
// dead nodes with EncodeDiff.
//
// # Locks and goroutines
//
// Tracker.mu guards the tracked entries and is a leaf: the replica is called, and the
// payloads are returned, after it is released. A Tracker starts no goroutine.
package presence
