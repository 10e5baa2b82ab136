package luachan_test

// SPEC section 4 (issue 3): hot reload, seen from connected clients. Every way a file
// really changes on disk, broken saves, lib modules, re-routing, intercept lists, calls
// in flight, reload under traffic, and the SIGHUP and periodic-rescan safety nets. Each
// test asserts the new behaviour through a real client within a bounded wait, and that
// the client's socket, join_ref and assigns survived. Helpers are in
// reload_helpers_test.go, GET /api/scripts in reload_api_test.go.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestReloadSaveStyles(t *testing.T) {
	t.Parallel()
	for _, style := range saveStyles {
		t.Run(style.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			save := style.layout(t, dir, map[string]string{
				"reload.lua": counterLua("reload:*", 1),
				"other.lua":  counterLua("other:*", 1),
			})
			s := startServer(t, dir)
			c := s.dial(t, "vsn=2.0.0")
			k := joinCounter(t, c, "reload:a", "1", 1)
			o := joinCounter(t, c, "other:a", "2", 1)
			k.expectVersion(t, 1)
			o.expectVersion(t, 1)

			for v := 2; v <= 3; v++ { // twice: the first save must not disturb the watch
				save(t, "reload.lua", counterLua("reload:*", v))
				k.waitVersion(t, v)
				s.log.waitCount(t, v-1, logReloaded, "script=reload.lua")
			}
			// the socket, both joins and their assigns survived; the other script was
			// not reloaded
			o.expectVersion(t, 1)
			c.heartbeat("hb")
			k.expectVersion(t, 3)
			if n := s.log.count(logReloaded, "script=other.lua"); n != 0 {
				t.Errorf("other.lua reloaded %d times, want 0 (its content did not change)", n)
			}
			if lines := s.log.lines(logRemoved); len(lines) != 0 {
				t.Errorf("a save removed a script:\n%s", strings.Join(lines, "\n"))
			}
			if lines := s.log.lines(logError); style.atomic && len(lines) != 0 {
				t.Errorf("an atomic save logged errors:\n%s", strings.Join(lines, "\n"))
			}
		})
	}
}

func TestReloadNewScript(t *testing.T) {
	t.Parallel()
	for _, style := range []struct {
		name string
		save func(testing.TB, string, string)
	}{
		{"written", saveInPlace},
		{"renamed into place", saveRenameOver},
	} {
		t.Run(style.name, func(t *testing.T) {
			t.Parallel()
			dir := writeScripts(t, map[string]string{"reload.lua": counterLua("reload:*", 1)})
			s := startServer(t, dir)
			c := s.dial(t, "vsn=2.0.0")
			k := joinCounter(t, c, "reload:a", "1", 1)
			k.expectVersion(t, 1)
			expectUnmatched(t, c, "fresh:x", "f0")

			style.save(t, filepath.Join(dir, "fresh.lua"), counterLua("fresh:*", 7))
			f, v := waitJoin(t, c, "fresh:x", "f")
			if v != 7 {
				t.Fatalf("fresh:x joined by version %d, want 7", v)
			}
			f.expectVersion(t, 7)
			// the running channel was not disturbed
			k.expectVersion(t, 1)
			s.log.waitCount(t, 1, logLoaded, "script=fresh.lua")
			if n := s.log.count(logReloaded, "script=reload.lua"); n != 0 {
				t.Errorf("reload.lua reloaded %d times by a new file beside it, want 0", n)
			}
		})
	}
}

func TestReloadDeletedScript(t *testing.T) {
	t.Parallel()
	dir := writeScripts(t, map[string]string{
		"reload.lua": counterLua("reload:*", 1),
		"other.lua":  counterLua("other:*", 1),
	})
	s := startServer(t, dir)
	c := s.dial(t, "vsn=2.0.0")
	k := joinCounter(t, c, "reload:a", "1", 1)
	o := joinCounter(t, c, "other:a", "2", 1)
	k.expectVersion(t, 1)

	mustDo(t, os.Remove(filepath.Join(dir, "reload.lua")))
	c.expectWithin(`["1","1","reload:a","phx_close",{}]`, reloadWithin)
	// the channel is gone, its topic no longer routes, and the socket carries on
	c.send(`["1","9","reload:a","tick",{}]`)
	c.expect(`[null,"9","reload:a","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
	expectUnmatched(t, c, "reload:b", "3")
	o.expectVersion(t, 1)
	c.heartbeat("hb")
	s.log.waitCount(t, 1, logRemoved, "script=reload.lua")

	// written again, it routes again
	writeFile(t, filepath.Join(dir, "reload.lua"), counterLua("reload:*", 2))
	k2, v := waitJoin(t, c, "reload:a", "r")
	if v != 2 {
		t.Fatalf("reload:a joined by version %d, want 2", v)
	}
	k2.expectVersion(t, 2)
	o.expectVersion(t, 1)
}

func TestReloadRenamedScript(t *testing.T) {
	t.Parallel()
	// git mv, or a rename in a file manager: the old name is a deleted script, the new
	// one a new script claiming the same pattern in the same rescan
	dir := writeScripts(t, map[string]string{"reload.lua": counterLua("reload:*", 1)})
	s := startServer(t, dir)
	c := s.dial(t, "vsn=2.0.0")
	k := joinCounter(t, c, "reload:a", "1", 1)
	k.expectVersion(t, 1)

	mustDo(t, os.Rename(filepath.Join(dir, "reload.lua"), filepath.Join(dir, "renamed.lua")))
	c.expectWithin(`["1","1","reload:a","phx_close",{}]`, reloadWithin)
	k2, v := waitJoin(t, c, "reload:a", "r")
	if v != 1 {
		t.Fatalf("reload:a joined by version %d, want 1", v)
	}
	k2.expectVersion(t, 1)
	s.log.waitCount(t, 1, logLoaded, "script=renamed.lua")
	if lines := s.log.lines(logError); len(lines) != 0 {
		t.Fatalf("a rename logged errors:\n%s", strings.Join(lines, "\n"))
	}
}

func TestReloadBrokenSave(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		broken string
		// wantLog are substrings of the one error line: file and line when the error
		// has a position in the source, file and message when it does not
		wantLog []string
	}{
		{
			name:    "syntax error",
			broken:  brokenLua,
			wantLog: []string{"reload.lua:3:", "line=3"},
		},
		{
			name:    "half-written file",
			broken:  counterLua("reload:*", 2)[:len(counterLua("reload:*", 2))/2],
			wantLog: []string{"reload.lua"},
		},
		{
			name:    "error raised while loading",
			broken:  "local r = { topic = \"reload:*\" }\nerror(\"boom while loading\")\nfunction r.join() return true end\nreturn r\n",
			wantLog: []string{"reload.lua:2:", "boom while loading", "line=2"},
		},
		{
			name:    "runtime error while loading",
			broken:  "local r = { topic = \"reload:*\" }\nlocal cfg = nil\nr.limit = cfg.limit\nfunction r.join() return true end\nreturn r\n",
			wantLog: []string{"reload.lua:3:", "line=3"},
		},
		{
			name:    "no join",
			broken:  "return { topic = \"reload:*\", handle_in = function() return \"ok\" end }\n",
			wantLog: []string{"reload.lua", "join"},
		},
		{
			name:    "no topic",
			broken:  "return { join = function() return true end }\n",
			wantLog: []string{"reload.lua", "topic"},
		},
		{
			name:    "not a table",
			broken:  "return 42\n",
			wantLog: []string{"reload.lua", "table"},
		},
		{
			name:    "a pattern another script owns",
			broken:  counterLua("alpha:*", 99),
			wantLog: []string{"reload.lua", "alpha:*"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := writeScripts(t, map[string]string{
				"reload.lua": counterLua("reload:*", 1),
				"alpha.lua":  counterLua("alpha:*", 1),
			})
			path := filepath.Join(dir, "reload.lua")
			s := startServer(t, dir)
			c := s.dial(t, "vsn=2.0.0")
			k := joinCounter(t, c, "reload:a", "1", 1)
			a := joinCounter(t, c, "alpha:a", "2", 1)
			k.expectVersion(t, 1)

			saveRenameOver(t, path, tc.broken)
			s.log.waitFor(t, reloadWithin, append([]string{logError}, tc.wantLog...)...)
			// the old code keeps serving: the joined channel, a new join, the other script
			k.expectVersion(t, 1)
			if _, v := waitJoin(t, c, "reload:b", "b"); v != 1 {
				t.Fatalf("reload:b joined by version %d after a broken save, want 1", v)
			}
			a.expectVersion(t, 1)
			// logged once: another rescan of the unchanged broken file says nothing more
			rescanned(t, s, dir, 1)
			lines := s.log.lines(logError)
			if len(lines) != 1 {
				t.Fatalf("%d error lines, want 1 (logged once):\n%s", len(lines), strings.Join(lines, "\n"))
			}
			if strings.Contains(lines[0], "line=0") { // an error with no position has no line
				t.Errorf("error line says line=0: %s", lines[0])
			}
			k.expectVersion(t, 1)

			// fixing the file takes effect, for the joined channel and new joins
			saveRenameOver(t, path, counterLua("reload:*", 2))
			k.waitVersion(t, 2)
			if _, v := waitJoin(t, c, "reload:c", "c"); v != 2 {
				t.Fatalf("reload:c joined by version %d after the fix, want 2", v)
			}
			a.expectVersion(t, 1)
			rescanned(t, s, dir, 2)
			if lines := s.log.lines(logError); len(lines) != 1 {
				t.Fatalf("%d error lines after the fix, want the 1 of the broken save:\n%s", len(lines), strings.Join(lines, "\n"))
			}
			c.heartbeat("hb")
		})
	}
}

func TestReloadModules(t *testing.T) {
	t.Parallel()

	t.Run("a changed module reloads every script requiring it", func(t *testing.T) {
		t.Parallel()
		dir := writeScripts(t, map[string]string{
			"lib/ver.lua": "return { version = 1 }\n",
			"lib/mid.lua": "local v = require(\"lib.ver\")\nreturn { version = v.version }\n",
			"one.lua":     moduleLua("one:*", "lib.ver"),
			"two.lua":     moduleLua("two:*", "lib.mid"), // through another module
			"three.lua":   counterLua("three:*", 1),      // requires nothing
		})
		s := startServer(t, dir)
		c := s.dial(t, "vsn=2.0.0")
		one := joinCounter(t, c, "one:a", "1", 1)
		two := joinCounter(t, c, "two:a", "2", 1)
		three := joinCounter(t, c, "three:a", "3", 1)

		writeFile(t, filepath.Join(dir, "lib/ver.lua"), "return { version = 2 }\n")
		one.waitVersion(t, 2)
		two.waitVersion(t, 2)
		three.expectVersion(t, 1)
		s.log.waitCount(t, 1, logReloaded, "script=one.lua")
		s.log.waitCount(t, 1, logReloaded, "script=two.lua")
		if n := s.log.count(logReloaded, "script=three.lua"); n != 0 {
			t.Errorf("three.lua, which requires no module, reloaded %d times, want 0", n)
		}

		// a broken module keeps every dependent on its running version
		saveRenameOver(t, filepath.Join(dir, "lib/ver.lua"), "return { version = ) }\n")
		s.log.waitFor(t, reloadWithin, logError, "lib/ver.lua:1")
		one.expectVersion(t, 2)
		two.expectVersion(t, 2)
		// and fixing it reloads them all again
		saveRenameOver(t, filepath.Join(dir, "lib/ver.lua"), "return { version = 3 }\n")
		one.waitVersion(t, 3)
		two.waitVersion(t, 3)
		three.expectVersion(t, 1)
		c.heartbeat("hb")
	})

	t.Run("a lib folder made after start is watched", func(t *testing.T) {
		t.Parallel()
		dir := writeScripts(t, map[string]string{"reload.lua": counterLua("reload:*", 1)})
		s := startServer(t, dir)
		c := s.dial(t, "vsn=2.0.0")
		k := joinCounter(t, c, "reload:a", "1", 1)

		mustDo(t, os.MkdirAll(filepath.Join(dir, "lib/util"), 0o755))
		writeFile(t, filepath.Join(dir, "lib/util/ver.lua"), "return { version = 1 }\n")
		writeFile(t, filepath.Join(dir, "four.lua"), moduleLua("four:*", "lib.util.ver"))
		four, v := waitJoin(t, c, "four:a", "f")
		if v != 1 {
			t.Fatalf("four:a joined by version %d, want 1", v)
		}
		four.expectVersion(t, 1)

		writeFile(t, filepath.Join(dir, "lib/util/ver.lua"), "return { version = 2 }\n")
		four.waitVersion(t, 2)
		k.expectVersion(t, 1)
	})
}

func TestReloadTopicChange(t *testing.T) {
	t.Parallel()
	dir := writeScripts(t, map[string]string{"reload.lua": counterLua("reload:*", 1)})
	s := startServer(t, dir)
	c := s.dial(t, "vsn=2.0.0")
	k := joinCounter(t, c, "reload:a", "1", 1)

	saveRenameOver(t, filepath.Join(dir, "reload.lua"), counterLua("moved:*", 2))
	// new joins follow the new pattern
	m, v := waitJoin(t, c, "moved:x", "m")
	if v != 2 {
		t.Fatalf("moved:x joined by version %d, want 2", v)
	}
	m.expectVersion(t, 2)
	expectUnmatched(t, c, "reload:b", "3")
	// the channel joined before stays on its script, now running the new code
	k.expectVersion(t, 2)
	c.heartbeat("hb")
}

// interceptLua is version v of a script whose handle_out marks what it delivers, with
// the given intercept list (Lua list text, e.g. `{ "a" }`).
func interceptLua(v int, intercept string) string {
	return fmt.Sprintf(`return {
  topic = "icpt:*",
  intercept = %s,
  join = function() return true end,
  handle_out = function(event, payload, socket)
    payload.via = %d
    socket:push(event, payload)
  end,
}
`, intercept, v)
}

func TestReloadIntercept(t *testing.T) {
	t.Parallel()
	dir := writeScripts(t, map[string]string{"icpt.lua": interceptLua(1, `{ "a" }`)})
	s := startServer(t, dir, "-api-key", apiKey)
	c := s.dial(t, "vsn=2.0.0")
	c.join("icpt:x", "1", `{}`, `{}`)

	n := 0
	// round broadcasts "a" and "b" and returns what arrived for each, the payload's via
	// field (the handle_out version), or 0 for a fast-laned copy
	round := func(t *testing.T) (a, b int) {
		t.Helper()
		n++
		for _, ev := range []string{"a", "b"} {
			body := fmt.Sprintf(`{"topic":"icpt:x","event":%q,"payload":{"n":%d}}`, ev, n)
			if got := s.post(t, "/api/broadcast", apiKey, body); got != http.StatusAccepted {
				t.Fatalf("POST /api/broadcast: HTTP %d, want 202", got)
			}
		}
		got := map[string]int{}
		for range 2 { // fast-laned and intercepted copies may arrive in either order
			f := c.readArray()
			p, _ := f[4].(map[string]any)
			ev, _ := f[3].(string)
			seq, err := asInt(p["n"])
			if f[1] != nil || (ev != "a" && ev != "b") || err != nil || int(seq) != n {
				t.Fatalf("got %s, want broadcast a or b of round %d", mustJSON(t, f), n)
			}
			// handle_out's copy is a push ([join_ref, null, ...]), a fast-laned one a
			// broadcast ([null, null, ...])
			if _, via := p["via"]; via != (f[0] == "1") || (!via && f[0] != nil) {
				t.Fatalf("got %s: want a push with via, or a broadcast without", mustJSON(t, f))
			}
			if _, dup := got[ev]; dup {
				t.Fatalf("broadcast %s delivered twice in round %d", ev, n)
			}
			got[ev] = 0
			if via, ok := p["via"]; ok {
				v, err := asInt(via)
				if err != nil {
					t.Fatalf("got %s: via is not a version", mustJSON(t, f))
				}
				got[ev] = int(v)
			}
		}
		return got["a"], got["b"]
	}

	if a, b := round(t); a != 1 || b != 0 {
		t.Fatalf("before the reload: a via %d, b via %d; want a through handle_out v1, b fast-laned", a, b)
	}
	// each change takes effect for the very next broadcast once the new version is in
	for i, tc := range []struct {
		intercept string
		a, b      int // want: the handle_out version through which each arrives, 0 fast-laned
	}{
		{`{ "b" }`, 0, 2}, // a list swapped for another
		{`{}`, 0, 0},      // an empty list intercepts nothing
		{`nil`, 4, 4},     // no list at all: handle_out sees every event
		{`{ "a" }`, 5, 0}, // and back
	} {
		v := i + 2
		saveRenameOver(t, filepath.Join(dir, "icpt.lua"), interceptLua(v, tc.intercept))
		s.log.waitCount(t, v-1, logReloaded, "script=icpt.lua")
		if a, b := round(t); a != tc.a || b != tc.b {
			t.Fatalf("intercept = %s (v%d): a via %d, b via %d; want a via %d, b via %d (0: fast-laned)", tc.intercept, v, a, b, tc.a, tc.b)
		}
	}
	c.heartbeat("hb")
}

func TestReloadCallInFlight(t *testing.T) {
	t.Parallel()
	const spin = 1000 // ms the slow call runs, far longer than a reload takes
	dir := writeScripts(t, map[string]string{"reload.lua": counterLua("reload:*", 1)})
	s := startServer(t, dir, noBudget...)
	c := s.dial(t, "vsn=2.0.0")
	k := joinCounter(t, c, "reload:a", "1", 1)
	k.expectVersion(t, 1)

	k.ref++
	ref := fmt.Sprintf("1.%d", k.ref)
	c.send(fmt.Sprintf(`["1",%q,"reload:a","slow",{"ms":%d}]`, ref, spin))
	saveRenameOver(t, filepath.Join(dir, "reload.lua"), counterLua("reload:*", 2))

	// the call finishes on the version it started with...
	f := c.readArray()
	r, _ := f[4].(map[string]any)
	resp, _ := r["response"].(map[string]any)
	version, _ := asInt(resp["version"])
	count, _ := asInt(resp["count"])
	started, err1 := asInt(resp["started"])
	finished, err2 := asInt(resp["finished"])
	if f[1] != ref || r["status"] != "ok" || version != 1 || count != 2 || err1 != nil || err2 != nil {
		t.Fatalf("got %s, want version 1's ok reply {version 1, count 2, started, finished} to the slow call", mustJSON(t, f))
	}
	k.count++
	// ...though the new version was swapped in while it ran
	s.log.waitFor(t, reloadWithin, logReloaded, "script=reload.lua")
	line := s.log.lines(logReloaded, "script=reload.lua")[0]
	at, err := logTime(line)
	if err != nil {
		t.Fatal(err)
	}
	if ms := at.UnixMilli(); ms < started || ms > finished {
		t.Fatalf("the reload (at %d) did not happen during the slow call (%d to %d): the test proves nothing; line: %s", ms, started, finished, line)
	}
	// the next event runs the new code, assigns intact
	k.expectVersion(t, 2)
}

// logTime returns the time= attribute of a slog text line.
func logTime(line string) (time.Time, error) {
	v, ok := strings.CutPrefix(line, "time=")
	if !ok {
		return time.Time{}, fmt.Errorf("log line without a time: %s", line)
	}
	v, _, _ = strings.Cut(v, " ")
	return time.Parse(time.RFC3339Nano, v)
}

func TestReloadSafetyNets(t *testing.T) {
	t.Parallel()
	// In a ConfigMap mount the script's content lives in a folder below the watched one:
	// writing it there raises no event in the watched folder, so only the periodic rescan
	// and SIGHUP can see the change.
	dir := t.TempDir()
	newConfigMap(t, dir, map[string]string{"reload.lua": counterLua("reload:*", 1)})
	target := filepath.Join(dir, "..data", "reload.lua")
	s := startServer(t, dir)
	c := s.dial(t, "vsn=2.0.0")
	k := joinCounter(t, c, "reload:a", "1", 1)

	writeFile(t, target, counterLua("reload:*", 2))
	took := k.waitVersionWithin(t, 2, rescanWithin)
	t.Logf("the periodic rescan saw an unannounced change after %v", took.Round(time.Millisecond))

	// The periodic rescan just ran, so the next is seconds away: only SIGHUP can make
	// version 3 serve within reloadWithin.
	writeFile(t, target, counterLua("reload:*", 3))
	mustDo(t, s.cmd.Process.Signal(syscall.SIGHUP))
	k.waitVersion(t, 3)
	s.log.waitFor(t, reloadWithin, "SIGHUP")
	c.heartbeat("hb")
}

// pushStats is what one client of TestReloadUnderTraffic saw.
type pushStats struct {
	pushes   int
	versions []int // the version of every reply, in order
	maxRTT   time.Duration
}

// pushEvery paces each client's pushes below the server's per-connection message rate
// limit (100 a second sustained), as a real client's traffic would be.
const pushEvery = 12 * time.Millisecond

// pushLoop pushes "tick" on topic (joined with join_ref "1") every pushEvery, with up to
// window pushes awaiting their replies, until stop closes; then it collects the replies
// still due. Every reply must be ok, answer its ref in order, and count one more than
// the last. ready is called at the first reply. It runs off the test goroutine, so it
// returns errors instead of failing.
func pushLoop(conn *websocket.Conn, topic string, window int, ready func(), stop <-chan struct{}) (pushStats, error) {
	var (
		st       pushStats
		slots    = make(chan struct{}, window) // one per push awaiting its reply
		sentAt   = make(chan time.Time, 1<<16) // when each push written went out, in order
		wrote    = make(chan struct{})         // closed when the writer is done
		writeErr error                         // read after wrote closes
	)
	go func() { // the connection's one writer
		defer close(wrote)
		tick := time.NewTicker(pushEvery)
		defer tick.Stop()
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			select {
			case slots <- struct{}{}:
			default:
				n--
				continue // window full: this tick's push waits for the next
			}
			msg := fmt.Sprintf(`["1","%d",%q,"tick",{}]`, n, topic)
			at := time.Now()
			_ = conn.SetWriteDeadline(at.Add(writeTimeout))
			if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				writeErr = fmt.Errorf("push %d: %w", n, err)
				return
			}
			sentAt <- at
		}
	}()
	for got := 0; ; {
		var at time.Time // when the push whose reply is next went out
		select {
		case at = <-sentAt:
		case <-wrote:
			select {
			case at = <-sentAt: // written before the writer stopped
			default:
				return st, writeErr // every push written has its reply
			}
		}
		_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
		_, data, err := conn.ReadMessage()
		if err != nil {
			<-wrote
			return st, fmt.Errorf("waiting for the reply to push %d: %w", got+1, err)
		}
		var f []any
		if err := decodeJSON(data, &f); err != nil || len(f) != 5 {
			<-wrote
			return st, fmt.Errorf("got %s, want a reply", data)
		}
		got++
		r, _ := f[4].(map[string]any)
		resp, _ := r["response"].(map[string]any)
		version, err1 := asInt(resp["version"])
		count, err2 := asInt(resp["count"])
		if f[0] != "1" || f[1] != fmt.Sprint(got) || f[3] != "phx_reply" || r["status"] != "ok" || err1 != nil || err2 != nil {
			<-wrote
			return st, fmt.Errorf("got %s, want an ok {version, count} reply to push %d", data, got)
		}
		if int(count) != got {
			<-wrote
			return st, fmt.Errorf("count %d in the reply to push %d: assigns were not kept", count, got)
		}
		st.maxRTT = max(st.maxRTT, time.Since(at))
		<-slots
		st.pushes = got
		st.versions = append(st.versions, int(version))
		if got == 1 {
			ready()
		}
	}
}

func TestReloadUnderTraffic(t *testing.T) {
	t.Parallel()
	const (
		clients  = 50
		rewrites = 10
		window   = 4 // pushes in flight per client, so events wait in mailboxes across swaps
		last     = rewrites + 1
	)
	dir := writeScripts(t, map[string]string{"reload.lua": counterLua("reload:*", 1)})
	path := filepath.Join(dir, "reload.lua")
	s := startServer(t, dir, noBudget...)
	cs := make([]*wsClient, clients)
	for i := range cs {
		cs[i] = s.dial(t, "vsn=2.0.0")
		cs[i].join("reload:t", "1", `{}`, `{"version":1}`)
	}

	type result struct {
		st  pushStats
		err error
	}
	results := make([]result, clients)
	stop := make(chan struct{})
	var ready, done sync.WaitGroup
	ready.Add(clients)
	done.Add(clients)
	for i, c := range cs {
		go func() {
			defer done.Done()
			var once sync.Once
			markReady := func() { once.Do(ready.Done) }
			st, err := pushLoop(c.conn, "reload:t", window, markReady, stop)
			markReady()
			results[i] = result{st, err}
		}()
	}
	ready.Wait() // every client is pushing on version 1

	for v := 2; v <= last; v++ {
		if v%2 == 0 {
			saveInPlace(t, path, counterLua("reload:*", v))
		} else {
			saveRenameOver(t, path, counterLua("reload:*", v))
		}
		s.log.waitCount(t, v-1, logReloaded, "script=reload.lua")
	}
	close(stop)
	done.Wait()

	total := 0
	var maxRTT time.Duration
	for i, r := range results {
		if r.err != nil {
			t.Errorf("client %d: %v", i, r.err)
			continue
		}
		total += r.st.pushes
		maxRTT = max(maxRTT, r.st.maxRTT)
		vs := r.st.versions
		for j := 1; j < len(vs); j++ {
			if vs[j] < vs[j-1] {
				t.Errorf("client %d: version %d answered after version %d", i, vs[j], vs[j-1])
				break
			}
		}
		if vs[0] != 1 {
			t.Errorf("client %d: first reply from version %d, want 1", i, vs[0])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// every connection is still up, on its join, with its count; the last version serves
	for i, c := range cs {
		k := &counter{c: c, topic: "reload:t", joinRef: "1", ref: results[i].st.pushes, count: results[i].st.pushes}
		k.expectVersion(t, last)
		c.heartbeat("hb")
	}
	if lines := s.log.lines("script error"); len(lines) != 0 {
		t.Errorf("script errors during reloads:\n%s", strings.Join(lines, "\n"))
	}
	if lines := s.log.lines("level=WARN"); len(lines) != 0 {
		t.Errorf("warnings during reloads:\n%s", strings.Join(lines, "\n"))
	}
	t.Logf("%d clients, %d pushes across %d reloads, none lost; slowest reply %v", clients, total, rewrites, maxRTT.Round(time.Millisecond))
}
