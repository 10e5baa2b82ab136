package engine

import "testing"

func TestSinceOf(t *testing.T) {
	for _, tc := range []struct {
		payload, since string
		ok             bool
	}{
		{`{}`, "", false},
		{`{"since":null}`, "", false},
		{`{"since":"e:3"}`, "e:3", true},
		{`{"since":3}`, "", true}, // there, but no position: not recovered
		{`{"since":{}}`, "", true},
		{`{"user":"since"}`, "", false},
		{`not json "since"`, "", false},
	} {
		since, ok := sinceOf([]byte(tc.payload))
		if since != tc.since || ok != tc.ok {
			t.Errorf("sinceOf(%s) = %q, %v; want %q, %v", tc.payload, since, ok, tc.since, tc.ok)
		}
	}
}

func TestWithPosition(t *testing.T) {
	for _, tc := range []struct {
		body               string
		hasSince, recovers bool
		want               string
	}{
		{`{}`, false, false, `{"position":"e:1"}`},
		{` { } `, true, true, `{"position":"e:1","recovered":true}`},
		{`{"a":1}`, true, false, `{"position":"e:1","recovered":false,"a":1}`},
		{`[1]`, true, true, `[1]`}, // not an object: left alone
	} {
		if got := string(withPosition([]byte(tc.body), "e:1", tc.hasSince, tc.recovers)); got != tc.want {
			t.Errorf("withPosition(%s) = %s, want %s", tc.body, got, tc.want)
		}
	}
}
