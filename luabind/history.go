package luabind

import (
	lua "github.com/yuin/gopher-lua"
)

// HistoryEntry is one broadcast of a topic's history, for luachan.history.
type HistoryEntry struct {
	Position string // "<epoch>:<n>"
	Event    string
	Payload  Payload
}

// HistoryHost is implemented by a Host that keeps topic histories (the engine):
// luachan.history(topic, { since = pos, limit = n }).
type HistoryHost interface {
	// ReadHistory returns topic's broadcasts after since ("": the latest), at most
	// limit (0: the host's cap). recovered is false, with no entries, when since is
	// not a position the history still holds, or the topic has none.
	ReadHistory(topic, since string, limit int) (entries []HistoryEntry, recovered bool)
}

// history is luachan.history(topic[, { since = pos, limit = n }]): a list of
// { position =, event =, payload = }, oldest first, and whether since was recovered.
func (v *vm) history(L *lua.LState) int {
	topic := L.CheckString(1)
	since, limit := "", 0
	if opts := L.OptTable(2, nil); opts != nil {
		switch s := opts.RawGetString("since").(type) {
		case lua.LString:
			since = string(s)
		case *lua.LNilType:
		default:
			L.ArgError(2, "since must be a position string")
		}
		switch n := opts.RawGetString("limit").(type) {
		case lua.LNumber:
			if n < 1 {
				L.ArgError(2, "limit must be at least 1")
			}
			limit = int(min(float64(n), 1<<30))
		case *lua.LNilType:
		default:
			L.ArgError(2, "limit must be a number")
		}
	}
	host, ok := v.chunk.opts.Host.(HistoryHost)
	if !ok {
		L.RaiseError("luachan.history is not available on this server")
	}
	entries, recovered := host.ReadHistory(topic, since, limit)
	list := newTable(len(entries), 0)
	for i, e := range entries {
		payload, err := decodePayload(e.Payload)
		if err != nil {
			L.RaiseError("luachan.history: %s", err)
		}
		t := newTable(0, 3)
		t.RawSetString("position", lua.LString(e.Position))
		t.RawSetString("event", lua.LString(e.Event))
		t.RawSetString("payload", payload)
		list.RawSetInt(i+1, t)
	}
	L.Push(list)
	L.Push(lua.LBool(recovered))
	return 2
}
