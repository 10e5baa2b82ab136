package console

import (
	"context"
	"embed"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/luachan/luachan/engine"
	"github.com/luachan/luachan/hub"
)

// Limits and periods.
const (
	// snapshotEvery is how often a stream sends a snapshot: the page updates within it.
	snapshotEvery = 500 * time.Millisecond
	// sampleEvery is the resolution of the traffic charts.
	sampleEvery = time.Second
	// historyLen is how many samples the charts span: five minutes.
	historyLen = 300
	// defaultTop and maxTop bound the topics a snapshot lists.
	defaultTop, maxTop = 20, 200
	// ringLen is how many broadcasts on an opened topic a stream keeps.
	ringLen = 20
	// maxSampled is how much of a sampled broadcast's payload is kept.
	maxSampled = 2048
)

//go:embed static
var static embed.FS

// Hub is what the console reads from the hub. *hub.Hub implements it.
type Hub interface {
	Stats() hub.Stats
	TopicCounts(filter string, n int) (top []hub.TopicCount, matched int)
	SubscriberCount(topic string) int
	Tap(topic string, f func(*hub.Broadcast)) (stop func())
}

// Engine is what the console reads from the engine. *engine.Engine implements it.
type Engine interface {
	Stats() engine.Stats
	Scripts() []engine.ScriptInfo
}

// Config configures a Console.
type Config struct {
	Hub    Hub    // required
	Engine Engine // required
	// Presence returns a topic's presence_state as JSON (engine.Engine.Presence().List).
	Presence func(topic string) ([]byte, error)
	// Key is the bearer key the API asks for. "" serves the API without one, which
	// is only safe when the server listens on loopback: then requests must also name a
	// loopback host, so a page elsewhere cannot reach it by DNS rebinding.
	Key    string
	Logger *slog.Logger // (slog.Default())
}

// Console serves /console and its API. New does no I/O; Start begins sampling the
// traffic for the charts; Close ends the streams and the sampler.
type Console struct {
	cfg     Config
	log     *slog.Logger
	history history
	page    http.Handler

	ctx    context.Context // cancelled by Close: open streams end
	cancel context.CancelFunc
	wg     sync.WaitGroup // the sampler
}

// New returns a Console for cfg.
func New(cfg Config) *Console {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Presence == nil {
		cfg.Presence = func(string) ([]byte, error) { return []byte("{}"), nil }
	}
	sub, _ := fs.Sub(static, "static")
	c := &Console{cfg: cfg, log: cfg.Logger.With("part", "console"), page: http.FileServerFS(sub)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Start samples the traffic counters every second until ctx ends or Close.
func (c *Console) Start(ctx context.Context) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		c.history.add(c.totals(), time.Now())
		for {
			select {
			case <-ctx.Done():
				return
			case <-c.ctx.Done():
				return
			case now := <-t.C:
				c.history.add(c.totals(), now)
			}
		}
	}()
}

// Close ends every open stream and the sampler, and waits for the sampler. The HTTP
// server's Shutdown would otherwise wait for the streams, which never go idle.
func (c *Console) Close() {
	c.cancel()
	c.wg.Wait()
}

// ServeHTTP serves the page under /console/ and the API under /console/api/.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Key == "" && !loopbackHost(r.Host) {
		http.Error(w, "console: served on loopback only; use a loopback host name", http.StatusForbidden)
		return
	}
	h := w.Header()
	// The page loads nothing from another host, and the browser enforces it.
	h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	path := r.URL.Path
	switch {
	case path == "/console":
		http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
	case strings.HasPrefix(path, "/console/api/"):
		h.Set("Cache-Control", "no-store")
		c.authorized(http.HandlerFunc(c.api)).ServeHTTP(w, r)
	default:
		h.Set("Cache-Control", "no-cache")
		http.StripPrefix("/console", c.page).ServeHTTP(w, r)
	}
}

// loopbackHost reports whether a request's Host names this machine's loopback.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
