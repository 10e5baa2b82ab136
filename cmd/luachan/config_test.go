package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, cfg Config)
		wantErr string // a usage error (exit 2) containing this
	}{
		{name: "defaults", args: []string{"-scripts", dir}, check: func(t *testing.T, cfg Config) {
			if cfg.Addr != ":4000" || cfg.PubSub != "memory" || cfg.MaxChannels != 100 ||
				cfg.MaxFrameSize != 1<<20 || cfg.IdleTimeout != 60*time.Second ||
				cfg.ScriptTimeout != 250*time.Millisecond || cfg.MessageRate != 100 || cfg.MessageBurst != 1000 {
				t.Errorf("defaults = %+v", cfg)
			}
		}},
		{name: "env applies", args: []string{"-scripts", dir}, env: map[string]string{"LUACHAN_ADDR": ":9", "LUACHAN_MAX_CHANNELS": "7", "LUACHAN_IDLE_TIMEOUT": "5s"},
			check: func(t *testing.T, cfg Config) {
				if cfg.Addr != ":9" || cfg.MaxChannels != 7 || cfg.IdleTimeout != 5*time.Second {
					t.Errorf("env not applied: %+v", cfg)
				}
			}},
		{name: "flags win over env", args: []string{"-scripts", dir, "-addr", ":8", "-max-channels", "3"}, env: map[string]string{"LUACHAN_ADDR": ":9", "LUACHAN_MAX_CHANNELS": "7"},
			check: func(t *testing.T, cfg Config) {
				if cfg.Addr != ":8" || cfg.MaxChannels != 3 {
					t.Errorf("flags did not win: %+v", cfg)
				}
			}},
		{name: "rate 0 is no limit", args: []string{"-scripts", dir, "-max-rate", "0"}, check: func(t *testing.T, cfg Config) {
			if cfg.MessageRate >= 0 {
				t.Errorf("MessageRate = %v, want negative (the hub's 'no limit')", cfg.MessageRate)
			}
		}},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: "flag provided but not defined"},
		{name: "missing scripts folder", args: []string{"-scripts", dir + "/missing"}, wantErr: "scripts folder"},
		{name: "bad log level", args: []string{"-scripts", dir, "-log-level", "loud"}, wantErr: "-log-level"},
		{name: "bad log format", args: []string{"-scripts", dir, "-log-format", "xml"}, wantErr: "-log-format"},
		{name: "bad env number", args: []string{"-scripts", dir}, env: map[string]string{"LUACHAN_MAX_CHANNELS": "many"}, wantErr: "LUACHAN_MAX_CHANNELS"},
		{name: "bad env duration", args: []string{"-scripts", dir}, env: map[string]string{"LUACHAN_IDLE_TIMEOUT": "soon"}, wantErr: "LUACHAN_IDLE_TIMEOUT"},
		{name: "bad pubsub", args: []string{"-scripts", dir, "-pubsub", "carrier-pigeon"}, wantErr: "-pubsub"},
		{name: "nats pubsub", args: []string{"-scripts", dir, "-pubsub", "nats://127.0.0.1:4222"}, check: func(t *testing.T, cfg Config) {
			if cfg.PubSub != "nats://127.0.0.1:4222" {
				t.Errorf("PubSub = %q", cfg.PubSub)
			}
		}},
		{name: "nats pubsub with a path", args: []string{"-scripts", dir, "-pubsub", "nats://:hunter2@127.0.0.1:4222/0"}, wantErr: "bad NATS URL"},
		{name: "non-positive limit", args: []string{"-scripts", dir, "-max-frame-size", "0"}, wantErr: "positive"},
		{name: "stray argument", args: []string{"-scripts", dir, "extra"}, wantErr: "unexpected argument"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cfg, err := parseConfig(tc.args, env(tc.env), &stderr)
			if tc.wantErr != "" {
				if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a usage error containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("usage error spans lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, cfg)
		})
	}
}

// TestHelpListsEveryFlag: luachan -h names every flag with its environment
// variable and default, so nothing is configurable without being documented.
func TestHelpListsEveryFlag(t *testing.T) {
	var stderr bytes.Buffer
	_, err := parseConfig([]string{"-h"}, func(string) string { return "" }, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	help := stderr.String()
	for _, want := range []string{
		"-addr", "LUACHAN_ADDR", `(default ":4000")`,
		"-scripts", "LUACHAN_SCRIPTS", `(default "scripts/examples")`,
		"-pubsub", "LUACHAN_PUBSUB", `(default "memory")`,
		"-api-key", "LUACHAN_API_KEY", "-secret", "LUACHAN_SECRET", "-origins", "LUACHAN_ORIGINS",
		"-log-level", "LUACHAN_LOG_LEVEL", `(default "info")`,
		"-log-format", "LUACHAN_LOG_FORMAT", `(default "text")`,
		"-max-frame-size", "(default 1048576)", "-max-channels", "(default 100)",
		"-max-queue", "(default 4194304)", "-max-rate", "-max-burst", "(default 1000)",
		"-idle-timeout", "(default 1m0s)", "-script-timeout", "(default 250ms)",
		"-presence-ttl", "(default 20s)",
		"-max-longpoll-sessions", "LUACHAN_MAX_LONGPOLL_SESSIONS", "(default 10000)",
		"-max-longpoll-per-ip", "LUACHAN_MAX_LONGPOLL_PER_IP", "(default 256)",
		"-gc-min-heap", "LUACHAN_GC_MIN_HEAP", "(default 67108864)",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("-h output lacks %q", want)
		}
	}
}
