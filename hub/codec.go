package hub

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// Layout of V2 binary frames (Phoenix's serializer.js and V2.JSONSerializer).
const (
	binaryKindPush      = 0   // client or server push: join_ref, [ref,] topic, event, data
	binaryKindReply     = 1   // server reply: join_ref, ref, topic, status, data
	binaryKindBroadcast = 2   // server broadcast: topic, event, data
	binaryPushHeader    = 5   // kind + 4 u8 lengths of a client push
	maxBinaryField      = 255 // longest string a u8 length can describe
)

// DefaultMaxDepth is the default nesting limit of an inbound payload; the payload object
// itself is level 1.
const DefaultMaxDepth = 64

// Decode parses one client frame in format f. binary says the frame arrived as a
// WebSocket binary frame (a V2 binary push). Payloads nesting deeper than maxDepth
// (0 means DefaultMaxDepth) are refused. Every error wraps ErrBadFrame; a text frame that
// is not valid UTF-8 yields ErrBadUTF8. Decode never panics, whatever data holds, and the
// returned Message shares no memory with data.
func Decode(data []byte, f Format, binary bool, maxDepth int) (*Message, error) {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	if binary {
		if f != V2 {
			return nil, badFrame("binary frame on a V1 connection")
		}
		return decodeBinary(data, maxDepth)
	}
	if !utf8.Valid(data) {
		return nil, ErrBadUTF8
	}
	if f == V2 {
		return decodeV2(data, maxDepth)
	}
	return decodeV1(data, maxDepth)
}

// badFrame returns a bad-frame error saying what was wrong.
func badFrame(why string) error {
	return badFrameError{"hub: bad frame: " + why}
}

// decodeV2 parses [join_ref, ref, topic, event, payload].
func decodeV2(data []byte, maxDepth int) (*Message, error) {
	s := scanner{data: data, maxDepth: maxDepth}
	if !s.consume('[') {
		return nil, badFrame("not a JSON array")
	}
	m := &Message{}
	var ok bool
	if m.JoinRef, ok = s.ref(); !ok || !s.next() {
		return nil, s.error()
	}
	if m.Ref, ok = s.ref(); !ok || !s.next() {
		return nil, s.error()
	}
	if m.Topic, ok = s.str("topic"); !ok || !s.next() {
		return nil, s.error()
	}
	if m.Event, ok = s.str("event"); !ok || !s.next() {
		return nil, s.error()
	}
	if m.Payload, ok = s.payload(); !ok || !s.rest() {
		return nil, s.error()
	}
	if !s.end() {
		return nil, badFrame("data after the frame")
	}
	m.nullPayloadIsEmpty()
	return m, nil
}

// next consumes the comma between two of a V2 frame's first 5 elements.
func (s *scanner) next() bool {
	if !s.consume(',') {
		return s.fail("not an array of at least 5 elements")
	}
	return true
}

// rest validates and skips the elements of a V2 frame after its payload, up to and
// including the closing bracket: Phoenix ignores them ([jr, r, t, e, p | _]).
func (s *scanner) rest() bool {
	for !s.consume(']') {
		if !s.consume(',') {
			return s.fail("invalid JSON array")
		}
		if !s.value(0) {
			return false
		}
	}
	return true
}

// decodeV1 parses {"topic","event","payload","ref"[,"join_ref"]}. Keys match exactly;
// unknown keys are ignored, as Phoenix does, and a repeated key counts with its last
// value, as in encoding/json.
func decodeV1(data []byte, maxDepth int) (*Message, error) {
	s := scanner{data: data, maxDepth: maxDepth}
	if !s.consume('{') {
		return nil, badFrame("not a JSON object")
	}
	m := &Message{}
	var hasTopic, hasEvent bool
	for done := s.consume('}'); !done; {
		key, ok := s.str("object key")
		if !ok || !s.colon() {
			return nil, s.error()
		}
		switch key {
		case "topic":
			m.Topic, ok = s.str("topic")
			hasTopic = true
		case "event":
			m.Event, ok = s.str("event")
			hasEvent = true
		case "payload":
			m.Payload, ok = s.payload()
		case "ref":
			m.Ref, ok = s.ref()
		case "join_ref":
			m.JoinRef, ok = s.ref()
		default:
			ok = s.value(0)
		}
		if !ok {
			return nil, s.error()
		}
		if done = s.consume('}'); !done && !s.consume(',') {
			return nil, badFrame("invalid JSON object")
		}
	}
	if !s.end() {
		return nil, badFrame("data after the frame")
	}
	switch {
	case !hasTopic:
		return nil, badFrame("no topic")
	case !hasEvent:
		return nil, badFrame("no event")
	case m.Payload == nil:
		return nil, badFrame("no payload")
	}
	m.nullPayloadIsEmpty()
	return m, nil
}

// checkPayload verifies that p is a JSON object nesting at most maxDepth levels (what
// the HTTP API accepts for a broadcast).
func checkPayload(p []byte, maxDepth int) error {
	s := scanner{data: p, maxDepth: maxDepth}
	if s.peek() != '{' {
		return badFrame("payload is not an object")
	}
	if _, ok := s.payload(); !ok {
		return s.error()
	}
	if !s.end() {
		return badFrame("data after the payload")
	}
	return nil
}

// decodeBinary parses a client's V2 binary push: kind 0, u8 lengths of join_ref, ref,
// topic and event, those strings, then the payload bytes; or realtime-js's kind 3 (see
// decodeUserPush).
func decodeBinary(data []byte, maxDepth int) (*Message, error) {
	if len(data) < binaryPushHeader {
		return nil, badFrame("binary frame shorter than its header")
	}
	if data[0] == binaryKindUserPush {
		return decodeUserPush(data, maxDepth)
	}
	if data[0] != binaryKindPush {
		return nil, badFrame(fmt.Sprintf("binary frame of kind %d from a client", data[0]))
	}
	var fields [4]string
	off := binaryPushHeader
	for i := range fields {
		n := int(data[1+i])
		if off+n > len(data) {
			return nil, badFrame("binary frame lengths overrun the frame")
		}
		field := data[off : off+n]
		if !utf8.Valid(field) {
			return nil, ErrBadUTF8
		}
		fields[i] = string(field)
		off += n
	}
	return &Message{
		JoinRef: fields[0],
		Ref:     fields[1],
		Topic:   fields[2],
		Event:   fields[3],
		Payload: bytes.Clone(data[off:]),
		Binary:  true,
	}, nil
}
