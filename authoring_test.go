package luachan_test

// The script author's loop (SPEC section 8): mistakes that used to fail silently are
// loud, in the log and on GET /api/scripts.

import (
	"strings"
	"testing"
	"time"
)

// TestLoadTimeChecks: a near-miss field is a warning naming the file, the key and the
// field meant, in the log and on /api/scripts; an intercept list without handle_out does
// not load; socket.lua is listed too.
func TestLoadTimeChecks(t *testing.T) {
	dir := writeScripts(t, map[string]string{
		"typo.lua": `local r = { topic = "typo:*" }
function r.join() return true end
function r.handle_inn(event, payload, socket) return "ok" end
return r`,
		"leaky.lua": `return { topic = "leaky:*", intercept = { "secret" },
  join = function() return true end }`,
		"socket.lua": `return { connect = function() return true end }`,
	})
	s := startServer(t, dir, "-api-key", "k")
	s.log.waitFor(t, 5*time.Second, "typo.lua", "did you mean handle_in?", "level=WARN")
	s.log.waitFor(t, 5*time.Second, "leaky.lua", "no handle_out function", "level=ERROR")

	_, scripts := getScripts(t, s, "k")
	typo := scripts["typo.lua"]
	if len(typo.Warnings) != 1 || !strings.Contains(typo.Warnings[0], `"handle_inn": did you mean handle_in?`) {
		t.Errorf("typo.lua warnings = %q, want one naming handle_inn and handle_in", typo.Warnings)
	}
	if typo.Topic != "typo:*" {
		t.Errorf("typo.lua topic = %q: a warning must not stop the load", typo.Topic)
	}
	if leaky := scripts["leaky.lua"]; leaky.Topic != "" || !strings.Contains(leaky.errorText(), "no handle_out function") {
		t.Errorf("leaky.lua = %+v, want not loaded, with an error naming the missing handle_out", leaky)
	}
	if sock, ok := scripts["socket.lua"]; !ok || !sock.Socket || sock.Hash == "" {
		t.Errorf("socket.lua = %+v (listed %v), want it listed as the socket script with its hash", sock, ok)
	}
}
