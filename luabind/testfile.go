package luabind

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// A script test (`luachan test`, SPEC section 8) is a file named *_test.lua that returns a
// table of functions named test_*. It runs in the scripts' sandbox, with lib/ and the luachan
// module, plus `require("luachan.test")`, the client side of a channel (connect, join, push,
// assert_push ...), which the test runner implements as a TestHost. Every test gets a VM of
// its own, run once, so nothing a test leaves in the file's locals reaches the next.

// TestSuffix ends the name of every script test file.
const TestSuffix = "_test.lua"

// testPrefix starts the name of every test function.
const testPrefix = "test_"

// TestReply is a phx_reply as a test sees it: a status and the response, JSON text.
type TestReply struct {
	Status   string
	Response []byte
}

// TestHost is what luachan.test drives: an engine in process, reached as a client reaches it.
// Payloads are JSON text; sockets and channels are the host's own values, handed back to it
// as the test got them. An error is raised in the test at the line that called the function,
// so an assertion's error says what was expected and what came instead.
type TestHost interface {
	// Connect runs socket.lua's connect with params (info.auth_token is authToken, as the
	// JS client sends it); a refused socket is nil with a reason.
	Connect(params map[string]string, authToken string) (sock any, refused string, err error)
	// Join joins topic; a refused join is a nil channel with the error reply.
	Join(sock any, topic string, payload []byte) (ch any, reply TestReply, err error)
	// Push sends event to the channel's handle_in; a nil reply means none came.
	Push(ch any, event string, payload []byte) (reply *TestReply, err error)
	Leave(ch any) error
	BroadcastFromOutside(topic, event string, payload []byte) error
	// AssertPush takes the first message of event the channel received whose payload holds
	// want (nil: any), and returns its payload.
	AssertPush(ch any, event string, want []byte) (payload []byte, err error)
	// AssertBroadcast is AssertPush for what was broadcast on topic, from anywhere.
	AssertBroadcast(topic, event string, want []byte) (payload []byte, err error)
	// RefutePush fails when the channel received event with a payload holding want (nil: any).
	RefutePush(ch any, event string, want []byte) error
	// Advance moves the virtual clock ms forward, firing the timers that fall due in order.
	Advance(ms int64) error
}

// TestFile is one compiled script test file.
type TestFile struct {
	chunk
	tests    []string
	misnamed []string // see Misnamed
}

// LoadTestFile compiles a script test (name is its path relative to opts.Dir) and runs it
// once to list its tests. Errors are *ScriptError naming the file and line.
func LoadTestFile(opts Options, name string, src []byte) (*TestFile, error) {
	proto, err := compile(name, src)
	if err != nil {
		return nil, err
	}
	f := (&TestFile{chunk: chunk{name: name, proto: proto}}).with(opts)
	v, err := f.newTestVM(context.Background(), nil)
	if err != nil {
		return nil, err
	}
	defer v.close()
	v.table.ForEach(func(k, val lua.LValue) {
		name, ok := k.(lua.LString)
		if _, fn := val.(*lua.LFunction); !ok || !fn {
			return
		}
		switch {
		case strings.HasPrefix(string(name), testPrefix):
			f.tests = append(f.tests, string(name))
		case misnamedTest(string(name)):
			f.misnamed = append(f.misnamed, string(name))
		}
	})
	sort.Strings(f.tests)
	sort.Strings(f.misnamed)
	return f, nil
}

// misnamedTest reports whether a function that is not a test_* one was meant to be: its name
// starts with "test_" in another case (Test_join, TEST_join) or with "test" misspelled by a
// swap of two letters (tset_join, tets_join). Helpers such as testUser or tests are not.
func misnamedTest(name string) bool {
	head, _, found := strings.Cut(name, "_")
	if !found {
		return false
	}
	switch strings.ToLower(head) {
	case "test", "tset", "etst", "tets":
		return true
	}
	return false
}

// Misnamed returns the functions of the file's table that look meant as tests but are not
// named test_*, so never run (see misnamedTest), by name.
func (f *TestFile) Misnamed() []string { return f.misnamed }

// with returns a TestFile of f's compiled chunk, run with opts.
func (f *TestFile) with(opts Options) *TestFile {
	t := &TestFile{tests: f.tests}
	t.opts = opts.withDefaults()
	t.name, t.proto = f.name, f.proto
	t.logger = t.opts.Logger.With(logKeyScript, f.name)
	t.libs = make(map[string]*libModule)
	t.returns = "a table of test_* functions"
	t.bind = func(*vm) error { return nil }
	return t
}

// Tests returns the names of the file's tests, in the order they run (by name).
func (f *TestFile) Tests() []string { return f.tests }

// Run runs test in a VM of its own, with opts (the engine's host and clock) and host behind
// luachan.test. The test's Lua code runs under the CPU budget (opts.Timeout); time spent
// waiting on the host does not count. A failure is a *ScriptError at the failing line.
func (f *TestFile) Run(ctx context.Context, opts Options, host TestHost, test string) error {
	run := f.with(opts) // the same compiled chunk, with this test's options
	b := newTestBudget(ctx, run.opts.Timeout)
	defer b.stop()
	v, err := run.newTestVM(ctx, &testModule{host: host, budget: b})
	if err != nil {
		return err
	}
	defer v.close()
	fn, ok := v.table.RawGetString(test).(*lua.LFunction)
	if !ok {
		return scriptErrorf(f.name, "no test function %s", test)
	}
	L := v.L
	L.Push(fn)
	L.SetContext(b)
	b.resume()
	err = L.PCall(0, 0, nil)
	b.pause()
	L.RemoveContext()
	if err == nil {
		return nil
	}
	se := runtimeError(f.name, err)
	var ae *lua.ApiError
	if se.Line == 0 && errors.As(err, &ae) { // error("msg", 0), assert(false): the test's line
		if file, line := tracebackPosition(ae.StackTrace); line > 0 {
			se.File, se.Line = file, line
		}
	}
	if stopped := b.Err(); stopped != nil {
		se.cause = stopped
		if errors.Is(stopped, context.DeadlineExceeded) {
			se.Timeout = true
			se.Msg = fmt.Sprintf("%s ran out of time (CPU budget %v)", test, run.opts.Timeout)
		} else {
			se.Msg = "canceled: " + stopped.Error()
		}
	}
	return se
}

// newTestVM builds a VM with luachan.test (nil mod: one whose functions raise, for listing
// the tests) and runs the file in it.
func (f *TestFile) newTestVM(ctx context.Context, mod *testModule) (*vm, error) {
	v := f.newState()
	if mod == nil {
		mod = &testModule{}
	}
	v.modules[testModuleName] = v.namespace(testModuleName, mod.open(v))
	return f.runVM(ctx, v)
}

// testBudget is the CPU budget of one test function: a context that ends once the test's
// own Lua code has run for its budget. The clock stops while the test waits on the host
// (a join, an assertion's wait), which is no CPU of the script's.
type testBudget struct {
	parent context.Context
	stop   func() bool // stops watching parent
	done   chan struct{}

	mu    sync.Mutex // guards the fields below
	left  time.Duration
	since time.Time   // when the clock last started
	timer *time.Timer // running clock; nil while paused
	err   error
}

func newTestBudget(parent context.Context, d time.Duration) *testBudget {
	b := &testBudget{parent: parent, done: make(chan struct{}), left: d}
	b.stop = context.AfterFunc(parent, func() { b.end(context.Cause(parent)) })
	return b
}

// resume starts the clock with what is left of the budget.
func (b *testBudget) resume() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil && b.timer == nil {
		b.since = time.Now()
		b.timer = time.AfterFunc(b.left, func() { b.end(context.DeadlineExceeded) })
	}
}

// pause stops the clock; a budget already spent stays spent.
func (b *testBudget) pause() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.timer != nil && b.timer.Stop() {
		b.left -= time.Since(b.since)
	}
	b.timer = nil
}

func (b *testBudget) end(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = err
		close(b.done)
	}
}

func (b *testBudget) Deadline() (time.Time, bool) { return time.Time{}, false }
func (b *testBudget) Done() <-chan struct{}       { return b.done }
func (b *testBudget) Value(key any) any           { return b.parent.Value(key) }
func (b *testBudget) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

var _ context.Context = (*testBudget)(nil)
