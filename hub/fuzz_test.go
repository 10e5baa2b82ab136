package hub_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/luachan/luachan/hub"
)

// FuzzDecode feeds arbitrary frames to the decoder. It must never panic, must accept
// exactly the text frames that encoding/json-based reference decoding accepts (and
// decode them the same way), and what it accepts must survive an encode/decode round
// trip. Seeds: testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`["1","2","rooms:lobby","phx_join",{"user":"u"}]`), false, true)
	f.Add([]byte(`{"topic":"t","event":"e","payload":{},"ref":"1"}`), false, false)
	f.Add([]byte("\x00\x02\x03\x05\x05"+"12"+"123"+"topic"+"event"+"efg"), true, true)
	f.Add([]byte("\x03\x01\x01\x01\x01\x00\x01"+"12te"+`{"x":[1]}`), true, true)                 // realtime-js user broadcast, JSON
	f.Add([]byte("\x03\x00\x00\x01\x01\x10\x00"+"te"+`{"persist":true}`+"\x00\xff"), true, true) // binary, with metadata
	f.Add([]byte("\x03\x00\x00\x01\x01\x0f\x01"+"te"+`{"payload":{}} `+`"s"`), true, true)       // metadata naming a key
	f.Fuzz(func(t *testing.T, data []byte, binary, v2 bool) {
		format := hub.V1
		if v2 {
			format = hub.V2
		}
		const maxDepth = 8
		m, err := hub.Decode(data, format, binary, maxDepth)
		if binary {
			checkBinary(t, data, format, m, err)
			return
		}

		want, ok, comparable := referenceDecode(data, format, maxDepth)
		if comparable && ok != (err == nil) {
			t.Fatalf("Decode(%q) error %v; reference accepts: %v", data, err, ok)
		}
		if err != nil {
			return
		}
		if comparable && !sameMessage(m, want) {
			t.Fatalf("Decode(%q) = %+v, reference %+v", data, m, want)
		}

		// Round trip: the server's encoding of the message decodes to the same message
		// (less join_ref in V1, which never sends it).
		enc, _, err := hub.Encode(m, format)
		if err != nil {
			t.Fatalf("cannot encode decoded message %+v: %v", m, err)
		}
		m2, err := hub.Decode(enc, format, false, maxDepth)
		if err != nil {
			t.Fatalf("re-encoded frame %q does not decode: %v", enc, err)
		}
		if format == hub.V1 {
			m.JoinRef = ""
		}
		if !sameMessage(m, m2) {
			t.Fatalf("round trip changed %+v into %+v", m, m2)
		}
	})
}

// checkBinary checks the decoding of a binary frame against its header.
func checkBinary(t *testing.T, data []byte, format hub.Format, m *hub.Message, err error) {
	t.Helper()
	if err != nil {
		return
	}
	if format == hub.V1 {
		t.Fatalf("accepted a binary frame in V1")
	}
	if data[0] == 3 {
		checkUserPush(t, data, m)
		return
	}
	rebuilt := []byte{0, byte(len(m.JoinRef)), byte(len(m.Ref)), byte(len(m.Topic)), byte(len(m.Event))}
	for _, s := range []string{m.JoinRef, m.Ref, m.Topic, m.Event, string(m.Payload)} {
		rebuilt = append(rebuilt, s...)
	}
	if !m.Binary || !bytes.Equal(rebuilt, data) {
		t.Fatalf("binary frame %q decoded as %+v", data, m)
	}
}

// checkUserPush checks the decoding of realtime-js's kind 3 against its header: a
// binary payload is the event itself; a JSON one is the "broadcast" event realtime-js
// sends as text, holding the metadata's members and the user's event and payload, and
// it goes out and comes back as a V2 text frame within the same depth limit.
func checkUserPush(t *testing.T, data []byte, m *hub.Message) {
	t.Helper()
	var fields [5]string
	off := 7
	for i := range fields {
		n := int(data[1+i])
		fields[i] = string(data[off : off+n])
		off += n
	}
	if m.JoinRef != fields[0] || m.Ref != fields[1] || m.Topic != fields[2] {
		t.Fatalf("user push %q decoded as %+v", data, m)
	}
	if data[6] == 0 {
		if !m.Binary || m.Event != fields[3] || !bytes.Equal(m.Payload, data[off:]) {
			t.Fatalf("binary user push %q decoded as %+v", data, m)
		}
		return
	}
	var got, meta map[string]any
	var user any
	if m.Binary || m.Event != "broadcast" || json.Unmarshal(m.Payload, &got) != nil || json.Unmarshal(data[off:], &user) != nil ||
		got["type"] != "broadcast" || got["event"] != fields[3] || !reflect.DeepEqual(got["payload"], user) {
		t.Fatalf("user push %q decoded as %+v (payload %s)", data, m, m.Payload)
	}
	if fields[4] != "" {
		if err := json.Unmarshal([]byte(fields[4]), &meta); err != nil {
			t.Fatalf("accepted metadata %q: %v", fields[4], err)
		}
		for k, v := range meta {
			if k != "type" && k != "event" && k != "payload" && !reflect.DeepEqual(got[k], v) {
				t.Fatalf("metadata %q became %s", fields[4], m.Payload)
			}
		}
	}
	enc, _, err := hub.Encode(m, hub.V2)
	if err != nil {
		t.Fatal(err)
	}
	if m2, err := hub.Decode(enc, hub.V2, false, 8); err != nil || !sameMessage(m, m2) {
		t.Fatalf("user push %q as text %q: %+v, %v", data, enc, m2, err)
	}
}

func sameMessage(a, b *hub.Message) bool {
	return a.JoinRef == b.JoinRef && a.Ref == b.Ref && a.Topic == b.Topic && a.Event == b.Event &&
		a.Binary == b.Binary && bytes.Equal(a.Payload, b.Payload)
}

// referenceDecode decodes a text frame with encoding/json, the slow obvious way. It is
// not comparable for a V1 object with a repeated top-level key, where the hub stops at
// the first bad value and encoding/json keeps the last.
func referenceDecode(data []byte, f hub.Format, maxDepth int) (m *hub.Message, ok, comparable bool) {
	if !utf8.Valid(data) || !json.Valid(data) || nesting(data) > maxDepth+1 {
		return nil, false, true
	}
	m = &hub.Message{}
	var payload json.RawMessage
	if f == hub.V2 {
		var parts []json.RawMessage
		if json.Unmarshal(data, &parts) != nil || len(parts) < 5 { // Phoenix ignores the rest
			return nil, false, true
		}
		ok = refOf(parts[0], &m.JoinRef) && refOf(parts[1], &m.Ref) &&
			strOf(parts[2], &m.Topic) && strOf(parts[3], &m.Event)
		payload = parts[4]
	} else {
		var obj map[string]json.RawMessage
		if json.Unmarshal(data, &obj) != nil || obj == nil {
			return nil, false, true
		}
		if hasRepeatedKey(data) {
			return nil, false, false
		}
		_, hasPayload := obj["payload"]
		ok = hasPayload && strOf(obj["topic"], &m.Topic) && strOf(obj["event"], &m.Event) &&
			refOf(obj["ref"], &m.Ref) && refOf(obj["join_ref"], &m.JoinRef)
		payload = obj["payload"]
	}
	m.Payload = bytes.TrimSpace(payload)
	if !ok || len(m.Payload) == 0 {
		return nil, false, true
	}
	switch m.Event {
	case "heartbeat", "phx_join", "phx_leave":
		if string(m.Payload) == "null" {
			m.Payload = []byte("{}") // SPEC section 2: null counts as {} there
		}
	}
	return m, true, true
}

// refOf decodes a ref (string, number as its text, or null/absent as "").
func refOf(raw json.RawMessage, dst *string) bool {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return true
	case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9':
		*dst = string(raw)
		return true
	}
	return strOf(raw, dst)
}

// strOf decodes a JSON string.
func strOf(raw json.RawMessage, dst *string) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, dst) == nil
}

// nesting returns the deepest nesting of objects and arrays in valid JSON text p.
func nesting(p []byte) int {
	depth, deepest := 0, 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '{', '[':
			depth++
			deepest = max(deepest, depth)
		case '}', ']':
			depth--
		case '"':
			for i++; i < len(p) && p[i] != '"'; i++ {
				if p[i] == '\\' {
					i++
				}
			}
		}
	}
	return deepest
}

// hasRepeatedKey reports whether the valid JSON object data repeats a top-level key.
func hasRepeatedKey(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	seen := map[string]bool{}
	depth, wantKey := 0, false
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if d, isDelim := tok.(json.Delim); isDelim {
			if d == '{' || d == '[' {
				depth++
				wantKey = depth == 1 // the top-level object opened
			} else {
				depth--
				wantKey = depth == 1 // a nested value of a top-level key ended
			}
			continue
		}
		if depth != 1 {
			continue
		}
		if wantKey {
			key := tok.(string)
			if seen[key] {
				return true
			}
			seen[key] = true
		}
		wantKey = !wantKey // after a key comes its value; after a scalar value, a key
	}
}
