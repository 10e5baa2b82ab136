package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/luachan/luachan/scripttest"
)

// runScriptTests is `luachan test [DIR]`: the script tests (*_test.lua) below DIR, the
// -scripts folder by default, against the real engine in process. Exit status 1 when a
// test fails, 2 on a usage error.
func runScriptTests(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("luachan test", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // a bad flag is the one line of the returned error; -h prints usage below
	fs.Usage = func() {}
	usage := func() {
		fs.SetOutput(stderr)
		fmt.Fprintf(stderr, "Usage: luachan test [flags] [DIR]\n\n"+
			"Runs the script tests, files named *_test.lua below DIR (default: -scripts),\n"+
			"against the channel scripts in DIR. Flags may come before or after DIR.\n\n")
		fs.PrintDefaults()
	}
	defDir := os.Getenv("LUACHAN_SCRIPTS")
	if defDir == "" {
		defDir = "scripts/examples"
	}
	dir := fs.String("scripts", defDir, "folder of the channel scripts and their tests, when DIR is not given [LUACHAN_SCRIPTS]")
	logLevel := fs.String("log-level", "warn", "log level of the engine and the scripts: debug, info, warn or error")
	timeout := fs.Duration("script-timeout", 0, "CPU budget of one script callback and of one test's Lua code (default 250ms)")
	var dirs []string // the arguments that are not flags, wherever they come
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				usage()
				return err
			}
			return usagef("luachan test: %v (luachan test -h lists the flags)", err)
		}
		if fs.NArg() == 0 {
			break
		}
		dirs = append(dirs, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch len(dirs) {
	case 0:
	case 1:
		*dir = dirs[0]
	default:
		return usagef("luachan test: one folder at most, got %q", dirs)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usagef("luachan test: -log-level %q: want debug, info, warn or error", *logLevel)
	}
	secret := os.Getenv("LUACHAN_SECRET") // "": scripttest.DefaultSecret

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := scripttest.Run(ctx, scripttest.Config{
		Dir:           *dir,
		Out:           stdout,
		Logger:        slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
		ScriptTimeout: *timeout,
		Secret:        []byte(secret),
	})
	switch {
	case errors.Is(err, scripttest.ErrNoDir):
		return usagef("luachan test: scripts folder %q cannot be read (pass the folder: luachan test DIR)", *dir)
	case err != nil:
		return err
	case res.Failed > 0:
		return fmt.Errorf("%d of %d script tests failed", res.Failed, res.Passed+res.Failed)
	}
	return nil
}
