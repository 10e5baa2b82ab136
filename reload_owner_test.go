package luachan_test

// Hot reload, issue 11: modules required from a callback, who owns a pattern two files
// claim, syntax errors at the end of a file, a broken socket.lua, and a join in flight when
// its file goes. Helpers are in reload_helpers_test.go.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// lateRequireLua is a channel script for pattern that requires lib.greet only inside
// handle_in; join answers version 0, events the module's version.
func lateRequireLua(pattern string) string {
	return fmt.Sprintf(`local r = { topic = %q }
function r.join(topic, payload, socket)
  socket.assigns.count = 0
  return true, { version = 0 }
end
function r.handle_in(event, payload, socket)
  local greet = require("lib.greet")
  socket.assigns.count = socket.assigns.count + 1
  return "ok", { version = greet.version, count = socket.assigns.count }
end
return r
`, pattern)
}

func TestReloadModuleRequiredInCallback(t *testing.T) {
	t.Parallel()
	dir := writeScripts(t, map[string]string{
		"lib/greet.lua": "return { version = 1 }\n",
		"late.lua":      lateRequireLua("late:*"),
		"other.lua":     counterLua("other:*", 1),
	})
	path := filepath.Join(dir, "lib/greet.lua")
	s := startServer(t, dir)
	c := s.dial(t, "vsn=2.0.0")
	k := joinCounter(t, c, "late:a", "1", 0)
	o := joinCounter(t, c, "other:a", "2", 1)
	k.expectVersion(t, 1)

	// a rescan with nothing changed reloads nothing, although the script now uses a
	// module it did not require while loading
	rescanned(t, s, dir, 1)
	k.expectVersion(t, 1)
	if n := s.log.count(logReloaded); n != 0 {
		t.Fatalf("%d reloads with no file changed, want 0:\n%s", n, strings.Join(s.log.lines(logReloaded), "\n"))
	}

	for v := 2; v <= 3; v++ {
		saveRenameOver(t, path, fmt.Sprintf("return { version = %d }\n", v))
		k.waitVersion(t, v)
		s.log.waitCount(t, v-1, logReloaded, "script=late.lua")
	}
	o.expectVersion(t, 1)
	if n := s.log.count(logReloaded, "script=other.lua"); n != 0 {
		t.Errorf("other.lua, which requires no module, reloaded %d times, want 0", n)
	}
	// a channel joined after the change sees it too
	k2 := joinCounter(t, c, "late:b", "3", 0)
	k2.expectVersion(t, 3)
	c.heartbeat("hb")
}

// TestReloadPatternOwnership: of two files claiming one pattern the first by name serves it,
// whatever order they came in, and a file that loses its pattern closes its channels as a
// deleted one does.
func TestReloadPatternOwnership(t *testing.T) {
	t.Parallel()
	dir := writeScripts(t, map[string]string{
		"board.lua": counterLua("dup:*", 1),
		"zed.lua":   counterLua("dup:*", 9),
		"other.lua": counterLua("other:*", 1),
	})
	s := startServer(t, dir)
	c := s.dial(t, "vsn=2.0.0")
	o := joinCounter(t, c, "other:a", "o", 1)
	n := 0
	// joinVersion joins dup:x and requires version v to answer
	joinVersion := func(t *testing.T, v int) *counter {
		t.Helper()
		n++
		k, got := waitJoin(t, c, "dup:x", fmt.Sprintf("j%d.", n))
		if got != v {
			t.Fatalf("dup:x joined by version %d, want %d", got, v)
		}
		k.expectVersion(t, v)
		return k
	}
	// closed expects the phx_close of k's channel
	closed := func(t *testing.T, k *counter) {
		t.Helper()
		c.expectWithin(fmt.Sprintf(`[%q,%q,"dup:x","phx_close",{}]`, k.joinRef, k.joinRef), reloadWithin)
	}

	// at start: board.lua, first by name; zed.lua is reported
	k := joinVersion(t, 1)
	s.log.waitCount(t, 1, logError, `msg="script not routed"`, "script=zed.lua", "board.lua")

	// a new file earlier by name takes the pattern; board.lua's channel ends
	writeFile(t, filepath.Join(dir, "aaa.lua"), counterLua("dup:*", 2))
	closed(t, k)
	k = joinVersion(t, 2)
	s.log.waitCount(t, 1, `msg="topic handed over"`, "topic=dup:*", "from=board.lua", "to=aaa.lua")

	// deleting it hands the pattern back
	mustDo(t, os.Remove(filepath.Join(dir, "aaa.lua")))
	closed(t, k)
	k = joinVersion(t, 1)
	s.log.waitCount(t, 1, `msg="topic handed over"`, "topic=dup:*", "from=aaa.lua", "to=board.lua")

	// and recreating it takes the pattern again
	writeFile(t, filepath.Join(dir, "aaa.lua"), counterLua("dup:*", 3))
	closed(t, k)
	k = joinVersion(t, 3)
	s.log.waitCount(t, 2, `msg="topic handed over"`, "topic=dup:*", "from=board.lua", "to=aaa.lua")
	o.expectVersion(t, 1)

	// a restart on the same files gives the same owner
	s.stop(t)
	s = startServer(t, dir)
	c = s.dial(t, "vsn=2.0.0")
	k = joinVersion(t, 3)

	// with both earlier files gone, the last one serves
	mustDo(t, os.Remove(filepath.Join(dir, "aaa.lua")))
	mustDo(t, os.Remove(filepath.Join(dir, "board.lua")))
	closed(t, k)
	joinVersion(t, 9)
	c.heartbeat("hb")
}

func TestReloadSyntaxErrorAtEnd(t *testing.T) {
	t.Parallel()
	dir := writeScripts(t, map[string]string{"reload.lua": counterLua("reload:*", 1)})
	s := startServer(t, dir)
	c := s.dial(t, "vsn=2.0.0")
	k := joinCounter(t, c, "reload:a", "1", 1)

	// the last "end" of handle_in is missing: the function opened on line 7
	src := counterLua("reload:*", 2)
	src = strings.TrimSuffix(src, "return r\n")
	src = strings.TrimSuffix(src, "end\n")
	lines := strings.Count(src, "\n") + 1
	saveRenameOver(t, filepath.Join(dir, "reload.lua"), src)
	s.log.waitFor(t, reloadWithin, logError, fmt.Sprintf("reload.lua:%d:", lines),
		"'end' expected (to close 'function' at line 7)", fmt.Sprintf("line=%d", lines))
	k.expectVersion(t, 1)
}

func TestReloadBrokenSocketScript(t *testing.T) {
	t.Parallel()
	dir := writeScripts(t, map[string]string{
		"socket.lua": "return { connect = function(params) return params.token == \"v1\" end }\n",
		"other.lua":  counterLua("other:*", 1),
	})
	s := startServer(t, dir)
	s.dial(t, "vsn=2.0.0&token=v1")

	saveRenameOver(t, filepath.Join(dir, "socket.lua"), "return {\n  connect = function(params) return ) end\n}\n")
	s.log.waitFor(t, reloadWithin, logError, `msg="script not reloaded; the previous version keeps serving"`,
		"script=socket.lua", "socket.lua:2:", "line=2")
	if lines := s.log.lines(`msg="script not loaded"`); len(lines) != 0 {
		t.Fatalf("a broken save of a serving socket.lua is logged as not loaded:\n%s", strings.Join(lines, "\n"))
	}
	// the previous version keeps deciding
	c := s.dial(t, "vsn=2.0.0&token=v1")
	joinCounter(t, c, "other:a", "1", 1)
	if _, err := s.dialHeader(t, "vsn=2.0.0&token=v2", nil); handshakeStatus(err) != http.StatusForbidden {
		t.Fatalf("dial with a token the serving socket.lua refuses: %v, want HTTP 403", err)
	}
}

// waitingJoinLua is a channel script whose join logs "join waiting" and then spins until
// luachan.store holds "go" (set by gateLua), so a test can change the folder while a join
// runs.
func waitingJoinLua(pattern string, v int) string {
	return fmt.Sprintf(`local r = { topic = %q }
function r.join(topic, payload, socket)
  luachan.log("info", "join waiting")
  while not luachan.store.get("go") do end
  return true, { version = %d }
end
function r.handle_in(event, payload, socket)
  return "ok", { version = %d }
end
return r
`, pattern, v, v)
}

// gateLua serves "gate": its event "open" lets waiting joins finish.
const gateLua = `return {
  topic = "gate",
  join = function() return true end,
  handle_in = function(event) luachan.store.set("go", true); return "ok" end,
}
`

// TestReloadJoinInFlight: a join still running when its file goes ends like the file's
// other channels, with phx_close after its reply, rather than living on the old version.
func TestReloadJoinInFlight(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(t *testing.T, s *server, dir string)
	}{
		{"file deleted", func(t *testing.T, s *server, dir string) {
			mustDo(t, os.Remove(filepath.Join(dir, "slow.lua")))
			s.log.waitFor(t, reloadWithin, logRemoved, "script=slow.lua")
		}},
		{"pattern taken by a file earlier by name", func(t *testing.T, s *server, dir string) {
			writeFile(t, filepath.Join(dir, "early.lua"), counterLua("slow:*", 2))
			s.log.waitFor(t, reloadWithin, `msg="topic handed over"`, "from=slow.lua", "to=early.lua")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := writeScripts(t, map[string]string{
				"slow.lua": waitingJoinLua("slow:*", 1),
				"gate.lua": gateLua,
			})
			s := startServer(t, dir, noBudget...)
			g := s.dial(t, "vsn=2.0.0")
			g.join("gate", "g", `{}`, `{}`)
			c := s.dial(t, "vsn=2.0.0")
			c.send(`["j","j","slow:a","phx_join",{}]`)
			s.log.waitFor(t, reloadWithin, "join waiting")

			tc.change(t, s, dir)
			g.send(`["g","g1","gate","open",{}]`)
			g.expect(`["g","g1","gate","phx_reply",{"status":"ok","response":{}}]`)
			c.expect(`["j","j","slow:a","phx_reply",{"status":"ok","response":{"version":1}}]`)
			c.expectWithin(`["j","j","slow:a","phx_close",{}]`, reloadWithin)
			// the channel is gone
			c.send(`["j","e1","slow:a","tick",{}]`)
			c.expect(`[null,"e1","slow:a","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
			c.heartbeat("hb")
		})
	}
}
