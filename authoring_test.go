package luachan_test

// The script author's loop (SPEC section 8): mistakes that used to fail silently are
// loud, in the log and on GET /api/scripts.

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLoadTimeChecks: a near-miss field is a warning naming the file, the key and the
// field meant, in the log and on /api/scripts; an intercept list without handle_out does
// not load; socket.lua is listed too, with its load time and connects.
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
	// socket.lua has a load time and counts its connects, as the channels count their calls
	s.dial(t, "vsn=2.0.0")
	s.dial(t, "vsn=2.0.0")
	_, scripts = getScripts(t, s, "k")
	if sock := scripts["socket.lua"]; sock.Calls != 2 {
		t.Errorf("socket.lua calls = %d after 2 connects, want 2", sock.Calls)
	} else if at, err := sock.loaded(); err != nil || time.Since(at) > time.Minute {
		t.Errorf("socket.lua loaded_at %s (%v), want the server's start", sock.LoadedAt, err)
	}
}

// TestRunTimeChecks: an event for a script with no handle_in is answered at once with
// error {"reason":"no handle_in"} (not left to the client's timeout), and a socket:after
// message with no handle_info is logged; each is logged once per script version and
// event, and counted in /metrics.
func TestRunTimeChecks(t *testing.T) {
	dir := writeScripts(t, map[string]string{
		"quiet.lua": `return { topic = "quiet:*", join = function(topic, payload, socket)
  socket:after(0, "tick")
  return true
end }`,
	})
	s := startServer(t, dir)
	c := s.dial(t, "vsn=2.0.0")
	c.join("quiet:1", "1", `{}`, `{}`)
	for _, ref := range []string{"2", "3"} {
		c.send(`["1","` + ref + `","quiet:1","hello",{}]`)
		c.expect(`["1","` + ref + `","quiet:1","phx_reply",{"status":"error","response":{"reason":"no handle_in"}}]`)
	}
	s.log.waitFor(t, 5*time.Second, "level=WARN", "no handle_info", "script=quiet.lua")
	s.log.waitFor(t, 5*time.Second, "level=WARN", "no handle_in", "event=hello")
	s.expectMetric(t, "luachan_no_handle_in_total", 2) // both events handled: both lines written
	if n := s.log.count("level=WARN", "no handle_in", "event=hello"); n != 1 {
		t.Errorf("logged the missing handle_in %d times, want once per script version and event", n)
	}
	s.expectMetric(t, "luachan_no_handle_info_dropped_total", 1)
}

// TestTrafficLog: at -log-level debug every join (topic, params with secrets filtered,
// result, duration), event (topic, event, reply status, duration), leave and crash is a
// log line; -log-format json makes every line a JSON object.
func TestTrafficLog(t *testing.T) {
	dir := writeScripts(t, map[string]string{
		"echo.lua": `local r = { topic = "echo:*" }
function r.join(topic, payload) return payload.user ~= "mallory" end
function r.handle_in(event, payload)
  if event == "boom" then error("boom") end
  if event == "ping" then return "ok", payload end
end
return r`,
	})
	s := startServer(t, dir, "-log-format", "json")
	c := s.dial(t, "vsn=2.0.0")
	c.join("echo:1", "1", `{"user":"alice","token":"s3cret"}`, `{}`)
	c.send(`["1","2","echo:1","ping",{}]`)
	c.expect(`["1","2","echo:1","phx_reply",{"status":"ok","response":{}}]`)
	c.send(`["1","3","echo:1","quiet",{}]`)
	c.send(`["4","4","echo:2","phx_join",{"user":"mallory"}]`)
	c.expect(`["4","4","echo:2","phx_reply",{"status":"error","response":{"reason":"unauthorized"}}]`)
	c.send(`["1","5","echo:1","phx_leave",{}]`)
	c.expect(`["1","5","echo:1","phx_reply",{"status":"ok","response":{}}]`)
	c.expect(`["1","1","echo:1","phx_close",{}]`)
	c.join("echo:3", "6", `{}`, `{}`)
	c.send(`["6","7","echo:3","boom",{}]`)
	c.expect(`["6","6","echo:3","phx_error",{"reason":"channel_crash"}]`)

	want := []map[string]any{
		{"msg": "join", "topic": "echo:1", "result": "ok", "params": `{"token":"[FILTERED]","user":"alice"}`},
		{"msg": "event in", "topic": "echo:1", "event": "ping", "status": "ok"},
		{"msg": "event in", "topic": "echo:1", "event": "quiet", "status": "noreply"},
		{"msg": "join", "topic": "echo:2", "result": "refused"},
		{"msg": "leave", "topic": "echo:1", "reason": "leave"},
		{"msg": "event in", "topic": "echo:3", "event": "boom", "status": "crashed"},
		{"msg": "leave", "topic": "echo:3", "reason": "crashed"},
	}
	err := poll(5*time.Second, func() error {
		var lines []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(s.log.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("-log-format json wrote a line that is not JSON: %q", line)
			}
			lines = append(lines, m)
		}
		for _, w := range want {
			if !slices.ContainsFunc(lines, func(m map[string]any) bool { return subsetOf(w, m) && m["level"] == "DEBUG" }) {
				return fmt.Errorf("no debug line with %v", w)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if strings.Contains(s.log.String(), "s3cret") {
		t.Error("the log shows a token given in the join params")
	}
}

// subsetOf reports whether every key of want has the same value in got.
func subsetOf(want, got map[string]any) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// TestNoChannelScriptWarns: a scripts folder with no channel script (a typo in -scripts
// that names an empty folder, or only socket.lua) is a warning at start, not silence.
func TestNoChannelScriptWarns(t *testing.T) {
	s := startServer(t, writeScripts(t, map[string]string{"socket.lua": `return { connect = function() return true end }`}))
	s.log.waitFor(t, 5*time.Second, "level=WARN", "no channel script loaded")
	full := startServer(t, writeScripts(t, map[string]string{"a.lua": `return { topic = "a", join = function() return true end }`}))
	if n := full.log.count("no channel script"); n != 0 {
		t.Errorf("warned of no channel script with a.lua loaded")
	}
}
