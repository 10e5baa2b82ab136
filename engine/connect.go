package engine

import (
	"os"
	"path/filepath"

	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/luabind"
)

// Connect runs socket.lua's connect before the WebSocket upgrade. Without a
// socket.lua every socket is welcome, with empty assigns and no id. A
// connect that raises or runs out of time refuses the socket (403): a
// broken gate stays closed.
func (e *Engine) Connect(r *hub.ConnectRequest) (ok bool, id string, state any) {
	cs := e.connect.Load()
	if cs == nil {
		return true, "", nil
	}
	params := make(map[string]string, len(r.Params))
	for k, v := range r.Params {
		if len(v) > 0 {
			params[k] = v[0]
		}
	}
	info := luabind.ConnectInfo{AuthToken: r.AuthToken, Origin: r.Origin, RemoteIP: r.RemoteIP}
	ok, assigns, id, err := cs.Connect(e.ctx, params, info)
	if err != nil {
		e.count.connectErrors.Add(1)
		e.log.Error("script error", "script", cs.Name(), "callback", "connect", "remote", r.RemoteIP, "err", err.Error())
		return false, "", nil
	}
	if !ok {
		e.count.connectsRefused.Add(1)
		e.log.Debug("connect refused by script", "script", cs.Name(), "remote", r.RemoteIP)
		return false, "", nil
	}
	return true, id, assigns
}

// reloadConnectLocked loads, reloads or drops socket.lua. Like a channel
// script, a broken version never replaces a working one.
func (e *Engine) reloadConnectLocked() {
	src, err := os.ReadFile(filepath.Join(e.cfg.Dir, connectScript))
	if err != nil {
		if os.IsNotExist(err) {
			delete(e.tried, connectScript)
			delete(e.loadErrs, connectScript)
			if old := e.connect.Swap(nil); old != nil {
				e.log.Info("script removed; every socket may connect", "script", connectScript)
				old.Close()
			}
			return
		}
		e.log.Error("script unreadable", "script", connectScript, "err", err)
		return
	}
	var modules []string
	if cur := e.connect.Load(); cur != nil {
		modules = cur.Modules()
	}
	hash := e.contentHash(src, modules)
	if e.tried[connectScript] == hash {
		return
	}
	e.tried[connectScript] = hash
	cs, err := luabind.LoadConnectSource(e.opts, connectScript, src)
	if err != nil {
		e.setLoadErrorLocked(connectScript, nil, err)
		return
	}
	e.tried[connectScript] = e.contentHash(src, cs.Modules())
	delete(e.loadErrs, connectScript)
	if old := e.connect.Swap(cs); old != nil {
		e.count.reloads.Add(1)
		old.Close()
		e.log.Info("script reloaded", "script", connectScript)
	} else {
		e.log.Info("script loaded", "script", connectScript, "role", "connect")
	}
}
