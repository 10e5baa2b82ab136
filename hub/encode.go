package hub

import (
	"unicode/utf8"
)

// emptyObject is the payload sent when a message has none.
var emptyObject = []byte("{}")

// frameOverhead is a generous estimate of the JSON punctuation around the fields of a
// frame, used to size buffers so that encoding rarely grows them.
const frameOverhead = 64

// Encode returns the body of the server frame for m in format f (without the WebSocket
// header) and whether it must go out as a binary frame. m.Payload must be JSON object
// text (nil means {}), or raw bytes when m.Binary. It fails with ErrBinaryV1 for a
// binary message in V1 and with ErrFieldTooLong for binary fields over 255 bytes.
func Encode(m *Message, f Format) (data []byte, binary bool, err error) {
	wf, err := encodeMessage(m, f)
	if err != nil {
		return nil, false, err
	}
	return wf.buf[wf.body:], m.Binary, nil
}

// encodeMessage frames m for a connection speaking f.
func encodeMessage(m *Message, f Format) (wireFrame, error) {
	hint := len(m.JoinRef) + len(m.Ref) + len(m.Topic) + len(m.Event) + len(m.Payload) + frameOverhead
	buf := newFrameBuf(hint)
	if m.Binary {
		if f != V2 {
			return wireFrame{}, ErrBinaryV1
		}
		buf, err := appendBinaryPush(buf, m.JoinRef, m.Topic, m.Event, m.Payload)
		if err != nil {
			return wireFrame{}, err
		}
		return finishFrame(buf, opBinary), nil
	}
	buf = appendHead(buf, f, m.JoinRef, m.Ref, m.Topic, m.Event)
	buf = appendPayload(buf, m.Payload)
	buf = appendTail(buf, f, m.Ref)
	return finishFrame(buf, opText), nil
}

// encodeReply frames [joinRef, ref, topic, "phx_reply", {"status":..,"response":..}]
// for f, or a V2 binary reply (kind 1) when binary.
func encodeReply(f Format, joinRef, ref, topic, status string, response []byte, binary bool) (wireFrame, error) {
	hint := len(joinRef) + len(ref) + len(topic) + len(status) + len(response) + 2*frameOverhead
	buf := newFrameBuf(hint)
	if binary {
		if f != V2 {
			return wireFrame{}, ErrBinaryV1
		}
		buf, err := appendBinaryReply(buf, joinRef, ref, topic, status, response)
		if err != nil {
			return wireFrame{}, err
		}
		return finishFrame(buf, opBinary), nil
	}
	buf = appendHead(buf, f, joinRef, ref, topic, replyEvent)
	buf = append(buf, `{"status":`...)
	buf = appendString(buf, status)
	buf = append(buf, `,"response":`...)
	buf = appendPayload(buf, response)
	buf = append(buf, '}')
	buf = appendTail(buf, f, ref)
	return finishFrame(buf, opText), nil
}

// encodeBroadcast frames the broadcast [null, ref, topic, event, payload] for f, or a
// V2 binary broadcast (kind 2, which has no ref) when binary.
func encodeBroadcast(f Format, topic, event, ref string, payload []byte, binary bool) (wireFrame, error) {
	buf := newFrameBuf(len(topic) + len(event) + len(ref) + len(payload) + frameOverhead)
	if binary {
		if f != V2 {
			return wireFrame{}, ErrBinaryV1
		}
		buf, err := appendBinaryBroadcast(buf, topic, event, payload)
		if err != nil {
			return wireFrame{}, err
		}
		return finishFrame(buf, opBinary), nil
	}
	buf = appendHead(buf, f, "", ref, topic, event)
	buf = appendPayload(buf, payload)
	buf = appendTail(buf, f, ref)
	return finishFrame(buf, opText), nil
}

// appendHead appends everything of a text frame that comes before the payload:
// `[jr,ref,"topic","event",` in V2, `{"topic":..,"event":..,"payload":` in V1 (which
// never carries join_ref; its ref goes after the payload, see appendTail).
func appendHead(buf []byte, f Format, joinRef, ref, topic, event string) []byte {
	if f == V1 {
		buf = append(buf, `{"topic":`...)
		buf = appendString(buf, topic)
		buf = append(buf, `,"event":`...)
		buf = appendString(buf, event)
		return append(buf, `,"payload":`...)
	}
	buf = append(buf, '[')
	buf = appendRef(buf, joinRef)
	buf = append(buf, ',')
	buf = appendRef(buf, ref)
	buf = append(buf, ',')
	buf = appendString(buf, topic)
	buf = append(buf, ',')
	buf = appendString(buf, event)
	return append(buf, ',')
}

// appendTail closes a text frame after its payload.
func appendTail(buf []byte, f Format, ref string) []byte {
	if f == V1 {
		buf = append(buf, `,"ref":`...)
		buf = appendRef(buf, ref)
		return append(buf, '}')
	}
	return append(buf, ']')
}

// appendPayload appends a JSON payload, {} when there is none.
func appendPayload(buf, payload []byte) []byte {
	if len(payload) == 0 {
		payload = emptyObject
	}
	return append(buf, payload...)
}

// appendRef appends a ref: null when empty, else a JSON string.
func appendRef(buf []byte, ref string) []byte {
	if ref == "" {
		return append(buf, "null"...)
	}
	return appendString(buf, ref)
}

// hexDigits spells the \u00XX escapes of control characters.
const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, so the result
// is always valid JSON whatever s holds.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				buf = append(buf, s[start:i]...)
				buf = append(buf, `\ufffd`...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		buf = append(buf, s[start:i]...)
		switch c {
		case '"', '\\':
			buf = append(buf, '\\', c)
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		i++
		start = i
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// appendBinaryPush appends a server push: kind 0, u8 lengths of join_ref, topic and
// event, those strings, then data. A push carries no ref.
func appendBinaryPush(buf []byte, joinRef, topic, event string, data []byte) ([]byte, error) {
	if !fitsU8(joinRef, topic, event) {
		return nil, ErrFieldTooLong
	}
	buf = append(buf, binaryKindPush, byte(len(joinRef)), byte(len(topic)), byte(len(event)))
	buf = append(buf, joinRef...)
	buf = append(buf, topic...)
	buf = append(buf, event...)
	return append(buf, data...), nil
}

// appendBinaryReply appends a reply: kind 1, u8 lengths of join_ref, ref, topic and
// status, those strings, then data.
func appendBinaryReply(buf []byte, joinRef, ref, topic, status string, data []byte) ([]byte, error) {
	if !fitsU8(joinRef, ref, topic, status) {
		return nil, ErrFieldTooLong
	}
	buf = append(buf, binaryKindReply, byte(len(joinRef)), byte(len(ref)), byte(len(topic)), byte(len(status)))
	buf = append(buf, joinRef...)
	buf = append(buf, ref...)
	buf = append(buf, topic...)
	buf = append(buf, status...)
	return append(buf, data...), nil
}

// appendBinaryBroadcast appends a broadcast: kind 2, u8 lengths of topic and event,
// those strings, then data.
func appendBinaryBroadcast(buf []byte, topic, event string, data []byte) ([]byte, error) {
	if !fitsU8(topic, event) {
		return nil, ErrFieldTooLong
	}
	buf = append(buf, binaryKindBroadcast, byte(len(topic)), byte(len(event)))
	buf = append(buf, topic...)
	buf = append(buf, event...)
	return append(buf, data...), nil
}

// fitsU8 reports whether every field is short enough for a u8 length.
func fitsU8(fields ...string) bool {
	for _, f := range fields {
		if len(f) > maxBinaryField {
			return false
		}
	}
	return true
}
