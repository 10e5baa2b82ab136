// Command luachan serves Phoenix Channels whose behaviour is written in Lua.
//
// main only wires the parts: the hub (sockets, wire protocol, topics), the
// engine (channels and scripts) and the HTTP routes, then runs until SIGINT
// or SIGTERM and drains.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/luachan/luachan/console"
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
	// rest is for letting go of Redis (presence heartbeat, queued publishes), which also
	// gets this rest after a failed start.
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
	tuneGC(cfg.GCMinHeap)

	n := &node{log: log}
	if err := n.start(ctx, cfg); err != nil {
		// What started is let go of; Redis gets what a shutdown leaves it.
		n.stop(shutdownTimeout-shutdownGrace, shutdownTimeout-shutdownGrace)
		if ctx.Err() != nil {
			return nil // a signal during the start: stopped, as asked
		}
		return err
	}
	log.Info("listening", "addr", n.ln.Addr().String(), "scripts", cfg.Scripts, "tls", cfg.TLSCert != "")
	select {
	case err = <-n.served:
	case <-ctx.Done():
		log.Info("shutting down: closing sockets with 1012, running leave")
	}
	n.stop(shutdownGrace, shutdownTimeout)
	log.Info("stopped")
	return err
}

// node is one running luachan: its parts, each nil until started.
type node struct {
	log      *slog.Logger
	pubsub   broker             // nil with -pubsub memory
	presence replica            // likewise
	history  *redis.History     // nil but with Redis: topic histories in Redis
	states   *redis.TopicStates // nil but with Redis: topic states shared between the nodes
	hub      *hub.Hub
	eng      *engine.Engine
	stopHup  func()           // stops and waits for reloadOnHangup
	console  *console.Console // nil without -console
	ln       net.Listener
	srv      *http.Server
	served   chan error // srv.Serve's result
}

// start builds and starts the parts, each one once those it needs are running.
func (n *node) start(ctx context.Context, cfg Config) error {
	tlsCfg, err := tlsConfig(cfg, n.log) // nil without -tls-cert: plain HTTP
	if err != nil {
		return err
	}
	// -pubsub: broadcasts between nodes and luachan.store, in this process, Redis or NATS.
	if n.pubsub, err = dialBroker(ctx, cfg.PubSub, n.log); err != nil {
		return err
	}
	var pubsub hub.PubSub                    // nil: this process only
	var kv luabind.Store = store.NewMemory() // luachan.store
	if n.pubsub != nil {
		pubsub, kv = n.pubsub, n.pubsub.Store()
	}

	// The hub and the engine need each other: the hub hands frames to the
	// engine, the engine subscribes and broadcasts through the hub.
	var handler handlerRef
	n.hub = hub.New(hub.Config{
		Handler:         &handler,
		Logger:          n.log,
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
	remote := &remoteDeliverer{hub: n.hub}
	if n.pubsub != nil {
		n.pubsub.Start(ctx, remote) // broadcasts from other nodes go to the hub's subscribers
		// Presence spans the nodes; a dead node's entries go within the TTL and a
		// quarter.
		n.presence = n.pubsub.Presence(cfg.PresenceTTL, n.hub.Broadcast)
		n.presence.Start(ctx)
		replica = n.presence
	}
	if n.eng, err = engine.New(engine.Config{
		Dir:           cfg.Scripts,
		Watch:         true,
		Hub:           n.hub,
		Logger:        n.log,
		MaxChannels:   cfg.MaxChannels,
		ScriptTimeout: cfg.ScriptTimeout,
		Store:         kv,
		Presence:      replica,
		History:       n.startHistory(ctx),
		Peers:         pubsub != nil, // NATS: histories in memory, the others' broadcasts heard while subscribed
		TopicOwners:   n.startTopicStates(ctx),
		Secret:        []byte(cfg.Secret),
	}); err != nil {
		return usagef("luachan: %v", err)
	}
	handler.Handler = n.eng
	remote.eng.Store(n.eng)
	if err := n.eng.Start(ctx); err != nil {
		if errors.Is(err, engine.ErrWatch) {
			return err
		}
		return usagef("luachan: %v", err)
	}
	if n.eng.Stats().Scripts == 0 {
		n.log.Warn("no channel script loaded: every join will be answered \"unmatched topic\"; add a *.lua file that returns a channel table (see scripts/examples), it is picked up without a restart", "scripts", cfg.Scripts)
	}
	n.stopHup = reloadOnHangup(n.eng, n.log)

	mux := http.NewServeMux()
	mux.Handle("/socket/websocket", n.hub)
	mux.Handle("/socket/longpoll", n.hub.LongPollHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	})
	mux.Handle("GET /metrics", metricsHandler(n.hub, n.eng, n.pubsub))
	mux.Handle("/api/", httpapi.New(httpapi.Config{
		Key: cfg.APIKey, Hub: apiHub{n.hub, n.eng}, PubSub: pubsub, History: apiHistory{n.eng},
		MaxBody: cfg.MaxFrameSize, Logger: n.log,
	}))
	if cfg.APIKey != "" {
		mux.Handle("GET /api/scripts", httpapi.RequireKey(cfg.APIKey, n.eng.ScriptsHandler()))
	}

	if cfg.Console {
		n.console = newConsole(ctx, cfg, n.hub, n.eng, n.log)
		mux.Handle("/console", n.console)
		mux.Handle("/console/", n.console)
	}

	if n.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return usagef("luachan: cannot listen on %s: %v (pass -addr HOST:PORT)", cfg.Addr, err)
	}
	if tlsCfg != nil {
		n.ln = tls.NewListener(n.ln, tlsCfg)
	}
	n.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: httpErrorLog(n.log)}
	n.served = make(chan error, 1)
	go func() { n.served <- n.srv.Serve(n.ln) }() // returns once stop closes ln
	return nil
}

// stop shuts the node down, in this order, skipping the parts that never started:
//
//  1. stop reloading on SIGHUP, end the console's streams (they never go idle, and
//     the HTTP server would wait for them), and refuse new connections;
//  2. close every socket with 1012 (the hub), which ends each of its channels;
//  3. wait for the channels' leave, then stop the watcher and workers (the engine);
//  4. finish the HTTP requests in flight (API calls);
//  5. let go of Redis: the history appends queued, the topic-state leases, the presence
//     heartbeat, then the publisher's queue and the client.
//
// Steps 2 to 4 end by drain; the whole ends by total even if Redis does not answer, so
// that the process exits on time (SPEC section 1).
func (n *node) stop(drain, total time.Duration) {
	stopCtx, cancel := context.WithTimeout(context.Background(), total)
	defer cancel()
	drainCtx, cancelDrain := context.WithTimeout(stopCtx, drain)
	defer cancelDrain()

	if n.stopHup != nil {
		n.stopHup()
	}
	if n.console != nil {
		n.console.Close()
	}
	if n.srv != nil {
		n.srv.SetKeepAlivesEnabled(false)
		n.ln.Close() // refuse new connections at once
	}
	if n.hub != nil {
		if err := n.hub.Close(drainCtx); err != nil {
			n.log.Warn("sockets did not all close in time", "err", err)
		}
	}
	if n.eng != nil {
		if err := n.eng.Close(drainCtx); err != nil {
			n.log.Warn("channels did not all end in time", "err", err)
		}
	}
	if n.srv != nil {
		if err := n.srv.Shutdown(drainCtx); err != nil {
			n.log.Warn("HTTP server did not stop in time", "err", err)
		}
	}
	n.stopHistory(stopCtx)
	n.stopTopicStates(stopCtx)
	if n.presence != nil {
		if err := n.presence.Close(stopCtx); err != nil {
			n.log.Warn("presence heartbeat not removed: other nodes drop this node's presences within the TTL", "err", err)
		}
	}
	if n.pubsub != nil {
		if err := n.pubsub.Close(stopCtx); err != nil {
			n.log.Warn("the broker did not let go in time: exiting without waiting for it", "err", err)
		}
	}
}

// reloadOnHangup rescans the scripts folder on SIGHUP, the operator's way to
// force a reload where file events do not arrive, until stop is called; stop
// waits for its goroutine.
func reloadOnHangup(eng *engine.Engine, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer signal.Stop(hup)
		for {
			select {
			case <-quit:
				return
			case <-hup:
				log.Info("SIGHUP: rescanning scripts folder")
				eng.RequestRescan()
			}
		}
	}()
	return func() { close(quit); <-done }
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
