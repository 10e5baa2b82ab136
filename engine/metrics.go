package engine

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/luachan/luachan/luabind"
)

// scriptMetrics keeps each script file's counts for /metrics, by file name: the callbacks
// of all its versions, its reloads and its load errors. Its keys are file names only
// (never topics), so the series a scrape reads grow with the files in the folder.
type scriptMetrics struct {
	mu     sync.Mutex // guards byName
	byName map[string]*scriptCounts
}

// scriptCounts are one file's counts.
type scriptCounts struct {
	calls      luabind.CallStats
	reloads    atomic.Uint64
	loadErrors atomic.Uint64
}

// of returns name's counts, creating them on first use.
func (m *scriptMetrics) of(name string) *scriptCounts {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.byName[name]
	if c == nil {
		if m.byName == nil {
			m.byName = make(map[string]*scriptCounts)
		}
		c = &scriptCounts{}
		m.byName[name] = c
	}
	return c
}

// optsFor returns the load options of name: the engine's, counting into name's CallStats.
func (e *Engine) optsFor(name string) luabind.Options {
	o := e.opts
	o.Stats = &e.scripts.of(name).calls
	return o
}

// ScriptMetric is one script file's counts since the engine started.
type ScriptMetric struct {
	Script     string                 // the file name, e.g. "rooms.lua"
	Calls      []luabind.CallSnapshot // by callback, in luabind.CallbackNames' order
	Reloads    uint64                 // versions loaded after the first
	LoadErrors uint64                 // versions that failed to load or route
}

// ScriptMetrics returns the counts of every script file that ever loaded or failed to,
// by file name.
func (e *Engine) ScriptMetrics() []ScriptMetric {
	e.scripts.mu.Lock()
	out := make([]ScriptMetric, 0, len(e.scripts.byName))
	counts := make([]*scriptCounts, 0, len(e.scripts.byName))
	for name, c := range e.scripts.byName {
		out = append(out, ScriptMetric{Script: name})
		counts = append(counts, c)
	}
	e.scripts.mu.Unlock()
	for i, c := range counts {
		out[i].Calls = c.calls.Snapshot()
		out[i].Reloads, out[i].LoadErrors = c.reloads.Load(), c.loadErrors.Load()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Script < out[j].Script })
	return out
}
