package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/luachan/luachan/engine"
	"github.com/luachan/luachan/httpapi"
)

// snapshot is what the page shows, at one moment.
type snapshot struct {
	At      int64        `json:"t"` // unix milliseconds
	Totals  totals       `json:"totals"`
	Scripts []scriptView `json:"scripts"`
	Series  []sample     `json:"series"` // samples newer than the stream's previous snapshot
	Topics  topicList    `json:"topics"`
	Topic   *topicView   `json:"topic,omitempty"` // the topic the page opened
}

// scriptView is a script file with its callback rates over the last rateWindow.
type scriptView struct {
	engine.ScriptInfo
	CallRate  float64 `json:"call_rate"`  // callbacks per second
	ErrorRate float64 `json:"error_rate"` // failed callbacks per second
}

// topicList is the busiest topics matching the page's filter.
type topicList struct {
	Filter  string `json:"filter"`
	Matched int    `json:"matched"`
	Top     any    `json:"top"`
}

// topicView is one opened topic.
type topicView struct {
	Name        string    `json:"name"`
	Subscribers int       `json:"subscribers"`
	Presence    any       `json:"presence"` // key -> {"metas": [...]}, secrets masked
	Events      []sampled `json:"events"`   // newest first
}

// query is what a page asks a stream or snapshot for.
type query struct {
	filter string // topics whose name contains it
	top    int    // how many topics
	topic  string // the opened topic, "" for none
}

func parseQuery(r *http.Request) query {
	q := query{filter: r.URL.Query().Get("filter"), topic: r.URL.Query().Get("topic"), top: defaultTop}
	if n, err := strconv.Atoi(r.URL.Query().Get("n")); err == nil && n > 0 {
		q.top = min(n, maxTop)
	}
	return q
}

// authorized puts next behind the API key, if there is one.
func (c *Console) authorized(next http.Handler) http.Handler {
	if c.cfg.Key == "" {
		return next
	}
	return httpapi.RequireKey(c.cfg.Key, next)
}

// api serves GET /console/api/snapshot and GET /console/api/stream.
func (c *Console) api(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch r.URL.Path {
	case "/console/api/snapshot":
		q := parseQuery(r)
		var rg *ring
		if q.topic != "" {
			rg = &ring{} // nothing sampled yet: the events list needs a stream
		}
		st := streamState{}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.snapshot(q, rg, &st))
	case "/console/api/stream":
		c.stream(w, r)
	default:
		http.NotFound(w, r)
	}
}

// rateWindow is how far back a script's callback rates look: long enough that a burst
// stays visible for a few seconds, short enough to follow a change.
const rateWindow = 5 * time.Second

// streamState is what one stream remembers between snapshots, for rates and deltas.
type streamState struct {
	calls  []callCounts // the counts of the last rateWindow, oldest first
	series int64        // the newest sample sent
}

// callCounts are the scripts' callback counters at one moment.
type callCounts struct {
	at     time.Time
	counts map[string][2]uint64 // file -> calls, errors
}

// stream sends a snapshot as a server-sent event every snapshotEvery until the client
// goes, or the console closes. While it runs it taps the opened topic, if any.
func (c *Console) stream(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	q := parseQuery(r)
	var rg *ring
	if q.topic != "" {
		rg = &ring{}
		stop := c.cfg.Hub.Tap(q.topic, rg.add)
		defer stop()
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	st := streamState{}
	tick := time.NewTicker(snapshotEvery)
	defer tick.Stop()
	for {
		data, err := json.Marshal(c.snapshot(q, rg, &st))
		if err != nil {
			c.log.Warn("console snapshot not encodable", "err", err)
			return
		}
		if _, err := fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", data); err != nil {
			return
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-c.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// snapshot reads everything the page shows.
func (c *Console) snapshot(q query, rg *ring, st *streamState) snapshot {
	now := time.Now()
	s := snapshot{At: now.UnixMilli(), Totals: c.totals()}
	s.Series = c.history.since(st.series)
	if n := len(s.Series); n > 0 {
		st.series = s.Series[n-1].At
	}
	for len(st.calls) > 1 && now.Sub(st.calls[1].at) >= rateWindow {
		st.calls = st.calls[1:]
	}
	var base callCounts
	if len(st.calls) > 0 {
		base = st.calls[0]
	}
	dt := now.Sub(base.at).Seconds()
	counts := make(map[string][2]uint64)
	for _, info := range c.cfg.Engine.Scripts() {
		v := scriptView{ScriptInfo: info}
		if prev, ok := base.counts[info.File]; ok && dt > 0 {
			v.CallRate = delta(info.Calls, prev[0]) / dt
			v.ErrorRate = delta(info.Errors, prev[1]) / dt
		}
		counts[info.File] = [2]uint64{info.Calls, info.Errors}
		s.Scripts = append(s.Scripts, v)
	}
	st.calls = append(st.calls, callCounts{at: now, counts: counts})

	top, matched := c.cfg.Hub.TopicCounts(q.filter, q.top)
	s.Topics = topicList{Filter: q.filter, Matched: matched, Top: top}
	if top == nil {
		s.Topics.Top = []any{}
	}
	if q.topic != "" {
		tv := &topicView{Name: q.topic, Subscribers: c.cfg.Hub.SubscriberCount(q.topic), Presence: map[string]any{}}
		if p, err := c.cfg.Presence(q.topic); err == nil {
			tv.Presence = maskedPresence(p)
		}
		if rg != nil {
			tv.Events = rg.list()
		}
		s.Topic = tv
	}
	return s
}

// delta is cur-prev as a float, or cur when the counter restarted (a reload starts a
// new script version's counters at 0).
func delta(cur, prev uint64) float64 {
	if cur < prev {
		return float64(cur)
	}
	return float64(cur - prev)
}

// maskedPresence decodes a presence_state and masks secrets in its metas (the keys
// are presence keys, user ids, not field names).
func maskedPresence(data []byte) any {
	var state map[string]struct {
		Metas []any `json:"metas"`
	}
	if err := json.Unmarshal(data, &state); err != nil {
		return map[string]any{}
	}
	out := make(map[string]any, len(state))
	for k, e := range state {
		for i := range e.Metas {
			e.Metas[i] = engine.FilterSecrets(e.Metas[i])
		}
		out[k] = map[string]any{"metas": e.Metas}
	}
	return out
}
