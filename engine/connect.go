package engine

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/luabind"
)

// Connect runs socket.lua's connect before the WebSocket upgrade. Without a
// socket.lua every socket is welcome, with empty assigns and no id. A
// connect that raises or runs out of time refuses the socket (403): a
// broken gate stays closed. It stops waiting (for a free VM) when the
// client goes away (r.Ctx ends) or the engine closes.
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
	ctx, cancel := e.requestContext(r.Ctx)
	defer cancel()
	ok, assigns, id, err := cs.Connect(ctx, params, info)
	if err != nil && r.Ctx != nil && r.Ctx.Err() != nil {
		e.log.Debug("client left before connect answered", "script", cs.Name(), "remote", r.RemoteIP)
		return false, "", nil
	}
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

// requestContext returns a context that ends with req (nil: never) or when
// the engine closes, whichever is first.
func (e *Engine) requestContext(req context.Context) (context.Context, context.CancelFunc) {
	if req == nil {
		return e.ctx, func() {}
	}
	ctx, cancel := context.WithCancel(req)
	stop := context.AfterFunc(e.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// reloadConnectLocked loads, reloads or drops socket.lua. Like a channel
// script, a broken version never replaces a working one, and the log says
// so. libSum is libTreeSum of the folder.
func (e *Engine) reloadConnectLocked(libSum string) {
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
	cur := e.connect.Load()
	if cur != nil && e.loadErrs[connectScript] == nil && !cur.Stale(src) {
		return // what serves is what is on disk
	}
	key := sourceKey(src, libSum)
	if e.tried[connectScript] == key {
		return
	}
	e.tried[connectScript] = key
	cs, err := luabind.LoadConnectSource(e.opts, connectScript, src)
	if err != nil {
		e.reportLoadError(connectScript, e.loadErrs[connectScript], err, cur != nil)
		e.loadErrs[connectScript] = err
		return
	}
	delete(e.loadErrs, connectScript)
	e.connectLoadedAt.Store(time.Now().UnixNano())
	if old := e.connect.Swap(cs); old != nil {
		e.count.reloads.Add(1)
		e.scripts.of(connectScript).reloads.Add(1)
		old.Close()
		e.log.Info("script reloaded", "script", connectScript)
	} else {
		e.log.Info("script loaded", "script", connectScript, "role", "connect")
	}
}
