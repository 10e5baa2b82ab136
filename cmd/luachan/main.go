// Command luachan serves Phoenix Channels whose behaviour is written in Lua.
//
// main only wires the parts: the hub (sockets, wire protocol, topics), the
// engine (channels and scripts) and the HTTP routes, then runs until SIGINT
// or SIGTERM and drains.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/luachan/luachan/engine"
	"github.com/luachan/luachan/httpapi"
	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/hub/redis"
	"github.com/luachan/luachan/luabind"
	"github.com/luachan/luachan/presence"
	"github.com/luachan/luachan/store"
)

const (
	// shutdownTimeout bounds the whole shutdown after SIGINT/SIGTERM, every step
	// included, leaving room under SPEC section 1's 10 s for the process to exit.
	shutdownTimeout = 9500 * time.Millisecond
	// shutdownGrace is the part of it the sockets, leaves and HTTP server may take; the
	// rest is for letting go of Redis (presence heartbeat, queued publishes).
	shutdownGrace = 8 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && subcommands[os.Args[1]] != nil {
		err = subcommands[os.Args[1]](os.Args[2:], os.Stdout, os.Stderr)
	} else {
		err = run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "luachan:", err)
		os.Exit(1)
	}
}

// run starts the server and blocks until ctx ends, then drains.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	var logTo slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel})
	if cfg.LogJSON {
		logTo = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel})
	}
	log := slog.New(logTo)

	// -pubsub: broadcasts between nodes and luachan.store, in this process or in Redis.
	redisPS, err := dialPubSub(ctx, cfg.PubSub, log)
	if err != nil {
		return err
	}
	var pubsub hub.PubSub                    // nil: this process only
	var kv luabind.Store = store.NewMemory() // luachan.store
	// closers are let go of when run returns, newest first, by stopBy at the latest: a
	// Redis that stopped answering must not hold the process past its deadline.
	var closers []func()
	var stopBy time.Time // set when the shutdown starts
	defer func() {
		if stopBy.IsZero() { // run ends on an error: Redis gets what a shutdown leaves it
			stopBy = time.Now().Add(shutdownTimeout - shutdownGrace)
		}
		release(stopBy, closers, log)
	}()
	if redisPS != nil {
		closers = append(closers, func() { _ = redisPS.Close() })
		pubsub, kv = redisPS, redisPS.Store()
	}

	// The hub and the engine need each other: the hub hands frames to the
	// engine, the engine subscribes and broadcasts through the hub.
	var handler handlerRef
	h := hub.New(hub.Config{
		Handler:         &handler,
		Logger:          log,
		MaxFrameSize:    cfg.MaxFrameSize,
		IdleTimeout:     cfg.IdleTimeout,
		MaxQueueBytes:   cfg.MaxQueueBytes,
		MaxMessageRate:  cfg.MessageRate,
		MaxMessageBurst: cfg.MessageBurst,
		Origins:         cfg.Origins,
		PubSub:          pubsub,

		MaxLongPollSessions: cfg.MaxLongPolls,
		MaxLongPollPerAddr:  cfg.MaxLongPollsPerIP,
	})
	var replica presence.Replica // nil: presence is this node's only
	if redisPS != nil {
		redisPS.Start(h) // broadcasts from other nodes go to h's subscribers
		// Presence spans the nodes; a dead node's entries go within the TTL and a
		// quarter.
		rp := redisPS.Presence(cfg.PresenceTTL, h.Broadcast)
		rp.Start()
		closers = append(closers, rp.Close) // before redisPS.Close: removes the heartbeat
		replica = rp
	}
	eng, err := engine.New(engine.Config{
		Dir:           cfg.Scripts,
		Watch:         true,
		Hub:           h,
		Logger:        log,
		MaxChannels:   cfg.MaxChannels,
		ScriptTimeout: cfg.ScriptTimeout,
		Store:         kv,
		Presence:      replica,
		Secret:        []byte(cfg.Secret),
	})
	if err != nil {
		return usagef("luachan: %v", err)
	}
	handler.Handler = eng
	if err := eng.Start(ctx); err != nil {
		if errors.Is(err, engine.ErrWatch) {
			return err
		}
		return usagef("luachan: %v", err)
	}
	go reloadOnHangup(ctx, eng, log)

	mux := http.NewServeMux()
	mux.Handle("/socket/websocket", h)
	mux.Handle("/socket/longpoll", h.LongPollHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	})
	mux.Handle("GET /metrics", metricsHandler(h, eng))
	mux.Handle("/api/", httpapi.New(httpapi.Config{
		Key: cfg.APIKey, Hub: h, PubSub: pubsub, MaxBody: cfg.MaxFrameSize, Logger: log,
	}))
	if cfg.APIKey != "" {
		mux.Handle("GET /api/scripts", httpapi.RequireKey(cfg.APIKey, eng.ScriptsHandler()))
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return usagef("luachan: cannot listen on %s: %v (pass -addr HOST:PORT)", cfg.Addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "scripts", cfg.Scripts)

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}

	log.Info("shutting down: closing sockets with 1012, running leave")
	stopBy = time.Now().Add(shutdownTimeout)
	drain, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	srv.SetKeepAlivesEnabled(false)
	ln.Close() // refuse new connections at once
	if err := h.Close(drain); err != nil {
		log.Warn("sockets did not all close in time", "err", err)
	}
	if err := eng.Close(drain); err != nil {
		log.Warn("channels did not all end in time", "err", err)
	}
	if err := srv.Shutdown(drain); err != nil {
		log.Warn("HTTP server did not stop in time", "err", err)
	}
	log.Info("stopped")
	return nil
}

// release runs closers, newest first, and waits for them until deadline; past it, it
// logs what is left and returns, so that the process exits on time. What is left is cut
// off by the exit: a presence heartbeat lapses by itself within its TTL.
func release(deadline time.Time, closers []func(), log *slog.Logger) {
	if len(closers) == 0 {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, c := range slices.Backward(closers) {
			c()
		}
	}()
	wait := time.NewTimer(time.Until(deadline))
	defer wait.Stop()
	select {
	case <-done:
	case <-wait.C:
		log.Warn("Redis did not let go in time: exiting without waiting for it; other nodes drop this node's presences within the TTL",
			"timeout", shutdownTimeout)
	}
}

// reloadOnHangup rescans the scripts folder on SIGHUP, the operator's way to
// force a reload where file events do not arrive.
func reloadOnHangup(ctx context.Context, eng *engine.Engine, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			log.Info("SIGHUP: rescanning scripts folder")
			eng.RequestRescan()
		}
	}
}

// dialPubSub connects to the Redis of a redis:// -pubsub URL; nil for memory. An
// unreachable Redis is a usage error: the node would silently serve alone.
func dialPubSub(ctx context.Context, url string, log *slog.Logger) (*redis.PubSub, error) {
	if url == "memory" {
		return nil, nil
	}
	ps, err := redis.Dial(ctx, redis.Config{URL: url, Logger: log})
	if err != nil {
		return nil, usagef("luachan: -pubsub%s: %s", redactURL(url), strings.TrimPrefix(err.Error(), "redis: "))
	}
	return ps, nil
}

// handlerRef lets the hub be built before the engine it hands sockets to.
type handlerRef struct{ hub.Handler }
