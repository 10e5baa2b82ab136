package main

// The Phoenix V2 JSON frames the tool reads and writes. Both sides of every
// benchmark are this tool's own code or luachan, so the scanner is a fast,
// allocation-free reader of well-formed frames, not a validating JSON parser.

import (
	"bytes"
	"errors"
	"strconv"
)

// errFrame is a frame that is not a five-element V2 array.
var errFrame = errors.New("bench: not a Phoenix V2 frame")

// frame is one V2 frame [join_ref, ref, topic, event, payload]. The string
// fields hold the raw bytes between the quotes (still JSON-escaped) and are
// nil for null; payload is the raw JSON value. All slices alias the input.
type frame struct {
	joinRef, ref, topic, event []byte
	payload                    []byte
}

// parseFrame scans b as a V2 frame without allocating.
func parseFrame(b []byte) (frame, error) {
	var f frame
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return f, errFrame
	}
	i++
	for n := 0; n < 5; n++ {
		i = skipSpace(b, i)
		if i >= len(b) {
			return f, errFrame
		}
		start := i
		end, err := skipValue(b, i)
		if err != nil {
			return f, err
		}
		if n < 4 {
			var s []byte
			switch {
			case b[start] == '"':
				s = b[start+1 : end-1]
			case bytes.Equal(b[start:end], []byte("null")):
			default:
				return f, errFrame
			}
			switch n {
			case 0:
				f.joinRef = s
			case 1:
				f.ref = s
			case 2:
				f.topic = s
			case 3:
				f.event = s
			}
		} else {
			f.payload = b[start:end]
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return f, errFrame
		}
		want := byte(',')
		if n == 4 {
			want = ']'
		}
		if b[i] != want {
			return f, errFrame
		}
		i++
	}
	if f.topic == nil || f.event == nil || len(f.payload) == 0 {
		return f, errFrame
	}
	return f, nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, error) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, errFrame
}

// skipValue returns the index just past the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return 0, errFrame
	default:
		start := i
		for i < len(b) && b[i] != ',' && b[i] != ']' && b[i] != '}' && b[i] != ' ' && b[i] != '\n' && b[i] != '\r' && b[i] != '\t' {
			i++
		}
		if i == start {
			return 0, errFrame
		}
		return i, nil
	}
}

// payloadInt finds the top-level-looking member key in a payload object and
// parses its integer value, quoted or not. The bench payloads hold only short
// keys and a pad of 'x', so a plain search cannot be fooled.
func payloadInt(p []byte, key string) (int64, bool) {
	k := len(key)
	for i := 0; i+k+2 <= len(p); {
		j := bytes.IndexByte(p[i:], '"')
		if j < 0 {
			return 0, false
		}
		i += j
		if i+k+2 <= len(p) && p[i+k+1] == '"' && string(p[i+1:i+1+k]) == key {
			v := skipSpace(p, i+k+2)
			if v < len(p) && p[v] == ':' {
				v = skipSpace(p, v+1)
				if v < len(p) && p[v] == '"' {
					v++
				}
				end := v
				for end < len(p) && (p[end] >= '0' && p[end] <= '9' || end == v && p[end] == '-') {
					end++
				}
				n, err := strconv.ParseInt(string(p[v:end]), 10, 64)
				return n, err == nil
			}
		}
		end, err := skipString(p, i)
		if err != nil {
			return 0, false
		}
		i = end
	}
	return 0, false
}

// replyOK reports whether a phx_reply payload has status "ok".
func replyOK(p []byte) bool {
	return bytes.Contains(p, []byte(`"status":"ok"`)) || bytes.Contains(p, []byte(`"status": "ok"`))
}

// appendStr appends s as a JSON string (s is already escaped), or null when nil.
func appendStr(dst, s []byte) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendFrame appends the V2 frame [joinRef, ref, topic, event, payload].
func appendFrame(dst, joinRef, ref, topic, event, payload []byte) []byte {
	dst = append(dst, '[')
	dst = appendStr(dst, joinRef)
	dst = append(dst, ',')
	dst = appendStr(dst, ref)
	dst = append(dst, ',')
	dst = appendStr(dst, topic)
	dst = append(dst, ',')
	dst = appendStr(dst, event)
	dst = append(dst, ',')
	dst = append(dst, payload...)
	return append(dst, ']')
}

// appendReply appends the phx_reply answering ref with status and response.
func appendReply(dst, joinRef, ref, topic []byte, status string, response []byte) []byte {
	dst = append(dst, '[')
	dst = appendStr(dst, joinRef)
	dst = append(dst, ',')
	dst = appendStr(dst, ref)
	dst = append(dst, ',')
	dst = appendStr(dst, topic)
	dst = append(dst, `,"phx_reply",{"status":"`...)
	dst = append(dst, status...)
	dst = append(dst, `","response":`...)
	dst = append(dst, response...)
	return append(dst, "}]"...)
}

// benchPayload appends a JSON object of exactly size bytes (or the smallest
// possible when size is too small): the sequence number s, the send time t in
// Unix nanoseconds (a string: Lua numbers are doubles), and a pad of 'x'.
func benchPayload(dst []byte, seq int64, sentNs int64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"s":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"t":"`...)
	dst = strconv.AppendInt(dst, sentNs, 10)
	dst = append(dst, `","p":"`...)
	pad := size - (len(dst) - start) - 2
	for ; pad > 0; pad-- {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}
