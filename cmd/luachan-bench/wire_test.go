package main

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

func TestParseFrame(t *testing.T) {
	tests := []struct {
		name                string
		in                  string
		jr, ref, top, event string // "<nil>" for null
		payload             string
		bad                 bool
	}{
		{name: "broadcast", in: `[null,null,"bench:x","msg",{"s":1,"t":"2","p":"xx"}]`,
			jr: "<nil>", ref: "<nil>", top: "bench:x", event: "msg", payload: `{"s":1,"t":"2","p":"xx"}`},
		{name: "reply", in: `["1","1","T","phx_reply",{"status":"ok","response":{}}]`,
			jr: "1", ref: "1", top: "T", event: "phx_reply", payload: `{"status":"ok","response":{}}`},
		{name: "spaces and nesting", in: ` [ "1" , null , "a\"b" , "e" , {"x":[1,{"y":"]}"}]} ] `,
			jr: "1", ref: "<nil>", top: `a\"b`, event: "e", payload: `{"x":[1,{"y":"]}"}]}`},
		{name: "v1 object", in: `{"topic":"T","event":"e","payload":{},"ref":null}`, bad: true},
		{name: "four elements", in: `["1","1","T","e"]`, bad: true},
		{name: "six elements", in: `["1","1","T","e",{},1]`, bad: true},
		{name: "number ref", in: `[1,"1","T","e",{}]`, bad: true},
		{name: "null topic", in: `["1","1",null,"e",{}]`, bad: true},
		{name: "unterminated string", in: `["1","1","T","e`, bad: true},
		{name: "unterminated payload", in: `["1","1","T","e",{"a":[}`, bad: true},
		{name: "empty", in: ``, bad: true},
	}
	str := func(b []byte) string {
		if b == nil {
			return "<nil>"
		}
		return string(b)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseFrame([]byte(tc.in))
			if tc.bad {
				if err == nil {
					t.Fatalf("parsed %q", tc.in)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := []string{str(f.joinRef), str(f.ref), str(f.topic), str(f.event), string(f.payload)}
			want := []string{tc.jr, tc.ref, tc.top, tc.event, tc.payload}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("field %d = %q, want %q", i, got[i], want[i])
				}
			}
		})
	}
}

func TestFrameRoundTrip(t *testing.T) {
	b := appendFrame(nil, []byte("3"), nil, []byte("bench:rpc"), []byte("ping"), []byte(`{"a":1}`))
	if string(b) != `["3",null,"bench:rpc","ping",{"a":1}]` {
		t.Fatalf("appendFrame = %s", b)
	}
	f, err := parseFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	r := appendReply(nil, f.joinRef, []byte("9"), f.topic, "ok", f.payload)
	var v []any
	if err := json.Unmarshal(r, &v); err != nil {
		t.Fatalf("reply %s: %v", r, err)
	}
	if !replyOK(parseMust(t, r).payload) {
		t.Errorf("reply %s not ok", r)
	}
}

func parseMust(tb testing.TB, b []byte) frame {
	tb.Helper()
	f, err := parseFrame(b)
	if err != nil {
		tb.Fatalf("%s: %v", b, err)
	}
	return f
}

func TestBenchPayload(t *testing.T) {
	for _, size := range []int{minSize, 64, 256, 4096} {
		now := time.Now().UnixNano()
		p := benchPayload(nil, 123456, now, size)
		if len(p) != size {
			t.Errorf("size %d: got %d bytes: %s", size, len(p), p)
		}
		var v map[string]any
		if err := json.Unmarshal(p, &v); err != nil {
			t.Fatalf("size %d: %v: %s", size, err, p)
		}
		if s, ok := payloadInt(p, "s"); !ok || s != 123456 {
			t.Errorf("s = %d, %v", s, ok)
		}
		if ts, ok := payloadInt(p, "t"); !ok || ts != now {
			t.Errorf("t = %d, %v, want %d", ts, ok, now)
		}
	}
}

func TestPayloadInt(t *testing.T) {
	tests := []struct {
		in   string
		key  string
		want int64
		ok   bool
	}{
		{`{"s":5}`, "s", 5, true},
		{`{"to":"1","p":"xx","t":"17","s":3}`, "t", 17, true},
		{`{"status": "ok", "s" : -2}`, "s", -2, true},
		{`{"status":"ok"}`, "s", 0, false},
		{`{"s":"x"}`, "s", 0, false},
		{`{"a":"s","s":7}`, "s", 7, true},
		{`{"a":"\"s\":1","s":8}`, "s", 8, true},
	}
	for _, tc := range tests {
		got, ok := payloadInt([]byte(tc.in), tc.key)
		if got != tc.want || ok != tc.ok {
			t.Errorf("payloadInt(%s, %q) = %d, %v; want %d, %v", tc.in, tc.key, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzParseFrame: the scanner never panics, and whatever it accepts from
// valid JSON agrees with encoding/json.
func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{
		`[null,null,"bench:x","msg",{"s":1}]`,
		`["1","1","T","phx_reply",{"status":"ok","response":{}}]`,
		`[ "1" , null , "a\"b" , "e" , {"x":[1,{"y":"]}"}]} ]`,
		`["1","1","T","e",[]]`,
		`["1","1","T","e",1]`,
		`["\\","1","T","e",{}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := parseFrame(b)
		if err != nil || !json.Valid(b) {
			return
		}
		var v []json.RawMessage
		if err := json.Unmarshal(b, &v); err != nil || len(v) != 5 {
			t.Fatalf("accepted %q, which is not a five-element array", b)
		}
		var topic string
		if err := json.Unmarshal(v[2], &topic); err != nil {
			t.Fatalf("accepted %q with topic %s", b, v[2])
		}
		var raw string
		json.Unmarshal(append(append([]byte{'"'}, fr.topic...), '"'), &raw)
		if raw != topic {
			t.Fatalf("topic %q, encoding/json says %q", raw, topic)
		}
		if !json.Valid(fr.payload) {
			t.Fatalf("payload %q is not a JSON value", fr.payload)
		}
	})
}

func TestHistogram(t *testing.T) {
	var h histogram
	r := rand.New(rand.NewPCG(1, 2))
	const n = 100000
	for i := range n {
		h.record(int64(r.IntN(10_000_000)), i) // uniform 0..10 ms
	}
	s := h.snapshot()
	if s.N != n {
		t.Fatalf("N = %d", s.N)
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		got := float64(s.quantile(q))
		want := q * 10_000_000
		if got < want*0.97 || got > want*1.03 {
			t.Errorf("p%.0f = %v, want about %v", q*100, time.Duration(got), time.Duration(want))
		}
	}
	if s.quantile(1) != time.Duration(s.Max) {
		t.Errorf("p100 %v != max %v", s.quantile(1), time.Duration(s.Max))
	}

	var a, b histogram
	for i := range 1000 {
		a.record(int64(i), i)
		b.record(int64(1000+i)*1000, i)
	}
	m := a.snapshot()
	m.merge(b.snapshot())
	if m.N != 2000 || m.Max != 1999000 {
		t.Fatalf("merged N %d max %d", m.N, m.Max)
	}
	if p := m.quantile(0.25); p < 490 || p > 510 {
		t.Errorf("merged p25 = %v", p)
	}
	if p := m.quantile(0.75); p < 1_450_000 || p > 1_550_000 {
		t.Errorf("merged p75 = %v", p)
	}
	for v := int64(0); v < 1<<40; v = v*3/2 + 1 {
		if i := histIndex(v); histUpper(i) < v || i > 0 && histUpper(i-1) >= v {
			t.Fatalf("value %d in bucket %d with upper %d (previous %d)", v, i, histUpper(i), histUpper(i-1))
		}
	}
}

func TestSplit(t *testing.T) {
	for _, n := range []int{1, 7, 10000, 19999} {
		for k := 1; k <= min(n, 5); k++ {
			next := 0
			for i := range k {
				c, first := split(n, k, i)
				if first != next || c < n/k || c > n/k+1 {
					t.Fatalf("split(%d,%d,%d) = %d, %d", n, k, i, c, first)
				}
				next += c
			}
			if next != n {
				t.Fatalf("split(%d,%d) covers %d", n, k, next)
			}
		}
	}
}
