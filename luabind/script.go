package luabind

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// Script is one compiled, validated version of a channel script file. Immutable after Load;
// safe for concurrent use. Each Load is a new "generation" with its own VM pool.
type Script struct {
	opts      Options
	name      string // relative file name, e.g. "rooms.lua"
	logger    *slog.Logger
	proto     *lua.FunctionProto // the compiled chunk every VM runs once
	topic     string
	hash      string
	modules   []string // lib modules required at load, as relative paths
	has       [numCallbacks]bool
	intercept []string // events handle_out sees; nil means every event
	pool      *pool

	libMu    sync.Mutex            // guards libs and libOrder
	libs     map[string]*libModule // compiled lib modules by module name
	libOrder []string              // module names in the order first required
}

// Load reads, compiles and validates the script at path (a *.lua file directly in opts.Dir):
// it must compile, run without error when loaded, and return a table with a string `topic`
// (exact, or a prefix ending in "*"; exactly one "*", only at the end), a function `join`, and
// optionally functions handle_in, handle_out, handle_info, leave and a list of strings
// `intercept`. Errors are *ScriptError naming the file and line. The chunk name is the path
// relative to opts.Dir, without "@" (so errors read "rooms.lua:12: ...").
func Load(opts Options, path string) (*Script, error) {
	name := relName(opts.Dir, path)
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, &ScriptError{File: name, Msg: err.Error()}
	}
	return LoadSource(opts, name, src)
}

// relName is path relative to dir with forward slashes, or its base name outside dir.
func relName(dir, path string) string {
	if rel, err := filepath.Rel(dir, path); err == nil && !strings.HasPrefix(rel, "..") {
		return filepath.ToSlash(rel)
	}
	return filepath.Base(path)
}

// LoadSource is Load with the source given (name is the relative file name, e.g. "rooms.lua").
func LoadSource(opts Options, name string, src []byte) (*Script, error) {
	opts = opts.withDefaults()
	proto, err := compile(name, src)
	if err != nil {
		return nil, err
	}
	s := &Script{
		opts:   opts,
		name:   name,
		logger: opts.Logger.With(logKeyScript, name),
		proto:  proto,
		libs:   make(map[string]*libModule),
	}
	v, err := s.newVM(context.Background())
	if err != nil {
		return nil, err
	}
	if err := s.validate(v.channel); err != nil {
		v.close()
		return nil, err
	}

	sum := sha256.New()
	sum.Write(src)
	s.libMu.Lock()
	for _, m := range s.libOrder {
		lib := s.libs[m]
		s.modules = append(s.modules, lib.file)
		sum.Write([]byte("\x00" + lib.file + "\x00"))
		sum.Write(lib.src)
	}
	s.libMu.Unlock()
	s.hash = hex.EncodeToString(sum.Sum(nil))

	s.pool = newPool(opts.MaxVMs, s.newVM)
	s.pool.adopt(v)
	return s, nil
}

// compile parses and compiles a chunk; errors name file and line.
func compile(name string, src []byte) (*lua.FunctionProto, error) {
	chunk, err := parse.Parse(bytes.NewReader(src), name)
	if err != nil {
		return nil, compileError(name, err)
	}
	proto, err := lua.Compile(chunk, name)
	if err != nil {
		return nil, compileError(name, err)
	}
	return proto, nil
}

// validate checks the channel table and records what it declares.
func (s *Script) validate(t *lua.LTable) error {
	topic, ok := t.RawGetString("topic").(lua.LString)
	if !ok {
		return scriptErrorf(s.name, "the channel table needs a string topic, got %s", typeName(t.RawGetString("topic")))
	}
	if !validPattern(string(topic)) {
		return scriptErrorf(s.name, "bad topic %q: an exact topic, or a prefix ending in a single \"*\"", string(topic))
	}
	s.topic = string(topic)
	for cb := range numCallbacks {
		switch f := t.RawGetString(callbackNames[cb]); f.(type) {
		case *lua.LFunction:
			s.has[cb] = true
		case *lua.LNilType:
		default:
			return scriptErrorf(s.name, "%s must be a function, got %s", callbackNames[cb], typeName(f))
		}
	}
	if !s.has[cbJoin] {
		return scriptErrorf(s.name, "the channel table needs a join function")
	}
	switch list := t.RawGetString("intercept").(type) {
	case *lua.LNilType:
	case *lua.LTable:
		events, ok := stringList(list)
		if !ok {
			return scriptErrorf(s.name, "intercept must be a list of strings")
		}
		s.intercept = events
	default:
		return scriptErrorf(s.name, "intercept must be a list of strings, got %s", typeName(list))
	}
	return nil
}

// stringList returns t's items when t is a list (keys 1..n, or empty) of strings.
func stringList(t *lua.LTable) ([]string, bool) {
	n := sequenceLen(t)
	if n == 0 {
		k, _ := t.Next(lua.LNil)
		return []string{}, k == lua.LNil
	}
	list := make([]string, n)
	for i := range n {
		s, ok := t.RawGetInt(i + 1).(lua.LString)
		if !ok {
			return nil, false
		}
		list[i] = string(s)
	}
	return list, true
}

// validPattern reports whether p is an exact topic or a prefix ending in its only "*".
func validPattern(p string) bool {
	if p == "" {
		return false
	}
	i := strings.IndexByte(p, '*')
	return i < 0 || i == len(p)-1
}

// Name returns the relative file name, e.g. "rooms.lua".
func (s *Script) Name() string { return s.name }

// Topic returns the pattern, e.g. "rooms:*".
func (s *Script) Topic() string { return s.topic }

// Hash returns the hex sha256 of the source and the lib modules it required at load.
func (s *Script) Hash() string { return s.hash }

// Modules returns the lib modules (relative paths) the script required at load, for reload
// tracking.
func (s *Script) Modules() []string { return slices.Clone(s.modules) }

// Intercepts reports whether event must run through handle_out:
// no handle_out -> false (fast lane); handle_out and an intercept list -> event in the list;
// handle_out and no intercept list -> true (catch-all).
func (s *Script) Intercepts(event string) bool {
	if !s.has[cbHandleOut] {
		return false
	}
	return s.intercept == nil || slices.Contains(s.intercept, event)
}

// HasHandleIn reports whether the script defines handle_in.
func (s *Script) HasHandleIn() bool { return s.has[cbHandleIn] }

// HasLeave reports whether the script defines leave.
func (s *Script) HasLeave() bool { return s.has[cbLeave] }

// Close releases the pooled VMs once in-flight calls finish. Calls after Close still work (they
// build a fresh VM) so a channel on an old generation is never stranded.
func (s *Script) Close() { s.pool.close() }
