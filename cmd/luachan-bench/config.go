package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// Bounds on what one run may ask for: a run is bounded in count and time.
const (
	maxConns    = 200000
	maxMsgs     = 1000000
	maxSize     = 1 << 20
	minSize     = 48 // the smallest bench payload: sequence, time and an empty pad
	maxDuration = 10 * time.Minute
	maxRate     = 1e6
	maxProcs    = 64
	maxSteps    = 20
	maxNodes    = 16
)

// config is one run's command line.
type config struct {
	mode       string
	targets    []string
	server     string   // luachan binary to start
	addr       string   // a running luachan instead
	pid        int      // its process id, for CPU and memory; -1 unknown
	serverArgs []string // extra flags for a started luachan
	apiKey     string   // bearer key of luachan's HTTP API
	scriptsDir string   // the bench scripts, written at run time
	history    int      // bench.lua's history size (0: none)
	cpuProfile string   // write the tool's own CPU profile here
	nodes      int      // luachan processes per luachan target, joined by Redis
	redis      string   // -redis: the Redis URL the nodes share; empty: start one
	pubsub     string   // the -pubsub URL started nodes get, set at run time; empty: none
	redisPID   int      // the Redis the tool started, for its CPU; -1 when none
	withRedis  bool     // recover: start Redis (-pubsub redis) even for one node

	procs        int
	localIPs     int
	dialers      int
	setupTimeout time.Duration
	drain        time.Duration
	heartbeat    time.Duration
	duration     time.Duration

	subs, msgs, size int // fanout
	rate             float64
	lead             int
	stall            time.Duration
	intercept        bool
	publish          string
	idle             time.Duration // hold every connection quiet this long before publishing

	clients int  // rpc
	call    bool // rpc: through socket:call and handle_call
	topics  int  // rpc, idle: topics the clients are spread over
	tick    bool // idle: the topics keep a state that ticks at 10 Hz
	p99     time.Duration
	search  bool
	steps   int

	conns int // idle
	hold  time.Duration

	joins       int // joins
	concurrency int
}

// parseConfig reads mode's flags.
func parseConfig(mode string, args []string, stderr io.Writer) (*config, error) {
	if _, ok := modes[mode]; !ok {
		return nil, usageErr(fmt.Sprintf("unknown mode %q (want fanout, rpc, idle, joins or recover; luachan-bench -h)", mode))
	}
	cfg := &config{mode: mode, nodes: 1, redisPID: -1}
	fs := flag.NewFlagSet("luachan-bench "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)

	defTargets := "ceiling,luachan"
	if mode == "recover" {
		defTargets = "luachan" // the ceiling keeps no history
	}
	targets := fs.String("targets", defTargets, "servers to measure, in order: ceiling, luachan, intercept (fanout)")
	fs.StringVar(&cfg.server, "server", "", "luachan binary to start for each luachan target (default: luachan beside this tool, or on PATH)")
	fs.StringVar(&cfg.addr, "addr", "", "host:port of a running luachan (scripts: cmd/luachan-bench/scripts) instead of -server")
	fs.IntVar(&cfg.pid, "pid", -1, "process id of the luachan at -addr, for its CPU and memory")
	fs.StringVar(&cfg.apiKey, "api-key", apiKey, "bearer key of the HTTP API (-publish api); a started luachan gets this one")
	serverArgs := fs.String("server-args", "", "extra flags for a started luachan, space-separated")
	fs.IntVar(&cfg.procs, "procs", 0, "client processes (0: one per 18,000 connections; 1: in this process)")
	fs.IntVar(&cfg.localIPs, "local-ips", 32, "source addresses 127.0.0.1..127.0.0.N to spread connections over")
	fs.IntVar(&cfg.dialers, "dialers", 64, "connects in flight while setting up")
	fs.DurationVar(&cfg.setupTimeout, "setup-timeout", 2*time.Minute, "longest time to connect and join the clients (fanout -nodes: and then to warm up)")
	fs.DurationVar(&cfg.drain, "drain", 10*time.Second, "longest wait for outstanding messages after sending stops")
	fs.DurationVar(&cfg.heartbeat, "heartbeat", 30*time.Second, "client heartbeat interval (Phoenix's default)")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write the tool's own CPU profile (clients in this process) to this file")

	switch mode {
	case "fanout":
		fs.IntVar(&cfg.subs, "subs", 1000, "subscribers on the topic")
		fs.IntVar(&cfg.history, "history", 0, "bench.lua keeps this many broadcasts per topic (the history field; 0: none)")
		fs.IntVar(&cfg.msgs, "msgs", 500, "broadcasts to publish")
		fs.IntVar(&cfg.size, "size", 256, "payload bytes of each broadcast")
		fs.Float64Var(&cfg.rate, "rate", 0, "broadcasts/s (0: as fast as the subscribers keep up, see -lead)")
		fs.IntVar(&cfg.lead, "lead", 16, "most broadcasts published but not yet received by every subscriber (0: no limit)")
		fs.DurationVar(&cfg.duration, "duration", 60*time.Second, "longest publishing time")
		fs.DurationVar(&cfg.stall, "stall", 5*time.Second, "give up when no broadcast completes for this long")
		fs.BoolVar(&cfg.intercept, "intercept", false, "also measure the intercept target (handle_out per subscriber)")
		fs.StringVar(&cfg.publish, "publish", "ws", `how to publish: "ws" (a client pushing an event whose handle_in broadcasts) or "api" (POST /api/broadcast)`)
		fs.IntVar(&cfg.nodes, "nodes", 1, "luachan processes per luachan target, joined by Redis; subscribers are spread over them, the publisher uses the first")
		fs.StringVar(&cfg.redis, "redis", "", "redis://127.0.0.1:PORT the nodes share (empty: with -nodes above 1, start redis-server on a free port)")
		fs.DurationVar(&cfg.idle, "idle", 0, "before publishing, hold every connection quiet (heartbeats only) this long and report each node's memory and CPU, and Redis's (0: no hold)")
	case "rpc":
		fs.IntVar(&cfg.clients, "clients", 1000, "clients, each pushing at its share of -rate")
		fs.Float64Var(&cfg.rate, "rate", 20000, "pushes/s from all clients together")
		fs.IntVar(&cfg.size, "size", 64, "payload bytes of each push")
		fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "length of each measured phase")
		fs.DurationVar(&cfg.p99, "p99", 5*time.Millisecond, "latency goal for -search")
		fs.BoolVar(&cfg.search, "search", false, "step the rate (x1.25 up, /1.5 down) to the highest whose p99 meets -p99")
		fs.BoolVar(&cfg.call, "call", false, "each push goes through socket:call to its topic's state (handle_call) and back; luachan only")
		fs.IntVar(&cfg.topics, "topics", 1, "topics the clients are spread over, client i on topic i % topics")
		fs.IntVar(&cfg.steps, "steps", 8, "most phases of -search")
	case "idle":
		fs.IntVar(&cfg.conns, "conns", 1000, "joined connections to hold")
		fs.DurationVar(&cfg.hold, "hold", 10*time.Second, "how long to hold them before reading the server's memory")
		fs.IntVar(&cfg.topics, "topics", 1, "topics the connections are spread over, connection i on topic i % topics")
		fs.BoolVar(&cfg.tick, "tick", false, "join bench_tick.lua's topics, whose state ticks 10 times a second (luachan only)")
	case "recover":
		fs.IntVar(&cfg.clients, "clients", 1000, "clients that join, leave and rejoin at once with since")
		fs.IntVar(&cfg.msgs, "msgs", 100, "broadcasts sent while they are away (POST /api/broadcast on the first node)")
		fs.IntVar(&cfg.history, "history", 1000, "bench.lua keeps this many broadcasts per topic (at least -msgs)")
		fs.IntVar(&cfg.nodes, "nodes", 1, "luachan processes, joined by Redis; the clients are spread over them")
		fs.StringVar(&cfg.redis, "redis", "", "redis://127.0.0.1:PORT the nodes share (empty: with -nodes above 1 or -with-redis, start redis-server)")
		fs.BoolVar(&cfg.withRedis, "with-redis", false, "run one node with -pubsub redis too (history in Redis)")
	case "joins":
		fs.IntVar(&cfg.joins, "joins", 5000, "connect-and-joins (connections stay open until the end)")
		fs.IntVar(&cfg.concurrency, "concurrency", 100, "connect-and-joins in flight")
		fs.DurationVar(&cfg.duration, "duration", 60*time.Second, "longest time for all of them")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, usageErr(err.Error())
	}
	if fs.NArg() > 0 {
		return nil, usageErr(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	for _, t := range strings.Split(*targets, ",") {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(cfg.targets, t) {
			cfg.targets = append(cfg.targets, t)
		}
	}
	if cfg.intercept && !slices.Contains(cfg.targets, "intercept") {
		cfg.targets = append(cfg.targets, "intercept")
	}
	cfg.serverArgs = strings.Fields(*serverArgs)
	if err := cfg.check(); err != nil {
		return nil, usageErr(err.Error())
	}
	if cfg.nodes > 1 && slices.Contains(cfg.targets, "ceiling") {
		// The ceiling is one in-tool server with no Redis: it has no
		// multi-node form. Left at its default, -targets just loses it.
		if flagSet(fs, "targets") {
			return nil, usageErr(fmt.Sprintf("-targets: the ceiling is one in-tool server and cannot run on -nodes %d; leave it out (-targets luachan)", cfg.nodes))
		}
		cfg.targets = slices.DeleteFunc(cfg.targets, func(t string) bool { return t == "ceiling" })
		fmt.Fprintf(stderr, "luachan-bench: -nodes %d: the ceiling is one in-tool server, so it is left out; measuring %s\n", cfg.nodes, strings.Join(cfg.targets, ","))
	}
	if needsLuachan(cfg) && cfg.addr == "" {
		p, err := findServer(cfg.server)
		if err != nil {
			return nil, err
		}
		cfg.server = p
		if cfg.nodes > 1 && cfg.redis == "" {
			if _, err := exec.LookPath("redis-server"); err != nil {
				return nil, usageErr(noRedisServer)
			}
		}
	}
	return cfg, nil
}

// flagSet reports whether the command line set the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// check enforces the bounds.
func (c *config) check() error {
	if len(c.targets) == 0 {
		return errors.New("-targets is empty")
	}
	for _, t := range c.targets {
		if !slices.Contains(targetKinds, t) {
			return fmt.Errorf("-targets: unknown target %q (want ceiling, luachan, intercept)", t)
		}
		if t == "intercept" && c.mode != "fanout" {
			return errors.New("-targets: intercept is a fanout target")
		}
	}
	if c.addr != "" {
		if err := checkLoopback(wsURL(c.addr)); err != nil {
			return err
		}
	}
	if err := c.checkNodes(); err != nil {
		return err
	}
	count := map[string]int{"fanout": c.subs, "rpc": c.clients, "idle": c.conns, "joins": c.joins, "recover": c.clients}[c.mode]
	switch {
	case count < 1 || count > maxConns:
		return fmt.Errorf("connections must be 1..%d", maxConns)
	case c.mode == "recover" && slices.Contains(c.targets, "ceiling"):
		return errors.New("-targets: the ceiling keeps no history; recover measures luachan")
	case c.mode == "recover" && (c.msgs < 1 || c.msgs > c.history):
		return errors.New("-msgs must be 1..-history")
	case c.mode == "fanout" && (c.msgs < 1 || c.msgs > maxMsgs):
		return fmt.Errorf("-msgs must be 1..%d", maxMsgs)
	case (c.mode == "fanout" || c.mode == "rpc") && (c.size < minSize || c.size > maxSize):
		return fmt.Errorf("-size must be %d..%d", minSize, maxSize)
	case c.rate < 0 || c.rate > maxRate || c.mode == "rpc" && c.rate == 0:
		return fmt.Errorf("-rate must be in 0..%g (rpc: above 0)", float64(maxRate))
	case c.mode == "fanout" && c.publish != "ws" && c.publish != "api":
		return errors.New(`-publish must be "ws" or "api"`)
	case c.mode == "fanout" && c.stall <= 0:
		return errors.New("-stall must be positive")
	case c.lead < 0:
		return errors.New("-lead must not be negative")
	case c.procs < 0 || c.procs > maxProcs:
		return fmt.Errorf("-procs must be 0..%d", maxProcs)
	case c.localIPs < 1 || c.localIPs > maxLocalAddrs:
		return fmt.Errorf("-local-ips must be 1..%d", maxLocalAddrs)
	case c.dialers < 1 || c.concurrency < 0:
		return errors.New("-dialers and -concurrency must be positive")
	case c.mode == "rpc" && (c.topics < 1 || c.topics > c.clients), c.mode == "idle" && (c.topics < 1 || c.topics > c.conns):
		return errors.New("-topics must be 1..the connections (-clients, -conns)")
	case c.tick && slices.Contains(c.targets, "ceiling"):
		return errors.New("-targets: the ceiling has no topic state; -tick measures luachan")
	case c.call && slices.Contains(c.targets, "ceiling"):
		return errors.New("-targets: the ceiling has no socket:call; -call measures luachan")
	case c.idle > 0 && c.addr != "" && c.pid < 0:
		return errors.New("-idle reads the server's memory: give -pid of the luachan at -addr")
	case c.steps < 0 || c.steps > maxSteps:
		return fmt.Errorf("-steps must be 0..%d", maxSteps)
	}
	for name, d := range map[string]time.Duration{
		"-duration": c.duration, "-hold": c.hold, "-drain": c.drain, "-setup-timeout": c.setupTimeout, "-stall": c.stall,
		"-idle": c.idle,
	} {
		if d < 0 || d > maxDuration {
			return fmt.Errorf("%s must be 0..%v", name, maxDuration)
		}
	}
	if c.mode == "rpc" && c.steps == 0 {
		c.steps = 1
	}
	return nil
}

// checkNodes checks -nodes and -redis: only started luachans can be nodes,
// and their Redis, like every server the tool talks to, is on this machine.
func (c *config) checkNodes() error {
	if c.nodes < 1 || c.nodes > maxNodes {
		return fmt.Errorf("-nodes must be 1..%d", maxNodes)
	}
	if c.addr != "" && (c.nodes > 1 || c.redis != "") {
		return errors.New("-nodes and -redis start their own luachans; a server at -addr is one node with its own -pubsub: drop -addr (and -pid), or -nodes and -redis")
	}
	if c.redis == "" {
		return nil
	}
	u, err := url.Parse(c.redis)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return errors.New("-redis must be a URL like redis://127.0.0.1:6379 (rediss:// for TLS)")
	}
	return checkLoopback(c.redis)
}

// params are the run's settings as the report shows them.
func (c *config) params() map[string]any {
	p := map[string]any{"targets": strings.Join(c.targets, ","), "procs": c.procs}
	switch c.mode {
	case "fanout":
		p["subs"], p["msgs"], p["size"], p["rate"], p["lead"], p["publish"] = c.subs, c.msgs, c.size, c.rate, c.lead, c.publish
		p["nodes"] = c.nodes
		if c.idle > 0 {
			p["idle"] = c.idle.String()
		}
		if (c.nodes > 1 || c.redis != "") && needsLuachan(c) {
			p["pubsub"] = "redis"
		}
	case "rpc":
		p["clients"], p["rate"], p["size"], p["duration"], p["p99"], p["search"] = c.clients, c.rate, c.size, c.duration.String(), c.p99.String(), c.search
		p["call"], p["topics"] = c.call, c.topics
	case "idle":
		p["conns"], p["hold"], p["heartbeat"] = c.conns, c.hold.String(), c.heartbeat.String()
		p["topics"], p["tick"] = c.topics, c.tick
	case "joins":
		p["joins"], p["concurrency"] = c.joins, c.concurrency
	case "recover":
		p["clients"], p["msgs"], p["nodes"] = c.clients, c.msgs, c.nodes
		p["pubsub"] = "memory"
		if c.nodes > 1 || c.redis != "" || c.withRedis {
			p["pubsub"] = "redis"
		}
	}
	return p
}
