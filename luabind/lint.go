package luabind

import (
	"fmt"
	"log/slog"
	"slices"

	lua "github.com/yuin/gopher-lua"
)

// channelFields are the fields a channel table may declare; socketFields, socket.lua's.
var (
	channelFields = []string{"topic", "intercept", "history", "join", "handle_in", "handle_out", "handle_info", "leave", "tick", "init", "handle_call", "handle_tick", "terminate"}
	socketFields  = []string{"connect"}
)

// nearMissWarnings returns a warning for each string key of t that is not one of known
// but within two edits of one: `handle_inn`, `intercepts` and `hadle_out` load (a table
// may hold helpers and constants), yet would silently never run. Sorted by key.
func nearMissWarnings(t *lua.LTable, known []string) []string {
	var warnings []string
	t.ForEach(func(k, _ lua.LValue) {
		key, ok := k.(lua.LString)
		if !ok || slices.Contains(known, string(key)) {
			return
		}
		if meant := nearest(string(key), known); meant != "" {
			warnings = append(warnings, fmt.Sprintf("unknown field %q: did you mean %s?", string(key), meant))
		}
	})
	slices.Sort(warnings)
	return warnings
}

// missingHint is what to add to the error for a required field missing from t when t has a
// key within two edits of it (`conect`, `Join`): the script does not load, so that key's
// near-miss warning would never be shown.
func missingHint(t *lua.LTable, field string) string {
	var keys []string
	t.ForEach(func(k, _ lua.LValue) {
		if key, ok := k.(lua.LString); ok && nearest(string(key), []string{field}) != "" {
			keys = append(keys, string(key))
		}
	})
	if len(keys) == 0 {
		return ""
	}
	return fmt.Sprintf(" (the table has %q: did you mean %s?)", slices.Min(keys), field)
}

// nearest returns the field of known within two edits of key (the closest, the first of
// equals), or "" if none is. Keys of one or two letters are never near misses.
func nearest(key string, known []string) string {
	if len(key) < 3 {
		return ""
	}
	best, bestDist := "", 3
	for _, f := range known {
		if d := editDistance(key, f); d < bestDist {
			best, bestDist = f, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, over bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// logWarnings logs each load warning of a script at warn, on the script's logger.
func logWarnings(logger *slog.Logger, warnings []string) {
	for _, w := range warnings {
		logger.Warn("script warning", "warning", w)
	}
}
