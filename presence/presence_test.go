package presence_test

import (
	"regexp"
	"testing"

	"github.com/luachan/luachan/presence"
)

func TestEncode(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"empty state", presence.EncodeState(nil), `{}`},
		{"state sorted", presence.EncodeState(presence.State{
			"b": {[]byte(`{"phx_ref":"2"}`)},
			"a": {[]byte(`{"phx_ref":"1"}`), []byte(`{"phx_ref":"3"}`)},
		}), `{"a":{"metas":[{"phx_ref":"1"},{"phx_ref":"3"}]},"b":{"metas":[{"phx_ref":"2"}]}}`},
		{"diff", presence.EncodeDiff(nil, presence.State{"<x>": {[]byte(`{}`)}}),
			`{"joins":{},"leaves":{"\u003cx\u003e":{"metas":[{}]}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if string(tc.got) != tc.want {
				t.Fatalf("got %s\nwant %s", tc.got, tc.want)
			}
		})
	}
}

// refs replaces every phx_ref value with "R", so expectations do not depend on the node's prefix.
func refs(b []byte) string {
	return regexp.MustCompile(`"(phx_ref(_prev)?)":"[^"]*"`).ReplaceAllString(string(b), `"$1":"R"`)
}

func TestTracker(t *testing.T) {
	tr := presence.NewTracker[int](nil, nil)
	state, diff, err := tr.Track("room", 1, "alice", []byte(` {"d":"web"} `))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := refs(state), `{"alice":{"metas":[{"phx_ref":"R","d":"web"}]}}`; got != want {
		t.Fatalf("state %s, want %s", got, want)
	}
	if got, want := refs(diff), `{"joins":{"alice":{"metas":[{"phx_ref":"R","d":"web"}]}},"leaves":{}}`; got != want {
		t.Fatalf("diff %s, want %s", got, want)
	}
	if _, _, err := tr.Track("room", 2, "bob", []byte(`[1]`)); err == nil {
		t.Fatal("a meta that is not an object was tracked")
	}
	if _, _, err := tr.Track("room", 2, "bob", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	diff, err = tr.Update("room", 1, "alice", []byte(`{"d":"app"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := refs(diff), `{"joins":{"alice":{"metas":[{"phx_ref":"R","phx_ref_prev":"R","d":"app"}]}},"leaves":{"alice":{"metas":[{"phx_ref":"R","d":"web"}]}}}`; got != want {
		t.Fatalf("update diff %s, want %s", got, want)
	}
	if _, err := tr.Update("room", 2, "alice", []byte(`{}`)); err == nil {
		t.Fatal("updated a key the owner does not track")
	}
	if d := tr.Untrack("room", 2, "alice"); d != nil {
		t.Fatalf("untracking what the owner does not track: %s", d)
	}
	diffs := tr.UntrackAll("room", 1)
	if len(diffs) != 1 || refs(diffs[0]) != `{"joins":{},"leaves":{"alice":{"metas":[{"phx_ref":"R","phx_ref_prev":"R","d":"app"}]}}}` {
		t.Fatalf("UntrackAll diffs %q", diffs)
	}
	if got, want := refs(tr.List("room")), `{"bob":{"metas":[{"phx_ref":"R"}]}}`; got != want {
		t.Fatalf("List %s, want %s", got, want)
	}
	if d := tr.Untrack("room", 2, "bob"); d == nil {
		t.Fatal("no leave diff for bob")
	}
	if got := tr.List("room"); string(got) != `{}` {
		t.Fatalf("List after every leave: %s", got)
	}
}
