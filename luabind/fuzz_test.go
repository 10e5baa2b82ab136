package luabind

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

// FuzzJSONRoundTrip checks the JSON<->Lua conversion against encoding/json: the decoder accepts
// exactly the valid documents (within the depth and number limits), encoding what it decoded
// gives valid JSON with the same meaning (empty arrays included), and a second round trip
// changes nothing. The copies handle_out and Clone make encode the same as the original.
func FuzzJSONRoundTrip(f *testing.F) {
	for _, seed := range []string{
		`{}`, `[]`, `null`, `true`, `0`, `-0`, `"x"`, `{"a":1}`, `[1,2,3]`, `{"a":[]}`,
		`{"uid":"u1","body":"hello","n":42,"f":3.25,"ok":true,"z":null,"list":[1,"two",{"x":null}]}`,
		`{"a":1,"a":2}`, `{"s":"\u00e9\ud83d\ude00\n\t\"\\"}`, `{"s":"\ud800"}`, "{\"s\":\"\xff\"}",
		`[1e300,-1e-300,1.5e-7,9007199254740993,123456789012345678901234567890]`,
		`{"":{"":{"":[[[]]]}}}`, ` [ 1 , { "a" : null } ] `, `{"1":1,"2":2}`, `1e400`, `[01]`, `{"a":}`,
		`[[],{}]`, `{"a":[],"b":{},"c":[{}],"d":[[]]}`, `[{"a":[]}]`,
		strings.Repeat("[", 64) + strings.Repeat("]", 64), strings.Repeat("[", 65) + strings.Repeat("]", 65),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decodeJSON(data)
		if err != nil {
			if json.Valid(data) && !strings.Contains(err.Error(), "deeper than") && !strings.Contains(err.Error(), "out of range") {
				t.Fatalf("rejected valid JSON %q: %v", data, err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q as %v", data, v)
		}
		enc, err := encodeValue(v, "payload")
		if err != nil {
			t.Fatalf("cannot encode what %q decoded to: %v", data, err)
		}
		if !json.Valid(enc) {
			t.Fatalf("%q encoded as invalid JSON %q", data, enc)
		}
		var want, got any
		if json.Unmarshal(data, &want) == nil { // numbers beyond float64 fail here
			if err := json.Unmarshal(enc, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(want, got) { // [] stays [], {} stays {}
				t.Fatalf("%q became %q: %#v != %#v", data, enc, want, got)
			}
		}

		v2, err := decodeJSON(enc)
		if err != nil {
			t.Fatalf("cannot decode own output %q: %v", enc, err)
		}
		enc2, err := encodeValue(v2, "payload")
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("second round trip: %q then %q (%v)", enc, enc2, err)
		}

		frozen := freeze(v)
		if thawed, _ := encodeValue(frozen.thaw(), "payload"); !bytes.Equal(enc, thawed) {
			t.Fatalf("outgoing copy: %q, want %q", thawed, enc)
		}
		if tbl, ok := v.(*lua.LTable); ok && checkData(tbl) == nil {
			if copied, _ := encodeValue(copyTable(tbl), "payload"); !bytes.Equal(enc, copied) {
				t.Fatalf("assigns copy: %q, want %q", copied, enc)
			}
		}
	})
}
