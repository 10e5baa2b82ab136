package luabind

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// requireLoading marks a module whose chunk is running, to catch require loops.
var requireLoading = &lua.LUserData{Metatable: lua.LNil}

// require is the scripts' require: "luachan", or a module under lib/ ("lib.a.b" is
// Dir/lib/a/b.lua), compiled once per Script and run once per VM.
func (v *vm) require(L *lua.LState) int {
	name := L.CheckString(1)
	if name == "luachan" {
		L.Push(v.luachan)
		return 1
	}
	if ret, ok := v.modules[name]; ok {
		if ret == requireLoading {
			L.RaiseError("loop or previous error loading module '%s'", name)
		}
		L.Push(ret)
		return 1
	}
	mod, err := v.chunk.lib(name)
	if err != nil {
		var se *ScriptError
		if errors.As(err, &se) {
			L.Error(lua.LString(se.Error()), 0) // already names the module's file and line
		}
		L.RaiseError("%s", err)
	}
	v.modules[name] = requireLoading
	fn := L.NewFunctionFromProto(mod.proto)
	fn.Env = v.env
	L.Push(fn)
	L.Push(lua.LString(name))
	L.Call(1, 1)
	ret := L.Get(-1)
	if ret == lua.LNil {
		ret = lua.LTrue
	}
	v.modules[name] = ret
	L.Push(ret)
	return 1
}

// libModule is a compiled module from lib/.
type libModule struct {
	file  string // relative path, e.g. "lib/util.lua"
	src   []byte
	proto *lua.FunctionProto
}

// libPath maps a module name to its file relative to Dir: "lib.a.b" -> "lib/a/b.lua". It
// reports false for names outside lib/ or that could escape the folder.
func libPath(name string) (string, bool) {
	parts := strings.Split(name, ".")
	if len(parts) < 2 || parts[0] != "lib" {
		return "", false
	}
	for _, p := range parts[1:] {
		if p == "" {
			return "", false
		}
		for _, c := range p {
			if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return "", false
			}
		}
	}
	return strings.Join(parts, "/") + ".lua", true
}

// lib returns the compiled module name, compiling it on first use, whether the script is
// loading or a callback requires it; Stale watches every module compiled here. Modules first
// required while the script loads are recorded in load order for Modules and Hash.
func (c *chunk) lib(name string) (*libModule, error) {
	c.libMu.Lock()
	defer c.libMu.Unlock()
	if m, ok := c.libs[name]; ok {
		return m, nil
	}
	file, ok := libPath(name)
	if !ok {
		return nil, fmt.Errorf("module '%s' not found", name)
	}
	src, err := os.ReadFile(filepath.Join(c.opts.Dir, filepath.FromSlash(file)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("module '%s' not found", name)
	}
	if err != nil {
		return nil, fmt.Errorf("module '%s': %w", name, err)
	}
	proto, err := compile(file, src)
	if err != nil {
		return nil, err
	}
	m := &libModule{file: file, src: src, proto: proto}
	c.libs[name] = m
	c.libOrder = append(c.libOrder, name)
	return m, nil
}

// modulesChanged reports whether a lib module this version compiled, while loading or since,
// differs on disk from the source it compiled, or is gone.
func (c *chunk) modulesChanged() bool {
	c.libMu.Lock()
	mods := make([]*libModule, 0, len(c.libs))
	for _, m := range c.libs {
		mods = append(mods, m)
	}
	c.libMu.Unlock()
	for _, m := range mods {
		src, err := os.ReadFile(filepath.Join(c.opts.Dir, filepath.FromSlash(m.file)))
		if err != nil || !bytes.Equal(src, m.src) {
			return true
		}
	}
	return false
}
