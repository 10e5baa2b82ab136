package hub_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/luachan/luachan/hub"
)

// The vectors below are Phoenix's own: assets/test/serializer_test.js and
// test/phoenix/socket/v{1,2}_json_serializer_test.exs in phoenixframework/phoenix.

func TestDecodePhoenixVectors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format hub.Format
		binary bool
		frame  string
		want   hub.Message
	}{
		{"V2 message", hub.V2, false, `[null,null,"t","e",{"m":1}]`,
			hub.Message{Topic: "t", Event: "e", Payload: []byte(`{"m":1}`)}},
		{"V2 refs", hub.V2, false, `["1","2","rooms:lobby","phx_join",{}]`,
			hub.Message{JoinRef: "1", Ref: "2", Topic: "rooms:lobby", Event: "phx_join", Payload: []byte(`{}`)}},
		{"V2 numeric refs", hub.V2, false, ` [ 1 , -2.5 , "t" , "e" , { } ] `,
			hub.Message{JoinRef: "1", Ref: "-2.5", Topic: "t", Event: "e", Payload: []byte(`{ }`)}},
		{"V2 escapes", hub.V2, false, `[null,"\u0031","t\"\\","\u00e9",{"a":"\ud83d\ude00"}]`,
			hub.Message{Ref: "1", Topic: `t"\`, Event: "é", Payload: []byte(`{"a":"\ud83d\ude00"}`)}},
		{"V1 message", hub.V1, false, `{"event":"e","payload":{"m":1},"ref":null,"topic":"t"}`,
			hub.Message{Topic: "t", Event: "e", Payload: []byte(`{"m":1}`)}},
		{"V1 with join_ref", hub.V1, false, `{"topic":"t","event":"e","payload":{},"ref":"5","join_ref":"4","extra":1}`,
			hub.Message{JoinRef: "4", Ref: "5", Topic: "t", Event: "e", Payload: []byte(`{}`)}},
		// Phoenix's serializers take any JSON value as the payload and ignore what
		// follows it; github.com/nshafer/phx sends null for "no params".
		{"V2 heartbeat with null", hub.V2, false, `["","2","phoenix","heartbeat",null]`,
			hub.Message{Ref: "2", Topic: "phoenix", Event: "heartbeat", Payload: []byte(`{}`)}},
		{"V2 join with null", hub.V2, false, `["1","1","rooms:lobby","phx_join", null ]`,
			hub.Message{JoinRef: "1", Ref: "1", Topic: "rooms:lobby", Event: "phx_join", Payload: []byte(`{}`)}},
		{"V2 leave with null", hub.V2, false, `["1","3","rooms:lobby","phx_leave",null]`,
			hub.Message{JoinRef: "1", Ref: "3", Topic: "rooms:lobby", Event: "phx_leave", Payload: []byte(`{}`)}},
		{"V2 event with null", hub.V2, false, `["1","4","t","e",null]`,
			hub.Message{JoinRef: "1", Ref: "4", Topic: "t", Event: "e", Payload: []byte(`null`)}},
		{"V2 string payload", hub.V2, false, `[null,null,"t","e","s\""]`,
			hub.Message{Topic: "t", Event: "e", Payload: []byte(`"s\""`)}},
		{"V2 number payload", hub.V2, false, `[null,null,"t","e",-1.5e3]`,
			hub.Message{Topic: "t", Event: "e", Payload: []byte(`-1.5e3`)}},
		{"V2 array payload", hub.V2, false, `[null,null,"t","e",[1,{"a":[]}]]`,
			hub.Message{Topic: "t", Event: "e", Payload: []byte(`[1,{"a":[]}]`)}},
		{"V2 boolean payload", hub.V2, false, `[null,null,"t","e",false]`,
			hub.Message{Topic: "t", Event: "e", Payload: []byte(`false`)}},
		{"V2 elements after the fifth", hub.V2, false, `[null,"1","t","e",{"m":1},{"x":[2]},"y",null]`,
			hub.Message{Ref: "1", Topic: "t", Event: "e", Payload: []byte(`{"m":1}`)}},
		{"V1 join with null", hub.V1, false, `{"topic":"t","event":"phx_join","payload":null,"ref":"1"}`,
			hub.Message{Ref: "1", Topic: "t", Event: "phx_join", Payload: []byte(`{}`)}},
		{"V1 event with null", hub.V1, false, `{"topic":"t","event":"e","payload":null,"ref":"1"}`,
			hub.Message{Ref: "1", Topic: "t", Event: "e", Payload: []byte(`null`)}},
		{"V1 array payload", hub.V1, false, `{"topic":"t","event":"e","payload":["a"],"ref":null}`,
			hub.Message{Topic: "t", Event: "e", Payload: []byte(`["a"]`)}},
		{"binary push", hub.V2, true, "\x00\x02\x03\x05\x05" + "12" + "123" + "topic" + "event" + "\x65\x66\x67",
			hub.Message{JoinRef: "12", Ref: "123", Topic: "topic", Event: "event", Payload: []byte("efg"), Binary: true}},
		{"binary push, empty payload", hub.V2, true, "\x00\x00\x00\x01\x01te",
			hub.Message{Topic: "t", Event: "e", Payload: []byte{}, Binary: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := hub.Decode([]byte(tc.frame), tc.format, tc.binary, 0)
			if err != nil {
				t.Fatal(err)
			}
			if m.JoinRef != tc.want.JoinRef || m.Ref != tc.want.Ref || m.Topic != tc.want.Topic ||
				m.Event != tc.want.Event || m.Binary != tc.want.Binary || !bytes.Equal(m.Payload, tc.want.Payload) {
				t.Fatalf("got %+v (payload %q), want %+v", m, m.Payload, tc.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	arrays := func(n int) string { return strings.Repeat(`[`, n) + strings.Repeat(`]`, n) }
	for _, tc := range []struct {
		name   string
		format hub.Format
		binary bool
		frame  string
		utf8   bool // want ErrBadUTF8 specifically
	}{
		{"empty", hub.V2, false, ``, false},
		{"not JSON", hub.V2, false, `[null`, false},
		{"null", hub.V2, false, `null`, false},
		{"object in V2", hub.V2, false, `{"topic":"t","event":"e","payload":{}}`, false},
		{"4 elements", hub.V2, false, `[null,null,"t","e"]`, false},
		{"payload missing after a comma", hub.V2, false, `[null,null,"t","e",]`, false},
		{"payload not JSON", hub.V2, false, `[null,null,"t","e",nul]`, false},
		{"sixth element not JSON", hub.V2, false, `[null,null,"t","e",{},x]`, false},
		{"trailing comma", hub.V2, false, `[null,null,"t","e",{},]`, false},
		{"unclosed after the payload", hub.V2, false, `[null,null,"t","e",{},{}`, false},
		{"sixth element 65 levels", hub.V2, false, `[null,null,"t","e",{},` + arrays(65) + `]`, false},
		{"array payload 65 levels", hub.V2, false, `[null,null,"t","e",` + arrays(65) + `]`, false},
		{"topic null", hub.V2, false, `[null,null,null,"e",{}]`, false},
		{"event number", hub.V2, false, `[null,null,"t",1,{}]`, false},
		{"ref object", hub.V2, false, `[{},null,"t","e",{}]`, false},
		{"trailing garbage", hub.V2, false, `[null,null,"t","e",{}] x`, false},
		{"65 levels", hub.V2, false, `[null,null,"t","e",{"a":` + arrays(64) + `}]`, false},
		{"invalid UTF-8", hub.V2, false, "[null,null,\"t\xc3\",\"e\",{}]", true},
		{"V1 array", hub.V1, false, `[null,null,"t","e",{}]`, false},
		{"V1 no topic", hub.V1, false, `{"event":"e","payload":{}}`, false},
		{"V1 no payload", hub.V1, false, `{"topic":"t","event":"e"}`, false},
		{"V1 binary", hub.V1, true, "\x00\x00\x00\x01\x01te", false},
		{"binary short", hub.V2, true, "\x00\x00\x00", false},
		{"binary kind 2", hub.V2, true, "\x02\x00\x00\x01\x01te", false},
		{"binary overrun", hub.V2, true, "\x00\x00\x00\x01\x05te", false},
		{"binary bad UTF-8 topic", hub.V2, true, "\x00\x00\x00\x01\x01\xffe", true},
		{"user push bad UTF-8 in its JSON payload", hub.V2, true, "\x03\x00\x00\x01\x01\x00\x01" + "te" + "{\"\x82\":[]}", true},
		{"user push bad UTF-8 in its metadata", hub.V2, true, "\x03\x00\x00\x01\x01\x06\x01" + "te" + "{\"\x82\":1}" + "{}", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := hub.Decode([]byte(tc.frame), tc.format, tc.binary, 0)
			if err == nil {
				t.Fatalf("accepted: %+v", m)
			}
			if !errors.Is(err, hub.ErrBadFrame) {
				t.Fatalf("error %v is not ErrBadFrame", err)
			}
			if tc.utf8 != errors.Is(err, hub.ErrBadUTF8) {
				t.Fatalf("error %v: ErrBadUTF8 = %v, want %v", err, !tc.utf8, tc.utf8)
			}
		})
	}
}

func TestDecodeDepthLimit(t *testing.T) {
	nest := func(n int) []byte { // a payload object nesting n levels
		return []byte(`[null,null,"t","e",` + strings.Repeat(`{"a":`, n) + `1` + strings.Repeat(`}`, n) + `]`)
	}
	if _, err := hub.Decode(nest(64), hub.V2, false, 0); err != nil {
		t.Fatalf("64 levels: %v", err)
	}
	if _, err := hub.Decode(nest(65), hub.V2, false, 0); !errors.Is(err, hub.ErrBadFrame) {
		t.Fatalf("65 levels: %v", err)
	}
	if _, err := hub.Decode(nest(3), hub.V2, false, 2); err == nil {
		t.Fatal("3 levels accepted with MaxDepth 2")
	}
	// Brackets inside strings do not count.
	if _, err := hub.Decode([]byte(`[null,null,"t","e",{"a":"[[[[{{{{\"]]"}]`), hub.V2, false, 2); err != nil {
		t.Fatal(err)
	}
}

func TestEncodePhoenixVectors(t *testing.T) {
	payload := []byte(`{"m":1}`)
	efg := []byte("efg")
	for _, tc := range []struct {
		name string
		got  func() ([]byte, error)
		want string
	}{
		{"V2 broadcast (fastlane)", func() ([]byte, error) {
			b := &hub.Broadcast{Topic: "t", Event: "e", Payload: payload}
			data, binary := b.Frame(hub.V2)
			return data, boolErr(binary)
		}, `[null,null,"t","e",{"m":1}]`},
		{"V1 broadcast (fastlane)", func() ([]byte, error) {
			b := &hub.Broadcast{Topic: "t", Event: "e", Payload: payload}
			data, binary := b.Frame(hub.V1)
			return data, boolErr(binary)
		}, `{"topic":"t","event":"e","payload":{"m":1},"ref":null}`},
		{"V2 message", func() ([]byte, error) {
			data, _, err := hub.Encode(&hub.Message{Topic: "t", Event: "e", Payload: payload}, hub.V2)
			return data, err
		}, `[null,null,"t","e",{"m":1}]`},
		{"V2 push with refs", func() ([]byte, error) {
			data, _, err := hub.Encode(&hub.Message{JoinRef: "1", Ref: "2", Topic: "t", Event: "e"}, hub.V2)
			return data, err
		}, `["1","2","t","e",{}]`},
		{"V1 message drops join_ref", func() ([]byte, error) {
			data, _, err := hub.Encode(&hub.Message{JoinRef: "1", Ref: "2", Topic: "t", Event: "e", Payload: payload}, hub.V1)
			return data, err
		}, `{"topic":"t","event":"e","payload":{"m":1},"ref":"2"}`},
		{"V2 reply", func() ([]byte, error) {
			return hub.EncodeReply(hub.V2, "1", "2", "t", "ok", payload, false)
		}, `["1","2","t","phx_reply",{"status":"ok","response":{"m":1}}]`},
		{"V1 reply", func() ([]byte, error) {
			return hub.EncodeReply(hub.V1, "1", "null", "t", "error", nil, false)
		}, `{"topic":"t","event":"phx_reply","payload":{"status":"error","response":{}},"ref":"null"}`},
		{"escaping", func() ([]byte, error) {
			data, _, err := hub.Encode(&hub.Message{Ref: "\"\\\n\x01", Topic: "é\u2028", Event: "bad\xffutf8"}, hub.V2)
			return data, err
		}, `[null,"\"\\\n\u0001","é\u2028","bad\ufffdutf8",{}]`},
		{"binary push", func() ([]byte, error) {
			data, _, err := hub.Encode(&hub.Message{JoinRef: "12", Topic: "topic", Event: "event", Payload: efg, Binary: true}, hub.V2)
			return data, err
		}, "\x00\x02\x05\x05" + "12" + "topic" + "event" + "efg"},
		{"binary reply", func() ([]byte, error) {
			return hub.EncodeReply(hub.V2, "12", "123", "topic", "ok", efg, true)
		}, "\x01\x02\x03\x05\x02" + "12" + "123" + "topic" + "ok" + "efg"},
		{"binary broadcast (fastlane)", func() ([]byte, error) {
			b := &hub.Broadcast{Topic: "topic", Event: "event", Payload: efg, Binary: true}
			data, binary := b.Frame(hub.V2)
			return data, boolErr(!binary)
		}, "\x02\x05\x05" + "topic" + "event" + "efg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.got()
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(tc.want, "[") || strings.HasPrefix(tc.want, "{") {
				if !json.Valid(got) {
					t.Fatalf("invalid JSON %q", got)
				}
				expectJSON(t, got, tc.want)
			} else if string(got) != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEncodeOversizedBinaryHeaders(t *testing.T) {
	long := strings.Repeat("x", 256)
	for _, m := range []*hub.Message{
		{JoinRef: long, Topic: "t", Event: "e", Binary: true},
		{Topic: long, Event: "e", Binary: true},
		{Topic: "t", Event: long, Binary: true},
	} {
		if _, _, err := hub.Encode(m, hub.V2); !errors.Is(err, hub.ErrFieldTooLong) {
			t.Fatalf("Encode: %v", err)
		}
	}
	if _, err := hub.EncodeReply(hub.V2, "1", long, "t", "ok", nil, true); !errors.Is(err, hub.ErrFieldTooLong) {
		t.Fatalf("EncodeReply: %v", err)
	}
	if data, _ := (&hub.Broadcast{Topic: long, Event: "e", Binary: true}).Frame(hub.V2); data != nil {
		t.Fatalf("Frame: %q", data)
	}
	if data, _ := (&hub.Broadcast{Topic: "t", Event: "e", Binary: true}).Frame(hub.V1); data != nil {
		t.Fatalf("binary Frame for V1: %q", data)
	}
	if _, _, err := hub.Encode(&hub.Message{Topic: "t", Event: "e", Binary: true}, hub.V1); !errors.Is(err, hub.ErrBinaryV1) {
		t.Fatalf("binary in V1: %v", err)
	}
}

func TestBroadcastMemo(t *testing.T) {
	b := &hub.Broadcast{Topic: "t", Event: "e"}
	calls := 0
	for range 3 {
		if v := b.Memo(func() any { calls++; return calls }); v != 1 {
			t.Fatalf("Memo = %v", v)
		}
	}
	if calls != 1 {
		t.Fatalf("f called %d times", calls)
	}
}

// boolErr turns an unexpected flag into a test error.
func boolErr(unexpected bool) error {
	if unexpected {
		return errors.New("unexpected binary flag")
	}
	return nil
}
