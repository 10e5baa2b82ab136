// Command luachan-bench is luachan's load tool. It speaks Phoenix V2 like any
// client and measures luachan against a ceiling: a minimal plain-Go server
// inside the tool that does the same work, measured in the same run.
//
//	luachan-bench fanout  N subscribers, M broadcasts of S bytes (-intercept: through handle_out)
//	luachan-bench rpc     C clients pushing an event answered by handle_in, at a given rate
//	luachan-bench idle    N joined connections held with heartbeats: server memory per connection
//	luachan-bench joins   connect-and-join rate
//	luachan-bench recover N clients rejoin a history topic at once with since: time until all replayed
//
// Every run is bounded in count and time, targets only 127.0.0.0/8, and
// prints a table and one JSON line. luachan-bench ceiling-server runs the
// ceiling alone; luachan-bench worker is the child process the tool starts
// when its clients need more open files than one process has.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(exitCode(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr), os.Stderr))
}

// exitCode maps run's error to an exit status, saying what went wrong.
func exitCode(err error, stderr io.Writer) int {
	var u usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.As(err, &u):
		fmt.Fprintln(stderr, "luachan-bench:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "luachan-bench:", err)
		return 1
	}
}

// usageError is a bad command line.
type usageError string

func (e usageError) Error() string { return string(e) }

func usageErr(msg string) error { return usageError(msg) }

// errHelp is -h: usage printed, nothing to do.
var errHelp = errors.New("help requested")

const usage = `luachan-bench: load luachan and a plain-Go ceiling server with Phoenix V2 clients.

Usage:
  luachan-bench fanout [flags]   N subscribers on one topic, M broadcasts of S bytes
  luachan-bench rpc [flags]      C clients pushing an event answered by handle_in
  luachan-bench idle [flags]     N joined connections held with heartbeats
  luachan-bench joins [flags]    connect-and-join rate
  luachan-bench recover [flags]  N clients rejoin a history topic at once with since
  luachan-bench ceiling-server [-addr 127.0.0.1:PORT]
  luachan-bench MODE -h          the flags of a mode

Each mode measures the targets of -targets one after the other, each with a
fresh server: "ceiling" (this tool's minimal server), "luachan" (luachan
started from -server with the bench scripts, or running at -addr) and, for
fanout, "intercept" (luachan with a Lua handle_out per subscriber).
`

// run is the whole program; stdin is only read by the worker subcommand.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageErr("no mode given")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "worker":
		raiseFileLimit()
		return serveWorker(ctx, stdin, stdout)
	case "ceiling-server":
		return runCeilingServer(ctx, args[1:], stderr)
	}
	// Worker processes copy their stderr here concurrently.
	stderr = &lockedWriter{w: stderr}
	cfg, err := parseConfig(args[0], args[1:], stderr)
	if err != nil {
		return err
	}
	if _, err := raiseFileLimit(); err != nil {
		fmt.Fprintln(stderr, "luachan-bench: cannot raise the open-file limit:", err)
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := runMode(ctx, cfg, stderr)
	if rep != nil {
		if perr := rep.print(stdout); perr != nil && err == nil {
			err = perr
		}
	}
	return err
}

// modeFunc measures one target; it returns one row, or one per rpc rate.
type modeFunc func(ctx context.Context, cfg *config, target string, srv *server, stderr io.Writer) ([]row, error)

var modes = map[string]modeFunc{
	"fanout":  runFanout,
	"rpc":     runRPC,
	"idle":    runIdle,
	"joins":   runJoins,
	"recover": runRecover,
}

// runMode measures every target in turn, each against a fresh server.
func runMode(ctx context.Context, cfg *config, stderr io.Writer) (*report, error) {
	if needsLuachan(cfg) && cfg.addr == "" {
		dir, err := writeScripts("", cfg.history)
		if err != nil {
			return nil, fmt.Errorf("bench: writing the bench scripts: %w", err)
		}
		defer os.RemoveAll(dir)
		cfg.scriptsDir = dir
		if cfg.redis != "" {
			cfg.pubsub = cfg.redis
		} else if cfg.nodes > 1 || cfg.withRedis {
			// One Redis for the whole run: the targets' topics differ, and it
			// outlives every target's nodes, so none of them sees it go.
			rs, err := startRedis(ctx)
			if err != nil {
				return nil, err
			}
			defer func() {
				if err := rs.stopProcess(); err != nil {
					fmt.Fprintln(stderr, "luachan-bench: stopping redis-server:", err)
				}
			}()
			cfg.pubsub, cfg.redisPID = "redis://"+rs.addr, rs.pid
		}
	}
	rep := &report{Mode: cfg.mode, Params: cfg.params()}
	var failed []string
	for _, target := range cfg.targets {
		if ctx.Err() != nil {
			break
		}
		rows, err := measure(ctx, cfg, target, stderr)
		if err != nil {
			failed = append(failed, target)
			fmt.Fprintf(stderr, "luachan-bench: %s: %v\n", target, err)
			rows = append(rows, row{Target: target, Op: opName(cfg.mode), Err: firstLine(err.Error())})
		}
		rep.Rows = append(rep.Rows, rows...)
	}
	compare(rep.Rows)
	if cfg.mode == "rpc" && cfg.search {
		rep.MaxRate = map[string]float64{}
		for _, r := range rep.Rows {
			if r.pass(cfg.p99) && r.Rate > rep.MaxRate[r.Target] {
				rep.MaxRate[r.Target] = r.Rate
			}
		}
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	if len(failed) > 0 {
		return rep, fmt.Errorf("bench: %s failed", strings.Join(failed, ", "))
	}
	return rep, nil
}

// measure starts target's server, runs the mode against it and stops it.
func measure(ctx context.Context, cfg *config, target string, stderr io.Writer) (rows []row, err error) {
	srv, err := launch(ctx, cfg, target)
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := srv.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	return modes[cfg.mode](ctx, cfg, target, srv, stderr)
}

func needsLuachan(cfg *config) bool {
	return slices.ContainsFunc(cfg.targets, func(t string) bool { return t != "ceiling" })
}

func opName(mode string) string {
	switch mode {
	case "fanout":
		return "delivery"
	case "rpc":
		return "reply"
	case "joins":
		return "join"
	case "recover":
		return "replayed"
	}
	return "conn"
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// findServer is the luachan binary: -server, or luachan next to this tool
// or on PATH.
func findServer(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "luachan")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("luachan"); err == nil {
		return p, nil
	}
	return "", usageErr("no luachan binary: build one (go build -o /tmp/luachan ./cmd/luachan) and pass -server /tmp/luachan, or -addr of a running one")
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
