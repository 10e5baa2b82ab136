package main

import (
	"context"
	"log/slog"

	"github.com/luachan/luachan/console"
	"github.com/luachan/luachan/engine"
	"github.com/luachan/luachan/hub"
)

// newConsole builds and starts the dev console (-console). Off loopback, parseConfig
// has made sure there is an API key; on loopback the console asks for none.
func newConsole(ctx context.Context, cfg Config, h *hub.Hub, eng *engine.Engine, log *slog.Logger) *console.Console {
	key := cfg.APIKey
	if loopbackOnly(cfg.Addr) {
		key = ""
	}
	c := console.New(console.Config{
		Hub: h, Engine: eng, Presence: eng.Presence().List, Key: key, Logger: log,
	})
	c.Start(ctx) // node.stop closes it before the HTTP server waits for its requests
	log.Info("dev console on", "path", "/console/", "needs_key", key != "")
	return c
}
