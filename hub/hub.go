package hub

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxFrameSize  = 1 << 20          // inbound frame limit (1 MiB)
	DefaultIdleTimeout   = 60 * time.Second // Phoenix clients heartbeat every 30 s
	DefaultMaxQueueBytes = 4 << 20          // outbound bytes a client may have pending (4 MiB)
)

// ConnectRequest is what a Handler sees before the upgrade.
type ConnectRequest struct {
	// Ctx is the HTTP request's context: it ends when the client goes away, and a
	// Connect waiting on something (a free VM) should give up then.
	Ctx       context.Context
	Params    url.Values // query parameters (minus vsn)
	AuthToken string     // from Sec-WebSocket-Protocol "base64url.bearer.phx.<b64>" (1.8 JS client), "" if none
	Origin    string
	RemoteIP  string
}

// Handler decides who may connect and what their frames mean. The engine implements it.
type Handler interface {
	// Connect runs before the WebSocket upgrade. ok=false answers HTTP 403 and no socket
	// is made. id is the socket id ("" = none); state is opaque to hub and available as
	// Conn.State().
	Connect(r *ConnectRequest) (ok bool, id string, state any)
	// Open is called once the socket is up, before any frame is read.
	Open(c *Conn) Session
}

// Session receives one connection's frames. The engine implements it.
type Session interface {
	// Handle is called one frame at a time, in order, for every valid frame except
	// heartbeats, which the hub answers itself: from the connection's reader goroutine
	// for a WebSocket, from the POST requests for LongPoll. Handle must not block for
	// long. m and its slices are owned by the callee afterwards.
	Handle(m *Message)
	// Closed is called exactly once, after the connection is closed for any reason and
	// after the last Handle call returned. reason is one of the Err* values (possibly
	// wrapped), a *CloseError, or another error.
	Closed(reason error)
}

// PubSub carries broadcasts between nodes. nil in Config means this process only.
type PubSub interface {
	// Publish sends b to the other nodes, which deliver it with Hub.DeliverLocal. Local
	// delivery is done by the Hub itself, never by the copy coming back. b.From is a key
	// of this process only; the other nodes must deliver with From 0.
	Publish(b *Broadcast) error
	// Subscribe and Unsubscribe are called when a topic gets its first local subscriber
	// and loses its last one.
	Subscribe(topic string) error
	Unsubscribe(topic string) error
}

// Config configures a Hub. Zero values take the defaults in parentheses.
type Config struct {
	Handler       Handler       // required
	Logger        *slog.Logger  // (slog.Default())
	MaxFrameSize  int64         // (1 MiB) inbound message limit (LongPoll: a POST body); over it: close 1009
	MaxDepth      int           // (64) payload nesting limit; over it: close 1003
	IdleTimeout   time.Duration // (60s) close a socket that sends nothing (a LongPoll session that makes no request) for this long
	MaxQueueBytes int           // (4 MiB) per-connection outbound queue bound
	Origins       []string      // (nil = any) allowed Origin header values; others get HTTP 403
	PubSub        PubSub        // (nil = in-memory, this process only); its creator starts and closes it

	// MaxMessageRate (100) is how many messages a second one client may send, on
	// average (heartbeats and WebSocket pings included); a negative value turns the
	// limit off. MaxMessageBurst (1000, or MaxMessageRate if higher) is how many it may
	// send at once after a quiet spell. Over them the connection is closed with 1008
	// "rate limit exceeded". A token bucket per connection, refilled lazily: no timer.
	MaxMessageRate  float64
	MaxMessageBurst int
	// LongPollWindow (10s) is how long a LongPoll poll waits for messages before it is
	// answered empty. It must stay under the client's timeout (the JS client's
	// longpollerTimeout, 20 s by default).
	LongPollWindow time.Duration
	// MaxLongPollSessions (10,000) bounds the LongPoll sessions open at once, and
	// MaxLongPollPerAddr (256) those opened from one remote IP address: each session
	// holds a goroutine and a timer for up to IdleTimeout. A GET over either is answered
	// HTTP 503 or 429 with a plain-text reason (the JS client retries later).
	MaxLongPollSessions int
	MaxLongPollPerAddr  int
}

// Hub owns the connections, the topic registry and local fan-out.
type Hub struct {
	cfg      Config
	log      *slog.Logger
	upgrader websocket.Upgrader
	reg      registry
	count    counters
	taps     taps          // the dev console's taps on topics (Tap)
	lpSlots  longPollSlots // LongPoll sessions open, in all and by remote address
	park     parker        // where quiet connections wait, with no goroutine (Conn.park)

	// wg counts every connection goroutine: ServeHTTP calls from admission to return,
	// and each connection's writer. Close waits for it.
	wg sync.WaitGroup

	mu      sync.Mutex                    // guards the fields below
	conns   map[*Conn]struct{}            // every open connection
	byID    map[string]map[*Conn]struct{} // connections with a socket id, by id
	polls   map[string]*Conn              // LongPoll sessions, by token
	closing bool                          // Close started: refuse new connections
}

// New returns a Hub ready to serve; it does no I/O and starts no goroutine (each
// connection's are started as it is accepted, and Close stops them). It panics without
// cfg.Handler, a programming error.
func New(cfg Config) *Hub {
	if cfg.Handler == nil {
		panic("hub: Config.Handler is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxFrameSize <= 0 {
		cfg.MaxFrameSize = DefaultMaxFrameSize
	}
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = DefaultMaxDepth
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxQueueBytes <= 0 {
		cfg.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if cfg.MaxMessageRate == 0 {
		cfg.MaxMessageRate = DefaultMaxMessageRate
	}
	if cfg.MaxMessageBurst <= 0 {
		cfg.MaxMessageBurst = max(DefaultMaxMessageBurst, int(cfg.MaxMessageRate))
	}
	if cfg.LongPollWindow <= 0 {
		cfg.LongPollWindow = DefaultLongPollWindow
	}
	if cfg.MaxLongPollSessions <= 0 {
		cfg.MaxLongPollSessions = DefaultMaxLongPollSessions
	}
	if cfg.MaxLongPollPerAddr <= 0 {
		cfg.MaxLongPollPerAddr = DefaultMaxLongPollPerAddr
	}
	h := &Hub{
		cfg:   cfg,
		log:   cfg.Logger,
		conns: make(map[*Conn]struct{}),
		byID:  make(map[string]map[*Conn]struct{}),
		polls: make(map[string]*Conn),
	}
	h.reg.init()
	h.upgrader = websocket.Upgrader{
		Subprotocols: []string{phoenixSubprotocol},
		CheckOrigin:  func(*http.Request) bool { return true }, // ServeHTTP checked Origins
		// The hub writes its own frames (see frame.go), so gorilla needs no write buffer:
		// with a pool set it keeps none, and the one net/http allocated for the upgrade
		// is freed instead of staying pinned for the life of every connection.
		WriteBufferPool: &sync.Pool{},
	}
	return h
}

// Conns returns the number of open connections.
func (h *Hub) Conns() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// Topics returns the number of topics with at least one local subscriber.
func (h *Hub) Topics() int { return int(h.reg.topics.Load()) }

// Subscriptions returns the number of local subscriptions over all topics.
func (h *Hub) Subscriptions() int { return int(h.reg.subs.Load()) }

// admit counts a new ServeHTTP call in wg unless the Hub is shutting down. A true result
// must be paired with h.wg.Done.
func (h *Hub) admit() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.wg.Add(1)
	return true
}

// addConn registers an upgraded connection; during shutdown it is closed at once.
func (h *Hub) addConn(c *Conn) {
	h.mu.Lock()
	closing := h.closing
	h.conns[c] = struct{}{}
	if c.id != "" {
		set := h.byID[c.id]
		if set == nil {
			set = make(map[*Conn]struct{})
			h.byID[c.id] = set
		}
		set[c] = struct{}{}
	}
	if c.lp != nil {
		h.polls[c.lp.token] = c
	}
	h.mu.Unlock()
	if closing {
		c.closeWith(CloseServiceRestart, "server shutting down", ErrShutdown, true)
	}
}

// removeConn forgets a closed connection.
func (h *Hub) removeConn(c *Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conns, c)
	if c.lp != nil {
		delete(h.polls, c.lp.token)
	}
	if set := h.byID[c.id]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(h.byID, c.id)
		}
	}
}

// Disconnect closes every connection whose ID is id with 1001 and returns how many.
func (h *Hub) Disconnect(id string) int {
	if id == "" {
		return 0
	}
	h.mu.Lock()
	victims := make([]*Conn, 0, len(h.byID[id]))
	for c := range h.byID[id] {
		victims = append(victims, c)
	}
	h.mu.Unlock()
	n := 0
	for _, c := range victims {
		if c.closeWith(CloseGoingAway, "disconnected", ErrDisconnect, true) {
			n++
		}
	}
	return n
}

// Close refuses new connections (HTTP 503), closes every connection with 1012 and
// waits until every Session.Closed has returned and every connection goroutine has
// exited, or ctx ends (its error is then returned). It does not close Config.PubSub,
// which belongs to its creator.
func (h *Hub) Close(ctx context.Context) error {
	h.mu.Lock()
	h.closing = true
	victims := make([]*Conn, 0, len(h.conns))
	for c := range h.conns {
		victims = append(victims, c)
	}
	h.mu.Unlock()
	for _, c := range victims {
		c.closeWith(CloseServiceRestart, "server shutting down", ErrShutdown, true)
	}

	done := make(chan struct{})
	go func() { // exits once the connections have; Close stops waiting at ctx's end
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
