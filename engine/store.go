package engine

import "github.com/luachan/luachan/luabind"

var _ luabind.StoreHost = (*Engine)(nil)

// Store is the shared state behind luachan.store: Config.Store. nil (no store configured)
// makes every luachan.store call a script error saying so.
func (e *Engine) Store() luabind.Store { return e.cfg.Store }
