package hub_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/luachan/luachan/hub"
)

// userPush builds realtime-js's kind 3 as its lib/serializer.js _encodeUserBroadcastPush
// does: kind, u8 lengths of join_ref, ref, topic, event and metadata, the payload's
// encoding (0 binary, 1 JSON), the strings, then the payload.
func userPush(joinRef, ref, topic, event, meta string, encoding byte, payload string) []byte {
	b := []byte{3, byte(len(joinRef)), byte(len(ref)), byte(len(topic)), byte(len(event)), byte(len(meta)), encoding}
	b = append(b, joinRef+ref+topic+event+meta...)
	return append(b, payload...)
}

// userBroadcast builds the kind 4 realtime-js decodes (_decodeUserBroadcast): kind, u8
// lengths of topic, event and metadata, the encoding, the strings, then the payload.
func userBroadcast(topic, event string, payload string) []byte {
	b := []byte{4, byte(len(topic)), byte(len(event)), 0, 0}
	b = append(b, topic+event...)
	return append(b, payload...)
}

func TestDecodeUserBroadcastPush(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		want  hub.Message
	}{
		{"JSON payload", userPush("1", "2", "realtime:room", "cursor", "", 1, `{"x":1}`),
			hub.Message{JoinRef: "1", Ref: "2", Topic: "realtime:room", Event: "broadcast",
				Payload: []byte(`{"type":"broadcast","event":"cursor","payload":{"x":1}}`)}},
		{"metadata first, never over the named keys", userPush("1", "", "t", "e", `{"persist":true,"event":"x"}`, 1, `[1,"é"]`),
			hub.Message{JoinRef: "1", Topic: "t", Event: "broadcast",
				Payload: []byte(`{"persist":true,"event":"x","type":"broadcast","event":"e","payload":[1,"é"]}`)}},
		{"empty metadata object", userPush("", "", "t", "", `{}`, 1, `null`),
			hub.Message{Topic: "t", Event: "broadcast", Payload: []byte(`{"type":"broadcast","event":"","payload":null}`)}},
		{"event name escaped", userPush("", "", "t", `a"b`, "", 1, `{}`),
			hub.Message{Topic: "t", Event: "broadcast", Payload: []byte(`{"type":"broadcast","event":"a\"b","payload":{}}`)}},
		{"binary payload is the event itself", userPush("1", "2", "t", "blob", `{"persist":true}`, 0, "\x00\xff"),
			hub.Message{JoinRef: "1", Ref: "2", Topic: "t", Event: "blob", Payload: []byte("\x00\xff"), Binary: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := hub.Decode(tc.frame, hub.V2, true, 0)
			if err != nil {
				t.Fatal(err)
			}
			if m.JoinRef != tc.want.JoinRef || m.Ref != tc.want.Ref || m.Topic != tc.want.Topic || m.Event != tc.want.Event ||
				m.Binary != tc.want.Binary || !bytes.Equal(m.Payload, tc.want.Payload) {
				t.Fatalf("got %+v (payload %s), want %+v (payload %s)", m, m.Payload, tc.want, tc.want.Payload)
			}
		})
	}

	for _, tc := range []struct {
		name  string
		frame []byte
		utf8  bool
	}{
		{"short", []byte{3, 0, 0, 1, 0, 0}, false},
		{"overrun", userPush("", "", "t", "e", "", 1, "")[:8], false},
		{"unknown encoding", userPush("", "", "t", "e", "", 2, `{}`), false},
		{"payload not JSON", userPush("", "", "t", "e", "", 1, `{"a":`), false},
		{"empty JSON payload", userPush("", "", "t", "e", "", 1, ``), false},
		{"data after the payload", userPush("", "", "t", "e", "", 1, `{} {}`), false},
		{"metadata not an object", userPush("", "", "t", "e", `[1]`, 1, `{}`), false},
		{"metadata not JSON", userPush("", "", "t", "e", `{"a"`, 1, `{}`), false},
		{"payload too deep", userPush("", "", "t", "e", "", 1, strings.Repeat("[", 64)+strings.Repeat("]", 64)), false},
		{"bad UTF-8 event", userPush("", "", "t", "\xff", "", 1, `{}`), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := hub.Decode(tc.frame, hub.V2, true, 0)
			if !errors.Is(err, hub.ErrBadFrame) {
				t.Fatalf("got %v, want ErrBadFrame", err)
			}
			if tc.utf8 != errors.Is(err, hub.ErrBadUTF8) {
				t.Fatalf("got %v; ErrBadUTF8 wanted: %v", err, tc.utf8)
			}
		})
	}
	// 63 levels of user payload inside the event's payload object is the limit.
	deep := strings.Repeat("[", 63) + strings.Repeat("]", 63)
	if _, err := hub.Decode(userPush("", "", "t", "e", "", 1, deep), hub.V2, true, 0); err != nil {
		t.Errorf("63 levels: %v", err)
	}
}

// TestUserBroadcastKind4: a connection with realtime-js's apikey parameter gets binary
// broadcasts and pushes as kind 4, which is all it can decode; a Phoenix V2 client on
// the same topic still gets kind 2, and JSON broadcasts are the same text for both.
func TestUserBroadcastKind4(t *testing.T) {
	ts := startServer(t, hub.Config{})
	rt := ts.dial(t, "vsn=2.0.0&apikey=anon")
	phx := ts.dial(t, "vsn=2.0.0")
	ts.join(rt, "realtime:room")
	ts.join(phx, "realtime:room")

	expectFrame := func(c *client, wantType int, want []byte) {
		t.Helper()
		typ, data := c.read()
		if typ != wantType || !bytes.Equal(data, want) {
			t.Fatalf("got frame type %d %q, want type %d %q", typ, data, wantType, want)
		}
	}

	b := &hub.Broadcast{Topic: "realtime:room", Event: "blob", Payload: []byte("\x00\xff"), Binary: true}
	if err := ts.hub.Broadcast(b); err != nil {
		t.Fatal(err)
	}
	expectFrame(rt, websocket.BinaryMessage, userBroadcast("realtime:room", "blob", "\x00\xff"))
	expectFrame(phx, websocket.BinaryMessage, []byte("\x02\x0d\x04realtime:roomblob\x00\xff"))

	text := `[null,null,"realtime:room","broadcast",{"type":"broadcast","event":"e","payload":{}}]`
	b = &hub.Broadcast{Topic: "realtime:room", Event: "broadcast", Payload: []byte(`{"type":"broadcast","event":"e","payload":{}}`)}
	if err := ts.hub.Broadcast(b); err != nil {
		t.Fatal(err)
	}
	expectFrame(rt, websocket.TextMessage, []byte(text))
	expectFrame(phx, websocket.TextMessage, []byte(text))

	if err := rt.session.conn.Send(&hub.Message{JoinRef: "1", Topic: "realtime:room", Event: "blob", Payload: []byte("x"), Binary: true}); err != nil {
		t.Fatal(err)
	}
	expectFrame(rt, websocket.BinaryMessage, userBroadcast("realtime:room", "blob", "x"))

	// The kind 3 it sends reaches the session as the event realtime-js sends as text.
	if err := rt.ws.WriteMessage(websocket.BinaryMessage, userPush("1", "3", "realtime:room", "cursor", "", 1, `{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	m := recv(t, rt.session.msgs, "the user broadcast push")
	if m.Event != "broadcast" || m.Ref != "3" || string(m.Payload) != `{"type":"broadcast","event":"cursor","payload":{"x":1}}` {
		t.Fatalf("got %+v (payload %s)", m, m.Payload)
	}
}
