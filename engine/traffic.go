package engine

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/luachan/luachan/hub"
)

// The traffic log: at debug level every join, client event, leave and crash is one
// line, as Phoenix logs "JOINED rooms:42 in 120µs". Nothing is formatted unless the
// logger takes debug lines.

// tracing reports whether the traffic log is on.
func (e *Engine) tracing() bool { return e.log.Enabled(context.Background(), slog.LevelDebug) }

// traceJoin logs a join's outcome ("ok", "refused", "crashed") and how long join took.
func (c *channel) traceJoin(m *hub.Message, result string, start time.Time) {
	if !c.e.tracing() {
		return
	}
	c.e.log.Debug("join", "topic", c.topic, "params", filteredParams(m), "result", result,
		"duration", time.Since(start), "script", c.file.name, "conn", c.conn.Key())
}

// traceIn logs a client event, the status of its reply ("" for none) and how long
// handle_in took.
func (c *channel) traceIn(m *hub.Message, status string, start time.Time) {
	if !c.e.tracing() {
		return
	}
	if status == "" {
		status = "noreply"
	}
	c.e.log.Debug("event in", "topic", c.topic, "event", m.Event, "status", status,
		"duration", time.Since(start), "conn", c.conn.Key())
}

// traceLeave logs the end of a joined channel and why: "leave", "closed", "shutdown",
// "crashed".
func (c *channel) traceLeave(reason string) {
	if !c.e.tracing() {
		return
	}
	c.e.log.Debug("leave", "topic", c.topic, "reason", reason, "conn", c.conn.Key())
}

// filteredParams is a join's payload for the log, with the value of every key that
// names a secret (token, password, secret, key) replaced by "[FILTERED]", as Phoenix's
// filter_parameters does.
func filteredParams(m *hub.Message) string {
	if m.Binary {
		return "(binary)"
	}
	var v any
	if err := json.Unmarshal(m.Payload, &v); err != nil {
		return "(not JSON)"
	}
	data, _ := json.Marshal(FilterSecrets(v))
	return string(data)
}

// FilterSecrets replaces, in place, the values of keys that name secrets (token,
// password, secret, key) in decoded JSON with "[FILTERED]", and returns v: the
// traffic log's params and the console's payloads and presences show only that.
func FilterSecrets(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, val := range v {
			if secretKey(k) {
				v[k] = "[FILTERED]"
			} else {
				v[k] = FilterSecrets(val)
			}
		}
	case []any:
		for i := range v {
			v[i] = FilterSecrets(v[i])
		}
	}
	return v
}

// secretKey reports whether a parameter's name says it holds a secret.
func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"token", "password", "secret", "key"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}
