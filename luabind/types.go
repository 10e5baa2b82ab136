package luabind

import _ "embed"

// types is the LuaLS (`---@meta`) annotation file of the whole script API: the channel
// and socket.lua callbacks, `socket`, and the `luachan` module. TestTypesCoverAPI fails
// when a function scripts can call is missing from it.
//
//go:embed luachan.d.lua
var types string

// Types returns the LuaLS annotations of the script API, for `luachan types`.
func Types() string { return types }
