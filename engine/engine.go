package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/luachan/luachan/history"
	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/luabind"
	"github.com/luachan/luachan/presence"
)

// Defaults for Config.
const (
	// DefaultMaxChannels is how many topics one socket may join at once.
	DefaultMaxChannels = 100
	// DefaultScriptTimeout is the CPU budget of one script callback.
	DefaultScriptTimeout = 250 * time.Millisecond
	// DefaultMaxPending is how many events may wait for one channel before its
	// socket is closed as too slow to serve.
	DefaultMaxPending = 1024
)

// Broadcaster is what the engine needs from the hub: topic subscriptions and
// delivery of broadcasts to every subscriber.
type Broadcaster interface {
	// SubscribeAfter subscribes s and runs first in the same critical
	// section, so the join reply first queues precedes every broadcast.
	// It reports whether s is topic's first subscriber on this node.
	SubscribeAfter(topic string, s hub.Subscriber, first func()) (firstHere bool)
	Unsubscribe(topic string, s hub.Subscriber)
	Broadcast(b *hub.Broadcast) error
}

// Config configures an Engine. Zero values take the defaults.
type Config struct {
	Dir           string           // scripts folder
	Watch         bool             // reload when Dir changes (off: only Reload and RequestRescan do)
	Hub           Broadcaster      // required
	Logger        *slog.Logger     // (slog.Default())
	MaxChannels   int              // (DefaultMaxChannels) topics per socket
	ScriptTimeout time.Duration    // (DefaultScriptTimeout) CPU budget per callback
	MaxPending    int              // (DefaultMaxPending) queued events per channel
	Secret        []byte           // HS256 key for luachan.token (none: sign raises, verify refuses)
	Store         luabind.Store    // (nil: luachan.store raises "no store") shared state behind luachan.store
	Presence      presence.Replica // (nil: presence is this node's only) the other nodes' presence entries
	History       HistoryStore     // (nil: in memory, this node's) the histories of topics whose script keeps one
	// Peers says that other nodes broadcast on the topics too, through a PubSub that brings
	// a topic's broadcasts only while this node has subscribers on it (NATS). An in-memory
	// history then forgets a topic when its first subscriber here comes: what it held was
	// kept without hearing the others, and a join with a position read from it is told
	// recovered false, not given a history with a gap.
	Peers       bool
	Clock       Clock       // (the real clock) drives socket:after and luachan.now; tests inject a virtual one
	TopicOwners TopicOwners // (nil: each node keeps its topics' states) one owner per topic state across the nodes (topicowners.go)
}

// Engine routes topics to scripts and runs channels. It implements
// hub.Handler for the sockets and luabind.Host for the scripts.
type Engine struct {
	cfg  Config
	log  *slog.Logger
	opts luabind.Options

	routes  atomic.Pointer[router]
	connect atomic.Pointer[luabind.ConnectScript] // socket.lua, if any
	// connectLoadedAt is when the connect script serving loaded (UnixNano), for Scripts.
	connectLoadedAt atomic.Int64
	presence        *channelPresence
	history         HistoryStore // the topics whose script keeps a history

	// mu guards files, the loaded script files by name; tried, the content
	// hash of each file's last load attempt (so an unchanged broken file is
	// not reported again at every rescan); and loadErrs.
	mu       sync.Mutex
	files    map[string]*scriptFile
	tried    map[string]string
	loadErrs map[string]error // files that never loaded, and why

	count   counters
	scripts scriptMetrics    // per script file, for /metrics
	states  topicStates      // handle_call and handle_tick state, by topic (topicstate.go)
	workers interceptWorkers // run the mailboxes intercepted broadcasts acquire

	rescanNow chan struct{} // RequestRescan's signal to the watcher (capacity 1)
	watching  atomic.Bool   // the watcher is running

	// wg counts the owners of channel mailboxes; Close waits for them.
	wg busyGroup
	// loops counts the watcher and the intercept workers: Start starts them,
	// Close stops them (cancel) and waits.
	loops  sync.WaitGroup
	ctx    context.Context // cancelled by Close: no callback outlives the engine
	cancel context.CancelFunc
}

var (
	_ hub.Handler            = (*Engine)(nil)
	_ luabind.Host           = (*Engine)(nil)
	_ luabind.DisconnectHost = (*Engine)(nil)
)

// ErrWatch is wrapped by Start's error when the scripts folder cannot be
// watched (the scripts loaded, though).
var ErrWatch = errors.New("engine: cannot watch the scripts folder")

// New returns an engine for cfg, with no script loaded yet: it does no I/O and
// starts no goroutine. Start loads the scripts; Close stops the engine.
func New(cfg Config) (*Engine, error) {
	if cfg.Hub == nil {
		return nil, errors.New("engine: Config.Hub is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxChannels <= 0 {
		cfg.MaxChannels = DefaultMaxChannels
	}
	if cfg.ScriptTimeout <= 0 {
		cfg.ScriptTimeout = DefaultScriptTimeout
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	e := &Engine{
		cfg:      cfg,
		log:      cfg.Logger,
		files:    make(map[string]*scriptFile),
		tried:    make(map[string]string),
		loadErrs: make(map[string]error),

		rescanNow: make(chan struct{}, 1),
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.workers.e = e
	e.states.init(e)
	e.presence = newPresence(e)
	e.history = cfg.History
	if e.history == nil {
		e.history = &memoryHistory{m: history.NewMemory[*hub.Broadcast](cfg.Clock.Now), hub: cfg.Hub, peers: cfg.Peers}
	}
	e.opts = luabind.Options{
		Dir:     cfg.Dir,
		Timeout: cfg.ScriptTimeout,
		Logger:  cfg.Logger,
		Host:    e,
		Secret:  cfg.Secret,
		Now:     cfg.Clock.Now,
	}
	e.routes.Store(&router{exact: map[string]*scriptFile{}})
	return e, nil
}

// Start loads every script in Config.Dir, starts the handle_out workers and,
// with Config.Watch, the watcher that reloads the folder when it changes. A
// script that fails to load is logged and left out; the others serve. An
// unreadable folder is an error. ctx bounds the start only: the goroutines run
// until Close, which also releases what a failed Start began. Call it once,
// before the engine serves.
func (e *Engine) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := e.Reload(); err != nil {
		return err
	}
	e.workers.startWorkers(&e.loops)
	if e.cfg.Watch {
		if err := e.watch(); err != nil {
			return fmt.Errorf("%w %s: %w", ErrWatch, e.cfg.Dir, err)
		}
	}
	return nil
}

// Open starts the session that serves one socket's frames.
func (e *Engine) Open(c *hub.Conn) hub.Session {
	return newSession(e, c)
}

// Broadcast is luachan.broadcast: an event for every subscriber of topic.
func (e *Engine) Broadcast(topic, event string, p luabind.Payload) error {
	return e.Publish(&hub.Broadcast{
		Topic: topic, Event: event, Payload: p.Data, Binary: p.Binary,
	})
}

// Disconnect is luachan.disconnect(id): a "disconnect" broadcast on the
// socket id, which the hub turns into closing every socket with that id, on
// every node.
func (e *Engine) Disconnect(id string) error {
	return e.cfg.Hub.Broadcast(&hub.Broadcast{Topic: id, Event: "disconnect", Payload: replyEmpty})
}

// Close waits for every channel goroutine to finish (after the hub's Close,
// each is running its leave), then stops the watcher and the handle_out
// workers and waits for them. When ctx ends first, callbacks still running are
// cancelled and Close returns ctx's error without waiting further.
func (e *Engine) Close(ctx context.Context) error {
	err := waitCtx(ctx, e.wg.Wait)
	if err != nil {
		err = fmt.Errorf("engine: channels still running: %w", err)
	}
	e.states.stopAll()
	e.cancel()
	if err == nil {
		if err = waitCtx(ctx, e.loops.Wait); err != nil {
			err = fmt.Errorf("engine: watcher or workers still running: %w", err)
		}
	}
	e.mu.Lock()
	for _, f := range e.files {
		f.close()
	}
	if cs := e.connect.Swap(nil); cs != nil {
		cs.Close()
	}
	e.mu.Unlock()
	return err
}

// waitCtx runs wait and returns nil once it has, or ctx's error when ctx ends
// first; wait's goroutine then finishes on its own.
func waitCtx(ctx context.Context, wait func()) error {
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// route returns the script file serving topic, or nil.
func (e *Engine) route(topic string) *scriptFile {
	return e.routes.Load().route(topic)
}
