package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/luachan/luachan/luabind"
)

// connectScript is the optional file that decides who may connect; it is
// never a channel.
const connectScript = "socket.lua"

// scriptFile is one channel script in the folder. Its compiled version is
// swapped on reload; channels joined through it run the current version at
// each event, with their assigns intact.
type scriptFile struct {
	name     string
	cur      atomic.Pointer[luabind.Script]
	loadedAt atomic.Int64 // unix nanoseconds of the last successful load
	hash     string       // content hash of the version serving; guarded by Engine.mu

	// mu guards chans, the channels joined through this file, and lastErr.
	mu      sync.Mutex
	chans   map[*channel]struct{}
	lastErr error
}

func (f *scriptFile) script() *luabind.Script { return f.cur.Load() }

func (f *scriptFile) pattern() string { return f.script().Topic() }

func (f *scriptFile) add(ch *channel) {
	f.mu.Lock()
	f.chans[ch] = struct{}{}
	f.mu.Unlock()
}

func (f *scriptFile) remove(ch *channel) {
	f.mu.Lock()
	delete(f.chans, ch)
	f.mu.Unlock()
}

// channels returns a snapshot of the channels joined through f.
func (f *scriptFile) channels() []*channel {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*channel, 0, len(f.chans))
	for ch := range f.chans {
		out = append(out, ch)
	}
	return out
}

func (f *scriptFile) close() {
	if s := f.script(); s != nil {
		s.Close()
	}
}

// Reload rescans the scripts folder: new files start routing, changed files
// are recompiled and swapped in when they load cleanly (a broken version
// never replaces a working one), and deleted files close their channels.
// It returns an error only when the folder itself cannot be read.
func (e *Engine) Reload() error {
	names, err := listScripts(e.cfg.Dir)
	if err != nil {
		return err
	}

	e.mu.Lock()
	defer e.mu.Unlock()

	seen := make(map[string]bool, len(names))
	for _, name := range names {
		seen[name] = true
	}
	// Deleted files go first, so the patterns they held are free for the
	// files loaded next.
	var deleted []*scriptFile
	for name, f := range e.files {
		if !seen[name] {
			delete(e.files, name)
			deleted = append(deleted, f)
		}
	}
	for _, name := range names {
		e.loadLocked(name)
	}
	for name := range e.tried {
		if !seen[name] && name != connectScript { // socket.lua keeps its own entry
			delete(e.tried, name)
			delete(e.loadErrs, name)
		}
	}
	e.rebuildRoutesLocked()
	e.reloadConnectLocked()

	for _, f := range deleted {
		e.log.Info("script removed", "script", f.name)
		for _, ch := range f.channels() {
			ch.stop(stopDeleted)
		}
		f.close()
	}
	return nil
}

// loadLocked loads name if it is new or its content changed.
func (e *Engine) loadLocked(name string) {
	f := e.files[name]
	src, err := os.ReadFile(filepath.Join(e.cfg.Dir, name))
	if err != nil {
		e.log.Error("script unreadable", "script", name, "err", err)
		return
	}
	var modules []string
	if f != nil {
		modules = f.script().Modules()
	}
	hash := e.contentHash(src, modules)
	if e.tried[name] == hash {
		return // unchanged since the last try, whether it loaded or not
	}
	s, err := luabind.LoadSource(e.opts, name, src)
	if err == nil {
		if owner := e.ownerLocked(s.Topic(), name); owner != "" {
			// Not remembered as tried: once the owner lets the pattern go,
			// the next rescan loads this version.
			s.Close()
			err = fmt.Errorf("%s: topic %q is already served by %s", name, s.Topic(), owner)
			e.setLoadErrorLocked(name, f, err)
			return
		}
	}
	e.tried[name] = hash
	if err != nil {
		e.setLoadErrorLocked(name, f, err)
		return
	}
	// Remember the version just loaded with the modules it requires now, so
	// a change to any of them reloads this script.
	hash = e.contentHash(src, s.Modules())
	e.tried[name] = hash
	delete(e.loadErrs, name)
	if f == nil {
		f = &scriptFile{name: name, chans: make(map[*channel]struct{})}
		e.files[name] = f
	}
	f.hash = hash
	old := f.cur.Swap(s)
	f.loadedAt.Store(time.Now().UnixNano())
	f.mu.Lock()
	f.lastErr = nil
	f.mu.Unlock()
	if old != nil {
		e.count.reloads.Add(1)
		old.Close()
		e.log.Info("script reloaded", "script", name, "topic", s.Topic())
	} else {
		e.log.Info("script loaded", "script", name, "topic", s.Topic())
	}
}

// ownerLocked returns the name of the loaded file other than name that
// serves pattern, or "".
func (e *Engine) ownerLocked(pattern, name string) string {
	for other, f := range e.files {
		if other != name && f.pattern() == pattern {
			return other
		}
	}
	return ""
}

// setLoadErrorLocked records and logs why name did not load, once per
// distinct error, so a rescan does not repeat it.
func (e *Engine) setLoadErrorLocked(name string, f *scriptFile, err error) {
	var prev error
	if f != nil {
		f.mu.Lock()
		prev, f.lastErr = f.lastErr, err
		f.mu.Unlock()
	} else {
		prev = e.loadErrs[name]
		e.loadErrs[name] = err
	}
	if prev != nil && prev.Error() == err.Error() {
		return
	}
	e.count.loadErrors.Add(1)
	e.logLoadError(name, err, f != nil)
}

func (e *Engine) logLoadError(name string, err error, keptOld bool) {
	attrs := []any{"script", name, "err", err.Error()}
	var se *luabind.ScriptError
	if errors.As(err, &se) {
		attrs = append(attrs, "line", se.Line)
	}
	msg := "script not loaded"
	if keptOld {
		msg = "script not reloaded; the previous version keeps serving"
	}
	e.log.Error(msg, attrs...)
}

// contentHash identifies a script's source together with the current
// content of the lib modules it requires.
func (e *Engine) contentHash(src []byte, modules []string) string {
	h := sha256.New()
	h.Write(src)
	for _, m := range modules {
		mod, err := os.ReadFile(filepath.Join(e.cfg.Dir, m))
		if err != nil {
			mod = []byte(err.Error())
		}
		fmt.Fprintf(h, "\x00%s\x00%d\x00", m, len(mod))
		h.Write(mod)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// rebuildRoutesLocked swaps in a router for the current files. A file whose
// pattern another file (earlier by name) already claims is reported.
func (e *Engine) rebuildRoutesLocked() {
	claims := make([]claim, 0, len(e.files))
	for _, f := range e.files {
		claims = append(claims, claim{pattern: f.pattern(), file: f})
	}
	r, conflicts := newRouter(claims)
	for _, c := range conflicts {
		err := fmt.Errorf("topic %q is already served by %s", c.pattern, r.owner(c.pattern).name)
		c.file.mu.Lock()
		c.file.lastErr = err
		c.file.mu.Unlock()
		e.log.Error("script not routed", "script", c.file.name, "err", err)
	}
	e.routes.Store(r)
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
		if !strings.HasSuffix(name, ".lua") || name == connectScript || strings.HasPrefix(name, ".") {
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
