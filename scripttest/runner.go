// Package scripttest runs script tests (`luachan test`, SPEC section 8): files named
// *_test.lua below the scripts folder, each returning a table of test_* functions that
// drive the folder's channels through luachan.test, as Phoenix.ChannelTest drives a
// Phoenix channel.
//
// Every test gets a hub and an engine of its own on the folder, in process: the real
// routing, VM pool, sandbox, assigns, store and presence (in memory), with a virtual clock
// and no watcher. Its sockets are LongPoll sessions served by the hub's own handler, called
// directly: no listener, no network. luabind runs the test's Lua; this package is its
// TestHost.
package scripttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/luachan/luachan/luabind"
)

// maxTestTime bounds one test in real time, whatever it waits on: a test never hangs.
const maxTestTime = 30 * time.Second

// errTestTooLong ends a test that ran past maxTestTime.
var errTestTooLong = fmt.Errorf("the test ran longer than %v", maxTestTime)

// ErrNoDir is returned by Run when the folder cannot be read.
var ErrNoDir = errors.New("scripttest: no scripts folder")

// Config configures a Run.
type Config struct {
	Dir           string        // the scripts folder: channels, socket.lua and lib/; tests anywhere below
	Out           io.Writer     // (io.Discard) one line per test, then "N passed, M failed"
	Logger        *slog.Logger  // (discard) the engine's and the scripts' log
	ScriptTimeout time.Duration // (the engine's default) CPU budget of a callback, and of a test's Lua
	Secret        []byte        // (DefaultSecret) HS256 key of luachan.token, for socket.lua and the tests
}

// DefaultSecret signs and verifies luachan.token in script tests run without a secret, so
// socket.lua's token checks can be tested without configuring one.
const DefaultSecret = "luachan-test-secret"

// Result counts the tests run.
type Result struct{ Passed, Failed int }

// Run runs every script test below cfg.Dir, in file and then test name order, and writes
// the report to cfg.Out. A test that fails or a file that does not load counts as failed;
// the error is for a folder that cannot be read.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ScriptTimeout <= 0 {
		cfg.ScriptTimeout = luabind.DefaultTimeout
	}
	if len(cfg.Secret) == 0 {
		cfg.Secret = []byte(DefaultSecret)
	}
	files, err := testFiles(cfg.Dir)
	if err != nil {
		return Result{}, err
	}
	var res Result
	for _, name := range files {
		if err := runFile(ctx, &cfg, name, &res); err != nil {
			return res, err
		}
	}
	fmt.Fprintf(cfg.Out, "%d passed, %d failed\n", res.Passed, res.Failed)
	return res, nil
}

// testFiles lists the *_test.lua files below dir, relative to it, in lexical order.
func testFiles(dir string) ([]string, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a readable folder", ErrNoDir, dir)
	}
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != dir && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), luabind.TestSuffix) {
			rel, err := filepath.Rel(dir, path)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoDir, err)
	}
	return files, nil
}

// runFile loads one test file and runs its tests.
func runFile(ctx context.Context, cfg *Config, name string, res *Result) error {
	src, err := os.ReadFile(filepath.Join(cfg.Dir, filepath.FromSlash(name)))
	if err == nil {
		var f *luabind.TestFile
		f, err = luabind.LoadTestFile(luabind.Options{Dir: cfg.Dir, Timeout: cfg.ScriptTimeout, Logger: cfg.Logger, Secret: cfg.Secret}, name, src)
		if err == nil {
			// A test that is never run because of its name must not pass silently.
			for _, fn := range f.Misnamed() {
				fmt.Fprintf(cfg.Out, "FAIL %s %s\n%s: %s is not run: tests are the functions named test_*\n", name, fn, name, fn)
				res.Failed++
			}
			if len(f.Tests()) == 0 {
				if len(f.Misnamed()) == 0 {
					fmt.Fprintf(cfg.Out, "FAIL %s\n%s: no test_* functions in the table it returns\n", name, name)
					res.Failed++
				}
				return nil
			}
			for _, test := range f.Tests() {
				if err := runTest(ctx, cfg, f, name, test, res); err != nil {
					return err
				}
			}
			return nil
		}
	}
	fmt.Fprintf(cfg.Out, "FAIL %s\n%s\n", name, err)
	res.Failed++
	return nil
}

// runTest runs one test against a fresh engine.
func runTest(ctx context.Context, cfg *Config, f *luabind.TestFile, name, test string, res *Result) error {
	ctx, cancel := context.WithTimeoutCause(ctx, maxTestTime, errTestTooLong)
	defer cancel()
	e, err := newEnv(ctx, cfg, cfg.Logger)
	if err != nil {
		return err // the folder went away: no test can run
	}
	err = f.Run(ctx, e.scriptOptions(cfg, cfg.Logger), e, test)
	e.close()
	if err != nil {
		fmt.Fprintf(cfg.Out, "FAIL %s %s\n%s\n", name, test, err)
		res.Failed++
		return nil
	}
	fmt.Fprintf(cfg.Out, "ok   %s %s\n", name, test)
	res.Passed++
	return nil
}
