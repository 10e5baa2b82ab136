package luachan_test

// SPEC section 2's formats: V1 JSON objects, V2 binary frames, and the vsn handshake.

import (
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"testing"

	"github.com/gorilla/websocket"
)

func TestV1(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))

	for _, query := range []string{"vsn=1.0.0", ""} {
		t.Run("query="+query, func(t *testing.T) {
			topic := "test:v1" + query
			c := s.dial(t, query)
			v2 := s.dial(t, "vsn=2.0.0")
			v2.join(topic, "1", `{}`, fmt.Sprintf(`{"joined":%q}`, topic))

			c.send(fmt.Sprintf(`{"topic":%q,"event":"phx_join","payload":{},"ref":"1"}`, topic))
			c.expect(fmt.Sprintf(`{"topic":%q,"event":"phx_reply","payload":{"status":"ok","response":{"joined":%q}},"ref":"1"}`, topic, topic))

			c.send(fmt.Sprintf(`{"topic":%q,"event":"push","payload":{"x":1},"ref":"2"}`, topic))
			c.expect(fmt.Sprintf(`{"topic":%q,"event":"pushed","payload":{"x":1},"ref":null}`, topic))

			c.send(fmt.Sprintf(`{"topic":%q,"event":"broadcast","payload":{"y":2},"ref":"3"}`, topic))
			c.expectAnyOrder(
				fmt.Sprintf(`{"topic":%q,"event":"shout","payload":{"y":2},"ref":null}`, topic),
				fmt.Sprintf(`{"topic":%q,"event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"3"}`, topic),
			)
			v2.expect(fmt.Sprintf(`[null,null,%q,"shout",{"y":2}]`, topic))

			// a broadcast from a V2 client reaches the V1 client as an object
			v2.send(fmt.Sprintf(`["1","2",%q,"broadcast_from",{"from":"v2"}]`, topic))
			v2.expect(fmt.Sprintf(`["1","2",%q,"phx_reply",{"status":"ok","response":{}}]`, topic))
			c.expect(fmt.Sprintf(`{"topic":%q,"event":"shout","payload":{"from":"v2"},"ref":null}`, topic))

			c.send(`{"topic":"test:none","event":"echo","payload":{},"ref":"4"}`)
			c.expect(`{"topic":"test:none","event":"phx_reply","payload":{"status":"error","response":{"reason":"unmatched topic"}},"ref":"4"}`)

			c.send(`{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"5"}`)
			c.expect(`{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"5"}`)

			// server-initiated lifecycle frames carry no join_ref either
			c.send(fmt.Sprintf(`{"topic":%q,"event":"crash","payload":{},"ref":"6"}`, topic))
			expectV1(t, c, topic, "phx_error", `{"reason":"channel_crash"}`)

			c.send(`{"topic":"test:v1leave","event":"phx_join","payload":{},"ref":"7"}`)
			c.expect(`{"topic":"test:v1leave","event":"phx_reply","payload":{"status":"ok","response":{"joined":"test:v1leave"}},"ref":"7"}`)
			c.send(`{"topic":"test:v1leave","event":"phx_leave","payload":{},"ref":"8"}`)
			c.expect(`{"topic":"test:v1leave","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"8"}`)
			expectV1(t, c, "test:v1leave", "phx_close", `{}`)
		})
	}
}

// expectV1 reads a V1 frame whose ref the SPEC leaves open and checks everything else:
// exactly the keys topic, event, payload and ref (never join_ref).
func expectV1(tb testing.TB, c *wsClient, topic, event, payload string) {
	tb.Helper()
	f := c.read()
	var obj map[string]any
	if f.binary || decodeJSON(f.data, &obj) != nil {
		tb.Fatalf("want a V1 JSON object, got %s", f)
	}
	var keys []string
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !reflect.DeepEqual(keys, []string{"event", "payload", "ref", "topic"}) {
		tb.Fatalf("V1 frame %s has keys %v, want exactly event, payload, ref, topic", f, keys)
	}
	var wantPayload any
	if err := decodeJSON([]byte(payload), &wantPayload); err != nil {
		tb.Fatal(err)
	}
	if obj["topic"] != topic || obj["event"] != event || !reflect.DeepEqual(obj["payload"], wantPayload) {
		tb.Fatalf("V1 frame %s, want topic %q event %q payload %s", f, topic, event, payload)
	}
	if ref := obj["ref"]; ref != nil {
		if _, ok := ref.(string); !ok {
			tb.Fatalf("V1 frame %s: ref must be a string or null", f)
		}
	}
}

func TestBinaryFrames(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))
	a := s.dial(t, "vsn=2.0.0")
	b := s.dial(t, "vsn=2.0.0")
	a.join("test:bin", "1", `{}`, `{"joined":"test:bin"}`)
	b.join("test:bin", "9", `{}`, `{"joined":"test:bin"}`)

	// arbitrary bytes, not UTF-8 and with NULs: an ArrayBuffer, never JSON
	payload := []byte{0, 1, 2, 0xff, 0xfe, 'h', 'i', 0, 0x80}
	a.write(websocket.BinaryMessage, binClientPush("1", "2", "test:bin", "bin", payload))

	a.expectAnyOrder(
		binPush("1", "test:bin", "bin_push", payload),
		binBroadcast("test:bin", "bin_bcast", payload),
		binReply("1", "2", "test:bin", "ok", payload),
	)
	b.expectBinary(binBroadcast("test:bin", "bin_bcast", payload))

	// JSON keeps working on the same connections
	a.heartbeat("3")
	b.heartbeat("4")
	a.send(`["1","5","test:bin","echo",{"after":"binary"}]`)
	a.expect(`["1","5","test:bin","phx_reply",{"status":"ok","response":{"after":"binary"}}]`)
}

func TestUnknownVsn(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))
	for _, vsn := range []string{"3.0.0", "2.0", "abc"} {
		t.Run(vsn, func(t *testing.T) {
			_, err := s.dialHeader(t, "vsn="+vsn, nil)
			if got := handshakeStatus(err); got != http.StatusForbidden {
				t.Fatalf("dial with vsn=%s: %v, want HTTP 403", vsn, err)
			}
		})
	}
	// the accepted ones, for contrast
	for _, query := range []string{"vsn=2.0.0", "vsn=1.0.0", ""} {
		s.dial(t, query)
	}
}
