package luachan_test

// The Lua scripts the tests run the server with, and helpers to lay out a scripts folder.

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// testLua is a channel script ("test:*") whose handle_in does whatever the event names,
// so one script covers every row of the wire protocol.
const testLua = `
local t = { topic = "test:*" }

function t.join(topic, payload, socket)
  if payload.crash then error("join asked to crash") end
  if payload.refuse then return false, { reason = "refused", why = payload.refuse } end
  if payload.refuse_default then return false end
  if payload.push then
    -- sent from inside join: the join reply must still go out first
    socket:push("pushed", { n = 1 })
    socket:broadcast("broadcasted", { n = 2 })
  end
  return true, { joined = topic }
end

function t.handle_in(event, payload, socket)
  if event == "echo" then return "ok", payload end
  if event == "error_reply" then return "error", { reason = "asked" } end
  if event == "noreply" then return end
  if event == "crash" then error("handle_in asked to crash") end
  if event == "spin" then while true do end end
  if event == "push" then socket:push("pushed", payload) return end
  if event == "push_many" then
    for i = 1, 3 do socket:push("pushed", { i = i, pad = string.rep("x", 100 * i) }) end
    socket:broadcast("shout", payload)
    return "ok", { done = true }
  end
  if event == "broadcast" then socket:broadcast("shout", payload) return "ok" end
  if event == "broadcast_from" then socket:broadcast_from("shout", payload) return "ok" end
  if event == "whoami" then
    return "ok", { id = socket.id or luachan.null, token = socket.assigns.token or luachan.null }
  end
  if event == "bin" then
    -- a binary (ArrayBuffer) payload arrives as a Lua string; strings go out as binary
    socket:push("bin_push", payload)
    socket:broadcast("bin_bcast", payload)
    return "ok", payload
  end
  return "error", { reason = "unknown event " .. event }
end

function t.leave(reason, socket)
  luachan.log("info", "test channel left", { left_topic = socket.topic, left_reason = reason })
  if socket.topic ~= "test:observer" then
    luachan.broadcast("test:observer", "left", { topic = socket.topic, reason = reason })
  end
end

return t
`

// socketLua decides who may connect: everyone but ?reject=1, with the socket id
// "user:<id>" when ?id= is given and the auth token (1.8 JS client subprotocol) in assigns.
const socketLua = `
return {
  connect = function(params, info)
    if params.reject then return false end
    local id = nil
    if params.id then id = "user:" .. params.id end
    local token = info.auth_token
    if token == nil or token == "" then token = "none" end
    return true, { token = token }, id
  end,
}
`

// writeScripts creates a scripts folder holding files (relative name -> source).
func writeScripts(tb testing.TB, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, src := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// testScripts is a folder with just testLua.
func testScripts(tb testing.TB) string {
	tb.Helper()
	return writeScripts(tb, map[string]string{"test.lua": testLua})
}

// examplesDir is the folder of example scripts users see first (SPEC section 7).
const examplesDir = "scripts/examples"

// examplesPlus copies scripts/examples (with lib/) into a temp folder and adds files.
func examplesPlus(tb testing.TB, files map[string]string) string {
	tb.Helper()
	all := map[string]string{}
	err := filepath.WalkDir(examplesDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(examplesDir, path)
		if err != nil {
			return err
		}
		all[filepath.ToSlash(rel)] = string(src)
		return nil
	})
	if err != nil {
		tb.Fatalf("copy %s: %v", examplesDir, err)
	}
	for name, src := range files {
		all[name] = src
	}
	return writeScripts(tb, all)
}
