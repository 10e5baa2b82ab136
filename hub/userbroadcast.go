package hub

import (
	"bytes"
	"net/url"
	"unicode/utf8"
)

// Supabase's realtime-js speaks Phoenix V2 with two binary kinds of its own, for what it
// calls user broadcasts (its lib/serializer.js). On vsn=2.0.0 it sends every
// channel.send({type: "broadcast", event, payload}) as kind 3, and it decodes no binary
// frame but kind 4: Phoenix's kinds 0-2 would break it. So the hub decodes kind 3 from
// any V2 client, and a connection that looks like realtime-js (V2, with the apikey query
// parameter that RealtimeClient always sends) gets binary pushes and broadcasts as kind 4.
// Its JSON broadcasts stay text frames, which realtime-js reads like the server's own.
const (
	binaryKindUserPush      = 3 // client: join_ref, ref, topic, event, metadata, encoding, payload
	binaryKindUserBroadcast = 4 // server: topic, event, metadata, encoding, payload
	userPushHeader          = 7 // kind + 5 u8 lengths + the payload's encoding
	userPayloadBinary       = 0 // the payload is raw bytes (an ArrayBuffer)
	userPayloadJSON         = 1 // the payload is JSON text
	userBroadcastEvent      = "broadcast"
	realtimeJSParam         = "apikey" // query parameter that marks a realtime-js connection
)

// speaksUserBroadcasts reports whether a connection in format f with query q is
// realtime-js's, and must get its binary messages as kind 4.
func speaksUserBroadcasts(f Format, q url.Values) bool {
	return f == V2 && q.Has(realtimeJSParam)
}

// decodeUserPush parses realtime-js's kind 3: u8 lengths of join_ref, ref, topic, event
// and metadata, the payload's encoding byte, those strings, then the payload. A JSON
// payload becomes the event realtime-js sends as text on vsn=1.0.0,
// [join_ref, ref, topic, "broadcast", {...metadata, "type":"broadcast","event":E,"payload":P}];
// a binary one (which JSON cannot hold) becomes the binary event E itself, its metadata
// dropped, as a Phoenix client's binary push of E would be.
func decodeUserPush(data []byte, maxDepth int) (*Message, error) {
	if len(data) < userPushHeader {
		return nil, badFrame("binary frame shorter than its header")
	}
	var fields [5][]byte // join_ref, ref, topic, event, metadata
	off := userPushHeader
	for i := range fields {
		n := int(data[1+i])
		if off+n > len(data) {
			return nil, badFrame("binary frame lengths overrun the frame")
		}
		fields[i] = data[off : off+n]
		if !utf8.Valid(fields[i]) {
			return nil, ErrBadUTF8
		}
		off += n
	}
	m := &Message{
		JoinRef: string(fields[0]),
		Ref:     string(fields[1]),
		Topic:   string(fields[2]),
	}
	event, meta, payload := fields[3], fields[4], data[off:]
	switch data[6] {
	case userPayloadBinary:
		m.Event, m.Payload, m.Binary = string(event), bytes.Clone(payload), true
		return m, nil
	case userPayloadJSON:
	default:
		return nil, badFrame("user broadcast payload encoding is neither 0 (binary) nor 1 (JSON)")
	}
	if len(meta) > 0 {
		s := scanner{data: meta, maxDepth: maxDepth}
		if s.peek() != '{' || !s.value(0) || !s.end() {
			return nil, badFrame("user broadcast metadata is not a JSON object")
		}
	}
	if !utf8.Valid(payload) { // a text frame is checked whole before it is scanned
		return nil, ErrBadUTF8
	}
	s := scanner{data: payload, maxDepth: maxDepth}
	if !s.value(1) || !s.end() { // level 2: inside the event's payload object
		return nil, badFrame("user broadcast payload is not JSON")
	}
	m.Event = userBroadcastEvent
	m.Payload = appendUserPayload(make([]byte, 0, len(meta)+len(event)+len(payload)+48), string(event), meta, payload)
	return m, nil
}

// appendUserPayload appends {...meta,"type":"broadcast","event":event,"payload":payload}:
// the metadata's members first, so that none of them can replace the three named ones
// (a repeated key counts with its last value).
func appendUserPayload(buf []byte, event string, meta, payload []byte) []byte {
	buf = append(buf, '{')
	if members := bytes.TrimSpace(meta); len(members) > 2 {
		members = bytes.TrimSpace(members[1 : len(members)-1])
		if len(members) > 0 {
			buf = append(buf, members...)
			buf = append(buf, ',')
		}
	}
	buf = append(buf, `"type":"broadcast","event":`...)
	buf = appendString(buf, event)
	buf = append(buf, `,"payload":`...)
	buf = append(buf, payload...)
	return append(buf, '}')
}

// appendUserBroadcast appends realtime-js's kind 4 for a binary message: u8 lengths of
// topic, event and (empty) metadata, the binary encoding byte, the strings, then data.
func appendUserBroadcast(buf []byte, topic, event string, data []byte) ([]byte, error) {
	if !fitsU8(topic, event) {
		return nil, ErrFieldTooLong
	}
	buf = append(buf, binaryKindUserBroadcast, byte(len(topic)), byte(len(event)), 0, userPayloadBinary)
	buf = append(buf, topic...)
	buf = append(buf, event...)
	return append(buf, data...), nil
}

// encodeUserBroadcast frames a binary message as kind 4.
func encodeUserBroadcast(topic, event string, data []byte) (wireFrame, error) {
	buf, err := appendUserBroadcast(newFrameBuf(len(topic)+len(event)+len(data)+userPushHeader), topic, event, data)
	if err != nil {
		return wireFrame{}, err
	}
	return finishFrame(buf, opBinary), nil
}

// encodeFor frames m for c: a binary message as kind 4 when c speaks user broadcasts,
// else in c's format.
func (c *Conn) encodeFor(m *Message) (wireFrame, error) {
	if m.Binary && c.userBroadcasts {
		return encodeUserBroadcast(m.Topic, m.Event, m.Payload)
	}
	return encodeMessage(m, c.format)
}
