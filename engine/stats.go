package engine

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"sync/atomic"
	"time"
)

// counters are the engine's running totals, each one atomic add.
type counters struct {
	channels     atomic.Int64  // channels joined now
	joins        atomic.Uint64 // joins accepted
	joinsRefused atomic.Uint64 // joins the script refused, or refused for a limit
	joinsCrashed atomic.Uint64 // joins whose script raised or ran out of time
	crashes      atomic.Uint64 // channels ended by a script error (phx_error)
	reloads      atomic.Uint64 // script versions loaded after the first
	loadErrors   atomic.Uint64 // script versions that failed to load
	overflows    atomic.Uint64 // sockets closed because a channel could not keep up
	unmatched    atomic.Uint64 // joins and events for a topic with no script or not joined
	stale        atomic.Uint64 // events for an earlier join of a topic, dropped
	noHandleIn   atomic.Uint64 // events answered "no handle_in"
	noHandleInfo atomic.Uint64 // socket:after messages dropped for want of handle_info

	connectsRefused atomic.Uint64 // sockets socket.lua's connect refused
	connectErrors   atomic.Uint64 // sockets refused because connect raised or ran out of time

	calls          atomic.Uint64 // socket:calls made on this node
	callErrors     atomic.Uint64 // socket:calls answered with an error
	callsForwarded atomic.Uint64 // socket:calls sent to the owner on another node (each try)
	saveFailures   atomic.Uint64 // topic states not saved (store failed, or the lease was gone)
}

// Stats is a snapshot of the engine's gauges and counters, for /metrics.
type Stats struct {
	Scripts      int    // channel scripts routing now
	Channels     int64  // channels joined now
	Joins        uint64 // joins accepted
	JoinsRefused uint64 // joins refused by a script or a limit
	JoinsCrashed uint64 // joins whose script raised or ran out of time
	Crashes      uint64 // channels ended by a script error
	Reloads      uint64 // script versions loaded after the first
	LoadErrors   uint64 // script versions that failed to load
	Overflows    uint64 // sockets closed because a channel's events piled up
	Unmatched    uint64 // joins and events answered "unmatched topic"
	Stale        uint64 // events for an earlier join of a topic, dropped
	NoHandleIn   uint64 // events answered "no handle_in": the script defines none
	NoHandleInfo uint64 // socket:after messages dropped: the script defines no handle_info

	ConnectsRefused uint64 // sockets socket.lua's connect refused (403)
	ConnectErrors   uint64 // sockets refused because connect raised or ran out of time

	TopicStates    int    // topics whose state this node keeps now (owner or not)
	TopicsOwned    int    // with TopicOwners: those whose lease this node holds
	Calls          uint64 // socket:calls made on this node
	CallErrors     uint64 // socket:calls answered with an error
	CallsForwarded uint64 // socket:calls sent to the owner on another node
	SaveFailures   uint64 // topic states not saved: the change not applied
}

// Stats returns the engine's current gauges and counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	n := len(e.files)
	e.mu.Unlock()
	states, owned := e.states.counts()
	return Stats{
		Scripts:      n,
		Channels:     e.count.channels.Load(),
		Joins:        e.count.joins.Load(),
		JoinsRefused: e.count.joinsRefused.Load(),
		JoinsCrashed: e.count.joinsCrashed.Load(),
		Crashes:      e.count.crashes.Load(),
		Reloads:      e.count.reloads.Load(),
		LoadErrors:   e.count.loadErrors.Load(),
		Overflows:    e.count.overflows.Load(),
		Unmatched:    e.count.unmatched.Load(),
		Stale:        e.count.stale.Load(),
		NoHandleIn:   e.count.noHandleIn.Load(),
		NoHandleInfo: e.count.noHandleInfo.Load(),

		ConnectsRefused: e.count.connectsRefused.Load(),
		ConnectErrors:   e.count.connectErrors.Load(),

		TopicStates:    states,
		TopicsOwned:    owned,
		Calls:          e.count.calls.Load(),
		CallErrors:     e.count.callErrors.Load(),
		CallsForwarded: e.count.callsForwarded.Load(),
		SaveFailures:   e.count.saveFailures.Load(),
	}
}

// ScriptInfo describes one script file for GET /api/scripts.
type ScriptInfo struct {
	File     string     `json:"file"`
	Topic    string     `json:"topic,omitempty"`     // pattern of the version serving; empty if none loaded
	Hash     string     `json:"hash,omitempty"`      // sha256 of the source and lib modules serving
	LoadedAt *time.Time `json:"loaded_at,omitempty"` // when the serving version loaded
	Error    string     `json:"error,omitempty"`     // the last load or routing error, if the file has one now
	Warnings []string   `json:"warnings,omitempty"`  // what loading the serving version found suspicious, e.g. "did you mean handle_in?"
	Socket   bool       `json:"socket,omitempty"`    // socket.lua: decides who may connect; never a channel
	Channels int        `json:"channels"`            // channels joined through the file now
	Calls    uint64     `json:"calls"`               // callbacks the version serving has run
	Errors   uint64     `json:"errors"`              // of those, the ones that raised, timed out or returned a bad value
}

// Scripts lists every script file in the folder, loaded or not, by name.
func (e *Engine) Scripts() []ScriptInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]ScriptInfo, 0, len(e.files)+len(e.loadErrs))
	for name, f := range e.files {
		info := ScriptInfo{File: name, Topic: f.pattern(), Hash: f.hash, Warnings: f.script().Warnings()}
		if e.perNodeState(f.script()) {
			info.Warnings = append(slices.Clip(info.Warnings), perNodeStateWarning)
		}
		info.Calls, info.Errors = f.script().Calls()
		if at := f.loadedAt.Load(); at != 0 {
			t := time.Unix(0, at).UTC()
			info.LoadedAt = &t
		}
		f.mu.Lock()
		if f.lastErr != nil {
			info.Error = f.lastErr.Error()
		}
		info.Channels = len(f.chans)
		f.mu.Unlock()
		out = append(out, info)
	}
	cs := e.connect.Load()
	connectAt := -1 // socket.lua's entry in out
	if cs != nil {
		connectAt = len(out)
		info := ScriptInfo{File: cs.Name(), Hash: cs.Hash(), Warnings: cs.Warnings(), Socket: true}
		info.Calls, info.Errors = cs.Calls()
		if at := e.connectLoadedAt.Load(); at != 0 {
			t := time.Unix(0, at).UTC()
			info.LoadedAt = &t
		}
		out = append(out, info)
	}
	for name, err := range e.loadErrs {
		if connectAt >= 0 && name == cs.Name() {
			out[connectAt].Error = err.Error() // a broken save; the previous version serves
			continue
		}
		out = append(out, ScriptInfo{File: name, Error: err.Error(), Socket: name == connectScript})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out
}

// ScriptsHandler serves Scripts as JSON. It does no authentication: mount
// it behind the API key.
func (e *Engine) ScriptsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(e.Scripts())
	})
}
