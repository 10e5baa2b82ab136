package presence

import (
	"bytes"
	"encoding/json"
	"sort"
)

// The events a tracker's changes are sent as, with the payload shapes of
// Phoenix.Presence so the JS client's Presence works unchanged:
//
//	presence_state {"<key>": {"metas": [{...meta, "phx_ref": "..."}]}}
//	presence_diff  {"joins": {...same shape}, "leaves": {...same shape}}
const (
	EventState = "presence_state"
	EventDiff  = "presence_diff"
)

// State is who is on a topic: key -> metas, each a JSON object with its phx_ref,
// oldest first.
type State map[string][][]byte

// Replica shares presence entries between nodes: this node puts and deletes its own,
// and lists the other nodes'. A Tracker without one is this node's only.
type Replica interface {
	// Put stores this node's meta (JSON with phx_ref) ref under key on topic.
	Put(topic, ref, key string, meta []byte) error
	// Del removes this node's meta ref from topic.
	Del(topic, ref string) error
	// List returns the other nodes' metas on topic.
	List(topic string) (State, error)
}

// Entry is one meta as a replica stores it: {"key": ..., "meta": {...}}.
type Entry struct {
	Key  string          `json:"key"`
	Meta json.RawMessage `json:"meta"`
}

// EncodeState encodes s as presence_state's payload, keys sorted.
func EncodeState(s State) []byte {
	var b bytes.Buffer
	writeState(&b, s)
	return b.Bytes()
}

// EncodeDiff encodes presence_diff's payload, keys sorted.
func EncodeDiff(joins, leaves State) []byte {
	var b bytes.Buffer
	b.WriteString(`{"joins":`)
	writeState(&b, joins)
	b.WriteString(`,"leaves":`)
	writeState(&b, leaves)
	b.WriteByte('}')
	return b.Bytes()
}

// keyDiff encodes a presence_diff of one key's joins and leaves.
func keyDiff(key string, joins, leaves [][]byte) []byte {
	var j, l State
	if len(joins) > 0 {
		j = State{key: joins}
	}
	if len(leaves) > 0 {
		l = State{key: leaves}
	}
	return EncodeDiff(j, l)
}

// writeState writes {"key":{"metas":[...]},...}, keys sorted.
func writeState(b *bytes.Buffer, s State) {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(k) // a Go string always marshals
		b.Write(name)
		b.WriteString(`:{"metas":[`)
		for j, m := range s[k] {
			if j > 0 {
				b.WriteByte(',')
			}
			b.Write(m)
		}
		b.WriteString(`]}`)
	}
	b.WriteByte('}')
}
