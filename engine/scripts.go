package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/luabind"
)

// connectScript is the optional file that decides who may connect; it is
// never a channel.
const connectScript = "socket.lua"

// testSuffix ends the names of script tests (`luachan test`), never channels.
const testSuffix = "_test.lua"

// scriptFile is one channel script in the folder. Its compiled version is
// swapped on reload; channels joined through it run the current version at
// each event, with their assigns intact.
type scriptFile struct {
	name     string
	cur      atomic.Pointer[luabind.Script]
	loadedAt atomic.Int64 // unix nanoseconds of the last successful load

	// Guarded by Engine.mu.
	hash     string          // hash of the version serving (source and lib modules)
	pending  *luabind.Script // the newest version on disk, valid but refused: its pattern is held by a file earlier by name
	loadErr  error           // why the newest version on disk is not the one serving
	routeErr error           // why the version serving routes no topic

	// mu guards chans, the channels joined through this file; shut and
	// shutCount; and lastErr.
	mu        sync.Mutex
	chans     map[*channel]struct{}
	shut      bool   // the file takes no channels: deleted, or its pattern went to another file
	shutCount uint64 // how many times the file was shut
	lastErr   error  // loadErr, else routeErr: what GET /api/scripts shows
}

func (f *scriptFile) script() *luabind.Script { return f.cur.Load() }

func (f *scriptFile) pattern() string { return f.script().Topic() }

// add registers ch, whose join succeeded. It reports false when the file
// takes no channels now; otherwise gen is for shutSince.
func (f *scriptFile) add(ch *channel) (gen uint64, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.shut {
		return f.shutCount, false
	}
	f.chans[ch] = struct{}{}
	return f.shutCount, true
}

// shutSince reports whether the file was shut after add returned gen: the
// channel added then was, or is being, stopped with the others.
func (f *scriptFile) shutSince(gen uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.shutCount != gen
}

func (f *scriptFile) remove(ch *channel) {
	f.mu.Lock()
	delete(f.chans, ch)
	f.mu.Unlock()
}

// shutDown stops the file taking channels and returns the ones it has, for
// the caller to stop. A join that completes on a shut file ends at once
// (see channel.endJoinOnShutFile).
func (f *scriptFile) shutDown() []*channel {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.shut {
		return nil
	}
	f.shut = true
	f.shutCount++
	out := make([]*channel, 0, len(f.chans))
	for ch := range f.chans {
		out = append(out, ch)
	}
	return out
}

// reopen lets the file take channels again: its pattern came back to it.
func (f *scriptFile) reopen() {
	f.mu.Lock()
	f.shut = false
	f.mu.Unlock()
}

// setErrorsLocked records the file's load and routing errors; the caller
// holds Engine.mu.
func (f *scriptFile) setErrorsLocked(loadErr, routeErr error) {
	f.loadErr, f.routeErr = loadErr, routeErr
	f.mu.Lock()
	f.lastErr = loadErr
	if f.lastErr == nil {
		f.lastErr = routeErr
	}
	f.mu.Unlock()
}

// dropPendingLocked forgets a refused version; the caller holds Engine.mu.
func (f *scriptFile) dropPendingLocked() {
	if f.pending != nil {
		f.pending.Close()
		f.pending = nil
	}
}

func (f *scriptFile) close() {
	if s := f.script(); s != nil {
		s.Close()
	}
	f.dropPendingLocked()
}

// endJoinOnShutFile ends a channel whose join succeeded while its script
// file went (deleted, or its pattern taken by a file earlier by name): the
// client gets its join reply and what join sent, then phx_close, as the
// file's other channels did, and leave runs with "closed".
func (c *channel) endJoinOnShutFile(m *hub.Message, reply *luabind.Payload, closeRef string) {
	c.reply(m, "ok", reply, replyEmpty)
	c.closeReplaced(closeRef)
	c.joined = true
	c.e.count.joins.Add(1)
	c.e.count.channels.Add(1)
	c.flush()
	c.settle(false) // its phx_close goes out here: a later join of the topic sends none
	c.handleStop(stopDeleted)
}

// Reload rescans the scripts folder: new files start routing, changed files
// are recompiled and swapped in when they load cleanly (a broken version
// never replaces a working one), and deleted files close their channels.
// Which file serves a pattern two files claim depends only on the files
// loaded, never on the order they came in: the first by name (see
// assignLocked). It returns an error only when the folder itself cannot be
// read.
func (e *Engine) Reload() error {
	names, err := listScripts(e.cfg.Dir)
	if err != nil {
		return err
	}
	libSum := libTreeSum(e.cfg.Dir)

	e.mu.Lock()
	defer e.mu.Unlock()

	seen := make(map[string]bool, len(names))
	for _, name := range names {
		seen[name] = true
	}
	var deleted []*scriptFile
	for name, f := range e.files {
		if !seen[name] {
			delete(e.files, name)
			deleted = append(deleted, f)
		}
	}
	for name := range e.tried {
		if !seen[name] && name != connectScript { // socket.lua keeps its own entry
			delete(e.tried, name)
			delete(e.loadErrs, name)
		}
	}
	next := make(map[string]*luabind.Script)
	for _, name := range names {
		if s := e.refreshLocked(name, libSum); s != nil {
			next[name] = s
		}
	}
	e.assignLocked(names, next)
	e.reloadConnectLocked(libSum)

	// Their channels end once the deleted files route no more, so a client
	// that joins again on phx_close finds the routes as they are now.
	for _, f := range deleted {
		e.log.Info("script removed", "script", f.name)
		for _, ch := range f.shutDown() {
			ch.stop(stopDeleted)
		}
		f.close()
	}
	return nil
}

// refreshLocked returns the version of name to serve from now on, compiled
// if the file or a lib module changed since the last try, or nil when there
// is none: the version serving is current, or the newest one is broken (and
// logged, once).
func (e *Engine) refreshLocked(name, libSum string) *luabind.Script {
	f := e.files[name]
	src, err := os.ReadFile(filepath.Join(e.cfg.Dir, name))
	if err != nil {
		e.log.Error("script unreadable", "script", name, "err", err)
		return nil
	}
	if f != nil && f.pending == nil && f.loadErr == nil && !f.script().Stale(src) {
		return nil // what serves is what is on disk
	}
	key := sourceKey(src, libSum)
	if e.tried[name] == key {
		if f != nil {
			return f.pending // refused before; its pattern may be free now
		}
		return nil // unchanged since it failed
	}
	e.tried[name] = key
	s, err := luabind.LoadSource(e.optsFor(name), name, src)
	if err != nil {
		if f != nil {
			f.dropPendingLocked()
			e.reportLoadError(name, f.loadErr, err, true)
			f.setErrorsLocked(err, f.routeErr)
		} else {
			e.reportLoadError(name, e.loadErrs[name], err, false)
			e.loadErrs[name] = err
		}
		return nil
	}
	return s
}

// assignLocked puts the new versions in next in place and decides which file
// serves each pattern: in name order, the first file to claim a pattern gets
// it. A file that loses its pattern is shut (its channels end with
// phx_close, as for a deleted file) and reported; when its pattern comes
// free it routes again. A new version of a file that serves its pattern is
// refused when that version's pattern belongs to a file earlier by name: the
// previous version keeps serving, and the new one takes over once the
// pattern is free.
func (e *Engine) assignLocked(names []string, next map[string]*luabind.Script) {
	before := e.routes.Load()
	claimed := make(map[string]*scriptFile)
	claims := make([]claim, 0, len(names))
	for _, name := range names {
		f := e.files[name]
		if s := next[name]; s != nil {
			if owner := claimed[s.Topic()]; owner != nil && f != nil && claimed[f.pattern()] == nil {
				e.refuseLocked(f, s, owner)
			} else {
				f = e.installLocked(name, f, s)
			}
		}
		if f == nil {
			continue
		}
		var routeErr error
		if owner := claimed[f.pattern()]; owner != nil {
			routeErr = fmt.Errorf("topic %q is already served by %s", f.pattern(), owner.name)
			if f.routeErr == nil || f.routeErr.Error() != routeErr.Error() {
				e.count.loadErrors.Add(1)
				e.scripts.of(name).loadErrors.Add(1)
				e.log.Error("script not routed", "script", name, "err", routeErr.Error())
			}
		} else {
			claimed[f.pattern()] = f
			claims = append(claims, claim{pattern: f.pattern(), file: f})
		}
		f.setErrorsLocked(f.loadErr, routeErr)
	}
	r, _ := newRouter(claims) // no conflicts: each pattern is claimed once
	for _, c := range claims {
		c.file.reopen()
	}
	e.routes.Store(r)
	for _, f := range e.files {
		if f.routeErr != nil {
			for _, ch := range f.shutDown() {
				ch.stop(stopDeleted)
			}
		}
	}
	logHandOvers(e.log, before, r)
}

// installLocked makes s the version of name that serves, creating the file
// if it is new.
func (e *Engine) installLocked(name string, f *scriptFile, s *luabind.Script) *scriptFile {
	if f == nil {
		f = &scriptFile{name: name, chans: make(map[*channel]struct{})}
		e.files[name] = f
	}
	if f.pending != s {
		f.dropPendingLocked()
	}
	f.pending = nil
	delete(e.loadErrs, name)
	f.setErrorsLocked(nil, f.routeErr)
	f.hash = s.Hash()
	old := f.cur.Swap(s)
	f.loadedAt.Store(time.Now().UnixNano())
	if old != nil {
		e.count.reloads.Add(1)
		e.scripts.of(name).reloads.Add(1)
		old.Close()
		e.log.Info("script reloaded", "script", name, "topic", s.Topic())
	} else {
		e.log.Info("script loaded", "script", name, "topic", s.Topic())
	}
	if e.perNodeState(s) {
		e.log.Warn("script warning", "script", name, "warning", perNodeStateWarning)
	}
	return f
}

// perNodeState reports whether s keeps topic state that these nodes do not share although
// they share broadcasts (NATS): see perNodeStateWarning.
func (e *Engine) perNodeState(s *luabind.Script) bool {
	return s != nil && e.cfg.Peers && e.cfg.TopicOwners == nil && s.HasTopicState()
}

// perNodeStateWarning is logged for a script with topic state on nodes that share
// broadcasts but not topics' states (NATS): its handle_call and handle_tick run on every
// node with subscribers, each on a state of its own, which a script written for one
// state per topic (an auction's highest bid) gets wrong without a word.
const perNodeStateWarning = "topic state is per node with this -pubsub: every node with subscribers runs its own init, handle_call and handle_tick on a state of its own; use -pubsub redis:// for one state per topic across the nodes"

// refuseLocked keeps s, a valid new version of f whose pattern owner holds,
// waiting; f's previous version keeps serving.
func (e *Engine) refuseLocked(f *scriptFile, s *luabind.Script, owner *scriptFile) {
	if f.pending != s {
		f.dropPendingLocked()
		f.pending = s
	}
	err := fmt.Errorf("%s: topic %q is already served by %s", f.name, s.Topic(), owner.name)
	e.reportLoadError(f.name, f.loadErr, err, true)
	f.setErrorsLocked(err, f.routeErr)
}

// logHandOvers logs every pattern whose file changed from before to after.
func logHandOvers(log *slog.Logger, before, after *router) {
	owners := after.owners()
	for pattern, from := range before.owners() {
		if to := owners[pattern]; to != nil && to != from {
			log.Info("topic handed over", "topic", pattern, "from", from.name, "to", to.name)
		}
	}
}

// reportLoadError logs why name did not load, unless prev said the same
// already, so a rescan does not repeat it. keptOld says whether a previous
// version keeps serving.
func (e *Engine) reportLoadError(name string, prev, err error, keptOld bool) {
	if prev != nil && prev.Error() == err.Error() {
		return
	}
	e.count.loadErrors.Add(1)
	e.scripts.of(name).loadErrors.Add(1)
	attrs := []any{"script", name, "err", err.Error()}
	var se *luabind.ScriptError
	if errors.As(err, &se) && se.Line > 0 { // the table's shape has no line: line=0 would say nothing
		attrs = append(attrs, "line", se.Line)
	}
	msg := "script not loaded"
	if keptOld {
		msg = "script not reloaded; the previous version keeps serving"
	}
	e.log.Error(msg, attrs...)
}

// sourceKey identifies a file's content together with every module under
// lib/: a failed load is tried again when either changes.
func sourceKey(src []byte, libSum string) string {
	sum := sha256.Sum256(append(src[:len(src):len(src)], libSum...))
	return hex.EncodeToString(sum[:])
}

// libTreeSum hashes the names and contents of every file below dir/lib.
func libTreeSum(dir string) string {
	h := sha256.New()
	_ = filepath.WalkDir(filepath.Join(dir, "lib"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil // a folder that cannot be read counts as empty
		}
		content, err := os.ReadFile(path)
		if err != nil {
			content = []byte(err.Error())
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(content))
		h.Write(content)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))
}

// listScripts returns the channel script names directly in dir, sorted.
func listScripts(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("engine: reading scripts folder: %w", err)
	}
	var names []string
	for _, ent := range entries {
		name := ent.Name()
		if !strings.HasSuffix(name, ".lua") || name == connectScript || strings.HasPrefix(name, ".") ||
			strings.HasSuffix(name, testSuffix) {
			continue
		}
		if ent.IsDir() {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}
