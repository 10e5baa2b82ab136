package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/luachan/luachan/hub"
)

// Config is everything the command line and the environment can set.
type Config struct {
	Addr          string
	Scripts       string
	PubSub        string
	APIKey        string
	Secret        string
	Origins       []string
	LogLevel      slog.Level
	LogJSON       bool // -log-format json: every log line is a JSON object
	MaxFrameSize  int64
	MaxChannels   int
	MaxQueueBytes int
	// GCMinHeap is the heap goal's floor (see tuneGC); 0 leaves GOGC alone.
	GCMinHeap     int64
	IdleTimeout   time.Duration
	ScriptTimeout time.Duration
	MessageRate   float64
	MessageBurst  int
	PresenceTTL   time.Duration
	// MaxLongPolls and MaxLongPollsPerIP bound the LongPoll sessions open at once, in all
	// and from one remote IP address.
	MaxLongPolls      int
	MaxLongPollsPerIP int
	// Console serves the dev console at /console; its API needs APIKey unless Addr is
	// loopback only.
	Console bool
	// TLSCert and TLSKey are the PEM files of the certificate and key to serve
	// HTTPS/WSS with; both empty: plain HTTP.
	TLSCert, TLSKey string
}

// errUsage marks a configuration error: the program exits with status 2.
var errUsage = errors.New("usage")

// usageError is a bad flag, env variable or setting, said in one line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }
func (e *usageError) Is(target error) bool {
	return target == errUsage
}

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// parseConfig reads flags from args, falling back to LUACHAN_* variables
// from getenv, then to the defaults. Flags win over the environment.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("luachan", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // a bad flag is the one line of the returned error; -h prints usage below
	fs.Usage = func() {}
	usage := func() {
		fs.SetOutput(stderr)
		fmt.Fprintf(stderr, "luachan: a realtime channel server speaking the Phoenix Channels protocol,\n"+
			"with channels written in Lua scripts that reload when saved.\n\n"+
			"Usage: luachan [flags]\n       luachan test [flags] [DIR]   run the *_test.lua script tests in DIR\n       luachan types                print LuaLS annotations of the script API\n\nEvery flag can also be set by the environment variable named in brackets;\n"+
			"a flag on the command line wins.\n\n")
		fs.PrintDefaults()
	}

	var cfg Config
	var origins, logLevel string
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	str := func(p *string, name, envName, def, help string) {
		fs.StringVar(p, name, env(envName, def), help+" ["+envName+"]")
	}
	str(&cfg.Addr, "addr", "LUACHAN_ADDR", ":4000", "listen address")
	str(&cfg.Scripts, "scripts", "LUACHAN_SCRIPTS", "scripts/examples", "folder of channel scripts, watched for changes")
	str(&cfg.PubSub, "pubsub", "LUACHAN_PUBSUB", "memory", "what the nodes share (broadcasts, luachan.store, presence; with Redis also history and topic state):\nmemory (this process only), or\n"+
		"redis://[user:password@]host:port/db (rediss:// for TLS) to share them between nodes;\n"+
		"redis+cluster://[user:password@]host:port,host:port,... for a Redis Cluster;\n"+
		"redis+sentinel://[user:password@]mastername@host:port,host:port,.../db[?sentinel_password=p] through Sentinels;\n"+
		"nats://host:port[,host:port...] (tls:// for TLS, JetStream on) for NATS")
	str(&cfg.APIKey, "api-key", "LUACHAN_API_KEY", "", "bearer key for the HTTP API under /api (empty: API off)")
	str(&cfg.Secret, "secret", "LUACHAN_SECRET", "", "key for luachan.token (HS256 JWTs)")
	str(&origins, "origins", "LUACHAN_ORIGINS", "", "comma-separated allowed Origin values; others get 403 (empty: any)")
	str(&logLevel, "log-level", "LUACHAN_LOG_LEVEL", "info", "log level: debug, info, warn or error (debug adds the traffic log: every join, event, leave and crash)")
	str(&cfg.TLSCert, "tls-cert", "LUACHAN_TLS_CERT", "", "PEM certificate (chain) file: serve HTTPS/WSS; a new file on disk is used by new connections")
	str(&cfg.TLSKey, "tls-key", "LUACHAN_TLS_KEY", "", "PEM private key file of -tls-cert")
	var logFormat string
	str(&logFormat, "log-format", "LUACHAN_LOG_FORMAT", "text", "log line format: text (key=value) or json")

	var numErr error
	consoleDef := false
	if v := getenv("LUACHAN_CONSOLE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			numErr = usagef("luachan: LUACHAN_CONSOLE=%q: want true or false", v)
		}
		consoleDef = b
	}
	fs.BoolVar(&cfg.Console, "console", consoleDef, "serve the dev console at /console/ (off a loopback address it needs -api-key) [LUACHAN_CONSOLE]")
	intFlag := func(p *int64, name, envName string, def int64, help string) {
		v := def
		if s := getenv(envName); s != "" {
			if _, err := fmt.Sscan(s, &v); err != nil {
				numErr = usagef("luachan: %s=%q is not a number", envName, s)
			}
		}
		fs.Int64Var(p, name, v, help+" ["+envName+"]")
	}
	durFlag := func(p *time.Duration, name, envName string, def time.Duration, help string) {
		v := def
		if s := getenv(envName); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				numErr = usagef("luachan: %s=%q is not a duration (e.g. 250ms, 60s)", envName, s)
			}
			v = d
		}
		fs.DurationVar(p, name, v, help+" ["+envName+"]")
	}
	var maxChannels, maxQueue int64
	intFlag(&cfg.MaxFrameSize, "max-frame-size", "LUACHAN_MAX_FRAME_SIZE", 1<<20, "largest inbound frame in bytes; larger ones close the socket (1009)")
	intFlag(&maxChannels, "max-channels", "LUACHAN_MAX_CHANNELS", 100, "topics one socket may join at once")
	intFlag(&maxQueue, "max-queue", "LUACHAN_MAX_QUEUE", 4<<20, "bytes queued for one slow client before it is closed")
	intFlag(&cfg.GCMinHeap, "gc-min-heap", "LUACHAN_GC_MIN_HEAP", DefaultGCMinHeap, "bytes the heap may grow to between garbage collections however little of it is live (past it GOGC decides; a quarter of GOMEMLIMIT at most); memory for CPU under load; 0: GOGC alone")
	var maxLongPolls, maxLongPollsPerIP int64
	intFlag(&maxLongPolls, "max-longpoll-sessions", "LUACHAN_MAX_LONGPOLL_SESSIONS", hub.DefaultMaxLongPollSessions, "LongPoll sessions open at once; a GET opening one more is answered 503")
	intFlag(&maxLongPollsPerIP, "max-longpoll-per-ip", "LUACHAN_MAX_LONGPOLL_PER_IP", hub.DefaultMaxLongPollPerAddr, "LongPoll sessions open from one IP address; a GET opening one more is answered 429")
	var rate, burst int64
	intFlag(&rate, "max-rate", "LUACHAN_MAX_RATE", 100, "messages per second one socket may send on average; over it the socket is closed (1008); 0 turns the limit off")
	intFlag(&burst, "max-burst", "LUACHAN_MAX_BURST", 1000, "messages one socket may send at once before -max-rate applies")
	durFlag(&cfg.IdleTimeout, "idle-timeout", "LUACHAN_IDLE_TIMEOUT", 60*time.Second, "close a socket that sends nothing (not even a heartbeat) for this long")
	durFlag(&cfg.PresenceTTL, "presence-ttl", "LUACHAN_PRESENCE_TTL", 20*time.Second, "with -pubsub redis:// or nats://: a node silent this long is taken for dead and its presences leave (within the TTL and a quarter)")
	durFlag(&cfg.ScriptTimeout, "script-timeout", "LUACHAN_SCRIPT_TIMEOUT", 250*time.Millisecond, "CPU budget of one script callback")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return cfg, err
		}
		return cfg, usagef("luachan: %v (luachan -h lists the flags)", err)
	}
	if numErr != nil {
		return cfg, numErr
	}
	if fs.NArg() > 0 {
		return cfg, usagef("luachan: unexpected argument %q (luachan -h lists the flags)", fs.Arg(0))
	}
	cfg.MaxChannels = int(maxChannels)
	cfg.MessageRate, cfg.MessageBurst = float64(rate), int(burst)
	if rate == 0 {
		cfg.MessageRate = -1 // hub: a negative rate is no limit
	}
	cfg.MaxQueueBytes = int(maxQueue)
	if maxLongPolls < 1 || maxLongPollsPerIP < 1 {
		return cfg, usagef("luachan: -max-longpoll-sessions and -max-longpoll-per-ip must be at least 1")
	}
	cfg.MaxLongPolls, cfg.MaxLongPollsPerIP = int(maxLongPolls), int(maxLongPollsPerIP)

	if err := cfg.LogLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return cfg, usagef("luachan: -log-level %q: want debug, info, warn or error", logLevel)
	}
	switch logFormat {
	case "text":
	case "json":
		cfg.LogJSON = true
	default:
		return cfg, usagef("luachan: -log-format %q: want text or json", logFormat)
	}
	for _, o := range strings.Split(origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.Origins = append(cfg.Origins, o)
		}
	}
	if cfg.PubSub != "memory" {
		if err := checkBroker(cfg.PubSub); err != nil {
			return cfg, err
		}
	}
	if cfg.MaxFrameSize <= 0 || cfg.MaxChannels <= 0 || cfg.MaxQueueBytes <= 0 || cfg.IdleTimeout <= 0 ||
		cfg.ScriptTimeout <= 0 || cfg.PresenceTTL <= 0 || rate < 0 || burst <= 0 || cfg.GCMinHeap < 0 {
		return cfg, usagef("luachan: limits must be positive (luachan -h lists them)")
	}
	if cfg.Console && cfg.APIKey == "" && !loopbackOnly(cfg.Addr) {
		return cfg, usagef("luachan: -console on %q, which is not loopback only, needs -api-key (or listen on 127.0.0.1)", cfg.Addr)
	}
	info, err := os.Stat(cfg.Scripts)
	switch {
	case err != nil:
		return cfg, usagef("luachan: scripts folder %q: %v (create it, or pass -scripts DIR)", cfg.Scripts, errors.Unwrap(err))
	case !info.IsDir():
		return cfg, usagef("luachan: scripts folder %q is not a folder (pass -scripts DIR)", cfg.Scripts)
	}
	if _, err := os.ReadDir(cfg.Scripts); err != nil {
		return cfg, usagef("luachan: scripts folder %q cannot be read: %v", cfg.Scripts, err)
	}
	return cfg, nil
}

// redactURL returns " " and s quoted with its password hidden, for messages; "" if s
// does not parse (and so might show a password).
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	if q := u.Query(); len(q) > 0 { // sentinel_password, and any misspelling of it
		for k := range q {
			if strings.Contains(strings.ToLower(k), "pass") {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	return fmt.Sprintf(" %q", u.Redacted())
}

// loopbackOnly reports whether addr (host:port) listens on a loopback interface only:
// localhost or a loopback IP. An empty host (":4000") is every interface.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
