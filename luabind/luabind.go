// Package luabind runs luachan's scripts. It holds everything about gopher-lua: the sandbox,
// compiling scripts, converting payloads between JSON and Lua values, the luachan module, the
// socket object scripts see, the VM pool, each callback's CPU budget and the heap watchdog.
//
// A Script is one compiled, validated version of a channel script file; a ConnectScript is
// socket.lua, which decides who connects. Each owns a pool of Lua VMs, all built from one
// compiled chunk; callbacks borrow a VM, run, and hand it back with its globals reset.
// Per-channel state lives in an Assigns, which Go owns; each callback works on its own copy,
// so the state survives VM reuse and hot reloads and no Lua value is ever used by two
// goroutines at once.
//
// Scripts cannot stall or exhaust the process: Lua code runs under the CPU budget, the Go
// builtins that gopher-lua cannot interrupt are replaced or capped (limits.go, format.go,
// pattern.go), source is checked before compiling (source.go), and callbacks stop when the
// process heap passes Options.MaxHeap (heap.go).
//
// luabind imports nothing of luachan; the engine implements Host and Socket, and optionally
// SocketAfter, StoreHost and PresenceHost.
package luabind

import (
	"log/slog"
	"runtime"
	"time"
)

const (
	// DefaultTimeout is the CPU budget of one callback when Options.Timeout is zero.
	DefaultTimeout = 250 * time.Millisecond
	// minVMs is the least number of VMs a Script may keep alive at once by default.
	minVMs = 8
	// maxDepth is how deep payloads and assigns may nest (SPEC section 2: 64 levels).
	maxDepth = 64
	// callStackSize bounds Lua call depth; deep enough for ordinary recursion.
	callStackSize = 200
	// registrySize is the initial Lua value stack of a VM, in values.
	registrySize = 1024 * 4
	// registryMaxSize is how far a VM's value stack may grow, in values; past it, a
	// "registry overflow" error (unpack or string.byte of a million values).
	registryMaxSize = 1024 * 80
	// registryGrowStep is how many values the stack grows by at a time. gopher-lua's default
	// of 32 copies the whole stack every 32 values, which made unpack({}, 1, 1e8) run for
	// seconds before overflowing.
	registryGrowStep = 1024 * 4
)

// Payload is a message body: JSON object text, or raw bytes for V2 binary (ArrayBuffer) messages.
type Payload struct {
	Data   []byte
	Binary bool

	enc *encoder // the pooled encoder whose buffer Data is (socket:push payloads); see Release
}

// Release lets the memory of a payload socket:push made be reused, once its Data will not be
// read again (the engine releases a push once it is queued, which copies it). Releasing is
// optional: a payload never released is collected as usual. Other payloads ignore it.
func (p *Payload) Release() {
	if p.enc != nil {
		p.enc.release()
		p.enc, p.Data = nil, nil
	}
}

// Host is what scripts reach outside their VM (the luachan module). The engine implements it.
type Host interface {
	// Broadcast is luachan.broadcast(topic, event, payload).
	Broadcast(topic, event string, p Payload) error
}

// Socket is the channel a callback runs for (the `socket` argument). The engine implements it.
// Its methods are called only from inside a callback, on the goroutine running it.
// An error returned by Push or Broadcast is raised in the script as a Lua error.
type Socket interface {
	Topic() string
	JoinRef() string
	ID() string // "" means nil in Lua
	// Push is socket:push(event, payload) and socket:reply(event, payload). p may hold
	// pooled memory, which p.Release gives back once p.Data is no longer needed.
	Push(event string, p Payload) error
	// Broadcast is socket:broadcast (excludeSelf=false) and socket:broadcast_from (excludeSelf=true).
	Broadcast(event string, p Payload, excludeSelf bool) error
}

// Options configure how scripts are compiled and run. Zero values take the defaults in ().
type Options struct {
	Dir     string           // scripts folder; require("lib.x") loads Dir/lib/x.lua (and "lib.a.b" -> lib/a/b.lua)
	Timeout time.Duration    // (250ms) CPU budget for one callback
	MaxVMs  int              // (4*GOMAXPROCS, at least 8) VMs alive at once per Script
	Logger  *slog.Logger     // (slog.Default()); luachan.log and print go here, tagged "script"=file name
	Host    Host             // required for luachan.broadcast
	Secret  []byte           // (none) HS256 key of luachan.token; without it sign raises and verify refuses
	Now     func() time.Time // (time.Now) the clock of luachan.now; `luachan test` drives a virtual one
	// MaxHeap (DefaultMaxHeap, or 3/4 of the Go memory limit when one is set) is the heap
	// watchdog's bound, in bytes: callbacks running while the process heap is over it are
	// stopped (see ErrHeapLimit), before the machine runs out of memory.
	MaxHeap uint64
	// Stats (none) counts the callbacks of the scripts loaded with these options, across
	// their versions: the engine passes each file's own.
	Stats *CallStats
}

// withDefaults returns o with its zero values replaced by the defaults.
func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxVMs <= 0 {
		o.MaxVMs = max(4*runtime.GOMAXPROCS(0), minVMs)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxHeap == 0 {
		o.MaxHeap = defaultMaxHeap()
	}
	return o
}

// logKeyScript is the log attribute naming the script a line comes from.
const logKeyScript = "script"
