package luabind

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// removedGlobals are base library functions scripts do not get: they load code from outside the
// folder, reach other functions' environments, or control the host's garbage collector.
var removedGlobals = []string{
	"load", "loadstring", "dofile", "loadfile", "getfenv", "setfenv",
	"collectgarbage", "_printregs", "module", "newproxy",
}

// openSandbox opens what scripts may use: the base library without removedGlobals, string
// (without dump), table and math, print to the log, require for lib/ and the luachan module.
// There is no os, io, debug, coroutine, channel or package.
func (v *vm) openSandbox() {
	L := v.L
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	g := L.G.Global
	for _, name := range removedGlobals {
		g.RawSetString(name, lua.LNil)
	}
	if str, ok := g.RawGetString(lua.StringLibName).(*lua.LTable); ok {
		str.RawSetString("dump", lua.LNil)
	}
	v.luachan = v.openLuachan()
	g.RawSetString("luachan", v.luachan)
	g.RawSetString("print", L.NewFunction(v.print))
	g.RawSetString("require", L.NewFunction(v.require))
}

// print writes its arguments, tab-separated, to the log at info.
func (v *vm) print(L *lua.LState) int {
	if !v.script.logger.Enabled(context.Background(), slog.LevelInfo) {
		return 0
	}
	var b strings.Builder
	for i := 1; i <= L.GetTop(); i++ {
		if i > 1 {
			b.WriteByte('\t')
		}
		b.WriteString(L.ToStringMeta(L.Get(i)).String())
	}
	v.script.logger.Info(b.String())
	return 0
}

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
	mod, err := v.script.lib(name)
	if err != nil {
		var se *ScriptError
		if errors.As(err, &se) {
			L.Error(lua.LString(se.Error()), 0) // already names the module's file and line
		}
		L.RaiseError("%s", err)
	}
	v.modules[name] = requireLoading
	L.Push(L.NewFunctionFromProto(mod.proto))
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

// lib returns the compiled module name, compiling it on first use. Modules first required while
// the script loads are recorded in load order for Modules and Hash.
func (s *Script) lib(name string) (*libModule, error) {
	s.libMu.Lock()
	defer s.libMu.Unlock()
	if m, ok := s.libs[name]; ok {
		return m, nil
	}
	file, ok := libPath(name)
	if !ok {
		return nil, fmt.Errorf("module '%s' not found", name)
	}
	src, err := os.ReadFile(filepath.Join(s.opts.Dir, filepath.FromSlash(file)))
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
	s.libs[name] = m
	s.libOrder = append(s.libOrder, name)
	return m, nil
}
