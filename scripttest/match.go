package scripttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// contains reports whether the JSON payload got holds want: every key want has, with a
// value that holds want's (recursively); lists item by item, of the same length; anything
// else equal. nil want holds nothing and matches everything.
func contains(got, want []byte) bool {
	if want == nil {
		return true
	}
	var g, w any
	if json.Unmarshal(got, &g) != nil || json.Unmarshal(want, &w) != nil {
		return bytes.Equal(got, want)
	}
	return subset(g, w)
}

func subset(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			// Lua's {} encodes as an object; it stands for an empty list too.
			l, isList := got.([]any)
			return isList && len(w) == 0 && len(l) == 0
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok || !subset(gv, wv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !subset(g[i], w[i]) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(got, want)
	}
}

// maxShown bounds a payload quoted in a failure message.
const maxShown = 200

// show quotes a message for a failure: event and payload.
func show(event string, payload []byte) string {
	p := strings.TrimSpace(string(payload))
	if len(p) > maxShown {
		p = p[:maxShown] + "..."
	}
	if p == "" {
		return fmt.Sprintf("%q", event)
	}
	return fmt.Sprintf("%q %s", event, p)
}

// expected describes what an assertion looked for.
func expected(event string, want []byte) string {
	if want == nil {
		return fmt.Sprintf("%q", event)
	}
	return show(event, want)
}
