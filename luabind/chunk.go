package luabind

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	lua "github.com/yuin/gopher-lua"
)

// chunk is one compiled version of a script file and what running it takes: its options and
// logger, the lib modules it requires, and a pool of VMs that ran it. Script (a channel) and
// ConnectScript (socket.lua) are a chunk plus what their returned table declares. Immutable
// after init, except for the lib cache; safe for concurrent use.
type chunk struct {
	opts    Options
	name    string // relative file name, e.g. "rooms.lua"
	logger  *slog.Logger
	proto   *lua.FunctionProto // the compiled chunk every VM runs once
	returns string             // what the chunk must return, for errors: "a channel table"
	bind    func(*vm) error    // picks the callbacks out of what the chunk returned, into v.fns
	hash    string
	srcSum  [sha256.Size]byte // sha256 of the source alone, for Stale
	modules []string          // lib modules required at load, as relative paths
	pool    *pool
	plans   sync.Map // *lua.FunctionProto to its sharePlan (see planShareCached)

	calls  atomic.Uint64 // callbacks run (see Calls)
	failed atomic.Uint64 // callbacks that raised, ran out of time or returned what they may not

	libMu    sync.Mutex            // guards libs and libOrder
	libs     map[string]*libModule // compiled lib modules by module name
	libOrder []string              // module names in the order first required
}

// Calls reports how many callbacks of this version have run (connects, for socket.lua),
// and how many of those failed: raised an error, ran out of time or returned a value they
// may not. The dev console turns them into rates; one atomic add per callback, next to a
// Lua call.
func (c *chunk) Calls() (calls, failed uint64) { return c.calls.Load(), c.failed.Load() }

// init compiles src, runs it in a first VM (which bind must accept), lets validate check the
// table it returned, and sets up the pool with that VM in it.
func (c *chunk) init(opts Options, name string, src []byte, validate func(*lua.LTable) error) error {
	c.opts = opts.withDefaults()
	c.name = name
	c.logger = c.opts.Logger.With(logKeyScript, name)
	c.libs = make(map[string]*libModule)
	proto, err := compile(name, src)
	if err != nil {
		return err
	}
	c.proto = proto
	v, err := c.newVM(context.Background())
	if err != nil {
		return err
	}
	if err := validate(v.table); err != nil {
		v.close()
		return err
	}

	c.srcSum = sha256.Sum256(src)
	sum := sha256.New()
	sum.Write(src)
	c.libMu.Lock()
	for _, m := range c.libOrder {
		lib := c.libs[m]
		c.modules = append(c.modules, lib.file)
		sum.Write([]byte("\x00" + lib.file + "\x00"))
		sum.Write(lib.src)
	}
	c.libMu.Unlock()
	c.hash = hex.EncodeToString(sum.Sum(nil))

	c.pool = newPool(c.opts.MaxVMs, c.newVM)
	c.pool.adopt(v)
	return nil
}

// relName is path relative to dir with forward slashes, or its base name outside dir.
func relName(dir, path string) string {
	if rel, err := filepath.Rel(dir, path); err == nil && !strings.HasPrefix(rel, "..") {
		return filepath.ToSlash(rel)
	}
	return filepath.Base(path)
}

// Name returns the relative file name, e.g. "rooms.lua".
func (c *chunk) Name() string { return c.name }

// Hash returns the hex sha256 of the source and the lib modules it required at load.
func (c *chunk) Hash() string { return c.hash }

// Modules returns the lib modules (relative paths) the script required at load, for reload
// tracking.
func (c *chunk) Modules() []string { return slices.Clone(c.modules) }

// Stale reports whether this version no longer matches the files it was built from: src, the
// file's content now, differs from the source it compiled, or a lib module it compiled
// changed on disk or is gone. That covers modules required while a callback ran, not only
// those required while the script loaded, so the engine reloads the script to see them.
func (c *chunk) Stale(src []byte) bool {
	return sha256.Sum256(src) != c.srcSum || c.modulesChanged()
}

// Close releases the pooled VMs once in-flight calls finish. Calls after Close still work (they
// build a fresh VM) so a caller on an old generation is never stranded.
func (c *chunk) Close() { c.pool.close() }

// pcall calls the function below the nargs arguments on v's stack, protected and under the
// CPU budget. Errors become *ScriptError; a timeout, a cancellation or a Go panic marks v
// broken, since the call stopped at an arbitrary point.
func (c *chunk) pcall(ctx context.Context, v *vm, nargs, nret int) error {
	if err := v.budget.arm(ctx, c.opts.Timeout); err != nil {
		v.L.SetTop(0)
		return fmt.Errorf("luabind: call not started: %w", err)
	}
	v.L.SetContext(v.budget)
	err := v.L.PCall(nargs, nret, nil)
	v.L.RemoveContext()
	stopped := v.budget.Err()
	v.budget.disarm()
	if err == nil {
		return nil
	}
	se := runtimeError(c.name, err)
	if stopped != nil {
		v.broken = true
		se.cause = stopped
		switch {
		case errors.Is(stopped, context.DeadlineExceeded):
			se.Timeout = true
			se.Msg = fmt.Sprintf("ran out of time (CPU budget %v)", c.opts.Timeout)
		case errors.Is(stopped, ErrHeapLimit):
			se.Msg = fmt.Sprintf("stopped: the process heap passed its bound of %d MiB", c.opts.MaxHeap>>20)
			// pool.put asks for a collection once v is dropped: until then what the call
			// kept is still on v's stack.
		default:
			se.Msg = "canceled: " + stopped.Error()
		}
	}
	var ae *lua.ApiError
	if errors.As(err, &ae) && ae.Type == lua.ApiErrorPanic {
		v.broken = true
	}
	return se
}

// fnErrorf builds a ScriptError about what callback cb returned, at the line the function
// was defined (in whichever file defined it).
func (c *chunk) fnErrorf(v *vm, cb callback, format string, args ...any) *ScriptError {
	se := scriptErrorf(c.name, format, args...)
	if fn := v.fns[cb]; fn != nil && fn.Proto != nil {
		se.File, se.Line = fn.Proto.SourceName, fn.Proto.LineDefined
	}
	return se
}
