package luachan_test

// Helpers of the hot-reload tests (reload_test.go): versioned channel scripts, a client
// that checks versions and assigns across reloads, and every way a real tool saves a file.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	// reloadWithin is the SPEC's "takes effect within 1 s", plus slack for a loaded -race run.
	reloadWithin = 1500 * time.Millisecond
	// rescanWithin bounds the periodic rescan (every 5 s) that catches changes no file
	// event reports, plus slack.
	rescanWithin = 8 * time.Second
)

// noBudget are server flags that keep the per-callback budget out of the way of tests
// and benchmarks about reload: the budget is wall-clock time, so on a loaded machine a
// trivial handle_in descheduled for 250 ms ends its channel with phx_error.
var noBudget = []string{"-script-timeout", "10s"}

// Log messages of the reload code (slog text: messages with spaces are quoted).
const (
	logReloaded = `msg="script reloaded"`
	logLoaded   = `msg="script loaded"`
	logRemoved  = `msg="script removed"`
	logError    = `level=ERROR`
)

// counterLua is version v of a channel script for topic pattern: join answers
// {"version": v}; every event counts in socket.assigns and answers {version, count};
// "slow" first spins for payload.ms milliseconds and adds when it started and finished
// (Unix milliseconds).
func counterLua(pattern string, v int) string {
	return fmt.Sprintf(`local version = %d
local r = { topic = %q }
function r.join(topic, payload, socket)
  socket.assigns.count = 0
  return true, { version = version }
end
function r.handle_in(event, payload, socket)
  local reply = { version = version }
  if event == "slow" then
    reply.started = luachan.now()
    while luachan.now() - reply.started < payload.ms do end
    reply.finished = luachan.now()
  end
  socket.assigns.count = socket.assigns.count + 1
  reply.count = socket.assigns.count
  return "ok", reply
end
return r
`, v, pattern)
}

// moduleLua is counterLua whose version comes from the lib module mod (a table with a
// field version), required when the script loads.
func moduleLua(pattern, mod string) string {
	return fmt.Sprintf(`local ver = require(%q)
local r = { topic = %q }
function r.join(topic, payload, socket)
  socket.assigns.count = 0
  return true, { version = ver.version }
end
function r.handle_in(event, payload, socket)
  socket.assigns.count = socket.assigns.count + 1
  return "ok", { version = ver.version, count = socket.assigns.count }
end
return r
`, mod, pattern)
}

// brokenLua fails to compile on line 3.
const brokenLua = "local r = { topic = \"reload:*\" }\nfunction r.join() return true end\nfunction r.handle_in() return ) end\nreturn r\n"

// counter sends events on one joined channel and checks the replies: each answers its
// ref on the channel's join_ref, and each count is one more than the last (assigns
// survive reloads).
type counter struct {
	c       *wsClient
	topic   string
	joinRef string
	ref     int
	count   int
}

// joinCounter joins topic on c with joinRef and expects the join reply of version v.
func joinCounter(tb testing.TB, c *wsClient, topic, joinRef string, v int) *counter {
	tb.Helper()
	c.join(topic, joinRef, `{}`, fmt.Sprintf(`{"version":%d}`, v))
	return &counter{c: c, topic: topic, joinRef: joinRef}
}

// next sends one "tick" and returns the version that answered it.
func (k *counter) next(tb testing.TB) int {
	tb.Helper()
	return k.call(tb, "tick", `{}`)
}

// call sends event with payload (JSON text) and returns the version that answered it.
func (k *counter) call(tb testing.TB, event, payload string) int {
	tb.Helper()
	k.ref++
	ref := fmt.Sprintf("%s.%d", k.joinRef, k.ref)
	k.c.send(fmt.Sprintf(`[%q,%q,%q,%q,%s]`, k.joinRef, ref, k.topic, event, payload))
	f := k.c.readArray()
	r, _ := f[4].(map[string]any)
	resp, _ := r["response"].(map[string]any)
	version, err1 := asInt(resp["version"])
	count, err2 := asInt(resp["count"])
	if f[0] != k.joinRef || f[1] != ref || f[2] != k.topic || f[3] != "phx_reply" || r["status"] != "ok" || err1 != nil || err2 != nil {
		tb.Fatalf("got %s, want an ok {version, count} reply to ref %s on join_ref %s of %s", mustJSON(tb, f), ref, k.joinRef, k.topic)
	}
	k.count++
	if int(count) != k.count {
		tb.Fatalf("%s: count %d after %d events: assigns were not kept", k.topic, count, k.count)
	}
	return int(version)
}

// expectVersion sends one event and requires version v to answer it.
func (k *counter) expectVersion(tb testing.TB, v int) {
	tb.Helper()
	if got := k.next(tb); got != v {
		tb.Fatalf("%s: version %d answered, want %d", k.topic, got, v)
	}
}

// waitVersion sends events until version v answers, failing after reloadWithin.
func (k *counter) waitVersion(tb testing.TB, v int) {
	tb.Helper()
	k.waitVersionWithin(tb, v, reloadWithin)
}

// waitVersionWithin sends events until version v answers, failing after timeout; it
// returns how long that took.
func (k *counter) waitVersionWithin(tb testing.TB, v int, timeout time.Duration) time.Duration {
	tb.Helper()
	start := time.Now()
	err := poll(timeout, func() error {
		if got := k.next(tb); got != v {
			return fmt.Errorf("%s: version %d answered, want %d", k.topic, got, v)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return time.Since(start)
}

// tryJoin sends a phx_join of topic with a fresh join_ref and returns the reply's
// status and response.
func tryJoin(tb testing.TB, c *wsClient, topic, joinRef string) (string, map[string]any) {
	tb.Helper()
	c.send(fmt.Sprintf(`[%q,%q,%q,"phx_join",{}]`, joinRef, joinRef, topic))
	f := c.readArray()
	r, _ := f[4].(map[string]any)
	if f[1] != joinRef || f[2] != topic || f[3] != "phx_reply" {
		tb.Fatalf("got %s, want the reply to the join of %s", mustJSON(tb, f), topic)
	}
	resp, _ := r["response"].(map[string]any)
	status, _ := r["status"].(string)
	return status, resp
}

// waitJoin joins topic until the join is accepted, failing after reloadWithin; it
// returns the counter of the joined channel and the version that accepted the join.
func waitJoin(tb testing.TB, c *wsClient, topic, joinRefPrefix string) (*counter, int) {
	tb.Helper()
	var (
		n       int
		joinRef string
		version int64
	)
	err := poll(reloadWithin, func() error {
		n++
		joinRef = fmt.Sprintf("%s%d", joinRefPrefix, n)
		status, resp := tryJoin(tb, c, topic, joinRef)
		if status != "ok" {
			return fmt.Errorf("join %s answered %s %v", topic, status, resp)
		}
		v, err := asInt(resp["version"])
		version = v
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return &counter{c: c, topic: topic, joinRef: joinRef}, int(version)
}

// expectUnmatched requires a join of topic to be refused as unmatched.
func expectUnmatched(tb testing.TB, c *wsClient, topic, joinRef string) {
	tb.Helper()
	c.send(fmt.Sprintf(`[%q,%q,%q,"phx_join",{}]`, joinRef, joinRef, topic))
	c.expect(fmt.Sprintf(`[null,%q,%q,"phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`, joinRef, topic))
}

// waitCount polls until n log lines contain every one of subs, failing after
// reloadWithin, or at once when more than n do.
func (l *logSink) waitCount(tb testing.TB, n int, subs ...string) {
	tb.Helper()
	got := 0
	err := poll(reloadWithin, func() error {
		if got = l.count(subs...); got < n {
			return fmt.Errorf("%d log lines contain all of %q, want %d", got, subs, n)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if got > n {
		tb.Fatalf("%d log lines contain all of %q, want %d:\n%s", got, subs, n, strings.Join(l.lines(subs...), "\n"))
	}
}

// lines returns the log lines containing every one of subs.
func (l *logSink) lines(subs ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		if containsAll(line, subs) {
			out = append(out, line)
		}
	}
	return out
}

// rescanned makes the server rescan its folder once more and returns when that rescan
// has looked at every file: it writes a new script named after every other one and waits
// for its load line. Scripts are loaded in name order, so by then the rescan has also
// re-read (and, if it logs again, re-logged) every other file.
func rescanned(tb testing.TB, s *server, dir string, n int) {
	tb.Helper()
	name := fmt.Sprintf("zz_marker%d.lua", n)
	writeFile(tb, filepath.Join(dir, name), counterLua(fmt.Sprintf("zz_marker%d:*", n), 1))
	s.log.waitFor(tb, reloadWithin, logLoaded, "script="+name)
}

// Save styles: each replaces dir/name with src the way some real tool does.

// saveInPlace truncates and rewrites the file (shell `>`, cp, most IDEs).
func saveInPlace(tb testing.TB, path, src string) { tb.Helper(); writeFile(tb, path, src) }

// saveRenameOver writes a temp file beside the script and renames it over the script
// (most editors, sed -i, atomic-write libraries).
func saveRenameOver(tb testing.TB, path, src string) {
	tb.Helper()
	mustDo(tb, renameOver(path, src))
}

// renameOver is saveRenameOver for goroutines that cannot fail a test.
func renameOver(path, src string) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = f.WriteString(src)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// saveVim does what vim does with 'backupcopy' auto: probe the folder with a file named
// 4913, rename the original to a backup, write a new file, delete the backup.
func saveVim(tb testing.TB, path, src string) {
	tb.Helper()
	probe := filepath.Join(filepath.Dir(path), "4913")
	writeFile(tb, probe, "")
	mustDo(tb, os.Remove(probe))
	backup := path + "~"
	mustDo(tb, os.Rename(path, backup))
	editorPause()
	writeFile(tb, path, src)
	mustDo(tb, os.Remove(backup))
}

// saveDeleteRecreate removes the file and writes a new one under the same name.
func saveDeleteRecreate(tb testing.TB, path, src string) {
	tb.Helper()
	mustDo(tb, os.Remove(path))
	editorPause()
	writeFile(tb, path, src)
}

// editorPause is the moment a real tool takes between removing a script and writing its
// new version (vim writes the new file, a user runs the next command). A watcher that
// rescans without waiting for quiet sees the script gone and closes its channels; a pause
// well inside the quiet period makes that fail every time rather than by chance. It is
// part of the save being simulated, not a wait for the server.
func editorPause() { time.Sleep(10 * time.Millisecond) }

func mustDo(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// configMap lays out a folder the way the kubelet mounts a ConfigMap: every file is a
// symlink name -> ..data/name, ..data is a symlink to a timestamped folder, and an update
// writes a new timestamped folder, renames a fresh symlink over ..data (the one atomic
// step), then removes the old folder. No file event names a script.
type configMap struct {
	dir   string
	gen   int
	cur   string            // the timestamped folder ..data points at
	files map[string]string // name -> content of the current version
}

func newConfigMap(tb testing.TB, dir string, files map[string]string) *configMap {
	tb.Helper()
	m := &configMap{dir: dir, files: map[string]string{}}
	m.update(tb, files)
	return m
}

// update publishes a new version holding files (a name mapped to "" is removed).
func (m *configMap) update(tb testing.TB, files map[string]string) {
	tb.Helper()
	for name, src := range files {
		if src == "" {
			delete(m.files, name)
		} else {
			m.files[name] = src
		}
	}
	m.gen++
	old := m.cur
	m.cur = fmt.Sprintf("..2025_01_02_03_04_%02d.%09d", m.gen, m.gen)
	mustDo(tb, os.Mkdir(filepath.Join(m.dir, m.cur), 0o755))
	for name, src := range m.files {
		writeFile(tb, filepath.Join(m.dir, m.cur, name), src)
	}
	tmp := filepath.Join(m.dir, "..data_tmp")
	mustDo(tb, os.Symlink(m.cur, tmp))
	mustDo(tb, os.Rename(tmp, filepath.Join(m.dir, "..data")))
	for name := range m.files {
		link := filepath.Join(m.dir, name)
		if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
			mustDo(tb, os.Symlink(filepath.Join("..data", name), link))
		}
	}
	if old != "" {
		mustDo(tb, os.RemoveAll(filepath.Join(m.dir, old)))
	}
	for name, src := range files {
		if src == "" {
			mustDo(tb, os.Remove(filepath.Join(m.dir, name)))
		}
	}
}

// saver replaces the script name in a folder laid out by a saveStyle.
type saver func(tb testing.TB, name, src string)

// saveStyle lays files out in dir and returns how a save is made there.
type saveStyle struct {
	name   string
	layout func(tb testing.TB, dir string, files map[string]string) saver
	// atomic: no reader ever sees a partial file, so no load error may be logged
	atomic bool
}

// plainFolder writes files into dir and saves with save.
func plainFolder(save func(tb testing.TB, path, src string)) func(testing.TB, string, map[string]string) saver {
	return func(tb testing.TB, dir string, files map[string]string) saver {
		tb.Helper()
		for name, src := range files {
			writeFile(tb, filepath.Join(dir, name), src)
		}
		return func(tb testing.TB, name, src string) {
			tb.Helper()
			save(tb, filepath.Join(dir, name), src)
		}
	}
}

var saveStyles = []saveStyle{
	{name: "written in place", layout: plainFolder(saveInPlace)},
	{name: "temp file renamed over", layout: plainFolder(saveRenameOver), atomic: true},
	{name: "vim style", layout: plainFolder(saveVim)},
	{name: "deleted and recreated", layout: plainFolder(saveDeleteRecreate)},
	{
		name: "Kubernetes ConfigMap mount",
		layout: func(tb testing.TB, dir string, files map[string]string) saver {
			tb.Helper()
			m := newConfigMap(tb, dir, files)
			return func(tb testing.TB, name, src string) {
				tb.Helper()
				m.update(tb, map[string]string{name: src})
			}
		},
		atomic: true,
	},
}

// asInt returns v as an integer if it is a JSON integer.
func asInt(v any) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%v is not a number", v)
	}
	return n.Int64()
}

func writeFile(tb testing.TB, path, src string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		tb.Fatal(err)
	}
}
