package luabind

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Script is one compiled, validated version of a channel script file. Immutable after Load;
// safe for concurrent use. Each Load is a new "generation" with its own VM pool.
type Script struct {
	chunk
	topic     string
	has       [numCallbacks]bool
	intercept []string       // events handle_out sees; nil means every event
	warnings  []string       // near-miss field names (see nearMissWarnings)
	history   History        // the history field; Size 0: none
	ts        topicStateDecl // init, handle_call, handle_tick, terminate and tick (topicstate.go)

	notedMu sync.Mutex
	noted   map[string]struct{} // see FirstTime

	outWait atomic.Int64 // a moving average of handle_out's waits on luachan.store and .presence, in ns

	stats *CallStats // Options.Stats: the file's counts across versions; nil: none
}

// HandleOutWait is a moving average (each call weighs 1/8; 0 before the first) of how long this
// script's handle_out calls have waited on luachan.store and luachan.presence, either of which
// may be Redis across the network. The engine runs the handle_out of scripts that wait on
// goroutines of their own, one per channel, so the waits overlap instead of holding up the
// channels queued behind them.
func (s *Script) HandleOutWait() time.Duration { return time.Duration(s.outWait.Load()) }

// noteOutWait adds a handle_out call that waited d to the average. Concurrent calls may lose
// an update to each other; the average is a hint.
func (s *Script) noteOutWait(d time.Duration) {
	old := s.outWait.Load()
	s.outWait.Store(old + (int64(d)-old)/8)
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

// LoadSource is Load with the source given (name is the relative file name, e.g. "rooms.lua").
func LoadSource(opts Options, name string, src []byte) (*Script, error) {
	s := &Script{stats: opts.Stats}
	s.returns = "a channel table"
	s.bind = s.bindVM
	if err := s.init(opts, name, src, s.validate); err != nil {
		return nil, err
	}
	logWarnings(s.logger, s.warnings)
	return s, nil
}

// bindVM picks the channel's callbacks out of the table v's chunk returned.
func (s *Script) bindVM(v *vm) error {
	for cb := range numCallbacks {
		v.fns[cb], _ = v.table.RawGetString(callbackNames[cb]).(*lua.LFunction)
	}
	v.outPlan = s.planShareCached(v.fns[cbHandleOut])
	if v.fns[cbJoin] == nil {
		return scriptErrorf(s.name, "join must be a function, got %s%s", typeName(v.table.RawGetString("join")), missingHint(v.table, "join"))
	}
	return nil
}

// shown is a config value as an error shows it: a number or string as written, anything
// else (nil: the field is missing) by its type.
func shown(v lua.LValue) string {
	switch v.(type) {
	case lua.LNumber:
		return v.String()
	case lua.LString:
		return fmt.Sprintf("%q", string(v.(lua.LString)))
	}
	return typeName(v)
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
		return scriptErrorf(s.name, "the channel table needs a join function%s", missingHint(t, "join"))
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
	if len(s.intercept) > 0 && !s.has[cbHandleOut] {
		// Fast-laning what was meant to be filtered per subscriber would leak it.
		return scriptErrorf(s.name, "intercept lists events for handle_out, but there is no handle_out function: define handle_out, or remove intercept")
	}
	if err := s.validateTopicState(t); err != nil {
		return err
	}
	h, err := s.validateHistory(t.RawGetString("history"))
	if err != nil {
		return err
	}
	s.history = h
	s.warnings = nearMissWarnings(t, channelFields)
	return nil
}

// Bounds of a script's history field.
const (
	// MaxHistorySize is the most broadcasts a topic may keep.
	MaxHistorySize = 100_000
	// MaxHistoryTTL is the longest a broadcast may be kept, in seconds (a day).
	MaxHistoryTTL = 86400
)

// History is a script's `history = { size = N, ttl = seconds }`: its topics keep their
// last Size broadcasts, each for TTL, so that a client can recover what it missed.
type History struct {
	Size int
	TTL  time.Duration
}

// validateHistory reads the history field: nil, or a table of a whole size in
// 1..MaxHistorySize and a ttl in seconds in (0, MaxHistoryTTL].
func (s *Script) validateHistory(v lua.LValue) (History, error) {
	switch v := v.(type) {
	case *lua.LNilType:
		return History{}, nil
	case *lua.LTable:
		size, ok := v.RawGetString("size").(lua.LNumber)
		if !ok || float64(size) != float64(int(size)) || size < 1 || size > MaxHistorySize {
			return History{}, scriptErrorf(s.name, "history.size must be a whole number from 1 to %d, got %s", MaxHistorySize, shown(v.RawGetString("size")))
		}
		ttl, ok := v.RawGetString("ttl").(lua.LNumber)
		if !ok || !(ttl > 0) || ttl > MaxHistoryTTL {
			return History{}, scriptErrorf(s.name, "history.ttl must be a number of seconds above 0 and at most %d, got %s", MaxHistoryTTL, shown(v.RawGetString("ttl")))
		}
		return History{Size: int(size), TTL: time.Duration(float64(ttl) * float64(time.Second))}, nil
	default:
		return History{}, scriptErrorf(s.name, "history must be a table { size = N, ttl = seconds }, got %s", typeName(v))
	}
}

// History returns the script's history settings; ok is false when its topics keep none.
func (s *Script) History() (h History, ok bool) { return s.history, s.history.Size > 0 }

// Warnings returns what loading the script found suspicious but allowed, e.g. a field
// `handle_inn` ("did you mean handle_in?").
func (s *Script) Warnings() []string { return s.warnings }

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

// Topic returns the pattern, e.g. "rooms:*".
func (s *Script) Topic() string { return s.topic }

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

// HasHandleInfo reports whether the script defines handle_info.
func (s *Script) HasHandleInfo() bool { return s.has[cbHandleInfo] }

// maxNoted bounds how many distinct things FirstTime remembers per script version:
// events are named by clients, so an unbounded set would grow without limit.
const maxNoted = 100

// FirstTime reports whether this is the first time what was noted for this version of
// the script, so that a mistake (an event with no handle_in) is logged once per version,
// not at every event. Past maxNoted distinct things it reports false.
func (s *Script) FirstTime(what string) bool {
	s.notedMu.Lock()
	defer s.notedMu.Unlock()
	if _, ok := s.noted[what]; ok || len(s.noted) >= maxNoted {
		return false
	}
	if s.noted == nil {
		s.noted = make(map[string]struct{})
	}
	s.noted[what] = struct{}{}
	return true
}
