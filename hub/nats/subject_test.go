package nats

import (
	"regexp"
	"testing"
)

// token is what one subject token (and one key-value key part) may hold, as luachan writes it.
var token = regexp.MustCompile(`^[A-Za-z0-9_=-]+$`)

func TestEscapeToken(t *testing.T) {
	tests := []struct{ in, want string }{
		{"room:1", "room=3A1"},
		{"a.b", "a=2Eb"},
		{"*", "=2A"},
		{">", "=3E"},
		{"with space", "with=20space"},
		{"=41", "=3D41"},
		{"A", "A"},
		{"", "="},
		{"é", "=C3=A9"},
		{"ok_-9", "ok_-9"},
	}
	for _, tc := range tests {
		got := escapeToken(tc.in)
		if got != tc.want {
			t.Errorf("escapeToken(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if back, ok := unescapeToken(got); !ok || back != tc.in {
			t.Errorf("unescapeToken(%q) = %q, %v; want %q", got, back, ok, tc.in)
		}
	}
	for _, bad := range []string{"", "a.b", "=4", "=4a", "=ZZ", "a b", "*"} {
		if s, ok := unescapeToken(bad); ok {
			t.Errorf("unescapeToken(%q) = %q, ok; want refused", bad, s)
		}
	}
}

func FuzzEscapeToken(f *testing.F) {
	for _, s := range []string{"", "a.b", "*", ">", "=41", "é\t", "x y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := escapeToken(s)
		if !token.MatchString(e) {
			t.Fatalf("escapeToken(%q) = %q: not one token", s, e)
		}
		if back, ok := unescapeToken(e); !ok || back != s {
			t.Fatalf("unescapeToken(escapeToken(%q)) = %q, %v", s, back, ok)
		}
	})
}
