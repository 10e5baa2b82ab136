package main

// The ceiling: a minimal Phoenix server in plain Go and gorilla/websocket,
// the reference luachan is measured against. It answers joins, leaves,
// heartbeats and pushes (a push is echoed back as its reply), and a "pub"
// push is broadcast to the topic's other subscribers as event "msg": the
// frame is encoded once and written to each connection with one write per
// frame, by that connection's writer goroutine (gorilla's chat example).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// ceilingQueue is each connection's outbound queue in frames; a full
	// queue closes the connection (a slow consumer), as the chat example.
	ceilingQueue = 1024
	// ceilingIdle closes a connection that sends nothing for this long.
	ceilingIdle = 60 * time.Second
)

// ceiling is the reference server's state.
type ceiling struct {
	log      *slog.Logger
	upgrader websocket.Upgrader

	mu     sync.RWMutex // guards topics
	topics map[string]map[*ceilingConn]struct{}
}

// ceilingConn is one client: a reader (the HTTP handler) and a writer.
type ceilingConn struct {
	ws     *websocket.Conn
	send   chan outFrame
	closed chan struct{}
	once   sync.Once
	joined map[string][]byte // topic -> join ref; reader only
}

func (c *ceilingConn) close() {
	c.once.Do(func() {
		close(c.closed)
		c.ws.Close()
	})
}

// outFrame is a broadcast encoded once for all (pm), or a reply (data).
type outFrame struct {
	pm   *websocket.PreparedMessage
	data []byte
}

// enqueue hands c a frame, closing c when its queue is full.
func (c *ceilingConn) enqueue(f outFrame) {
	select {
	case c.send <- f:
	case <-c.closed:
	default:
		c.close()
	}
}

func (s *ceiling) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &ceilingConn{
		ws:     ws,
		send:   make(chan outFrame, ceilingQueue),
		closed: make(chan struct{}),
		joined: map[string][]byte{},
	}
	go s.writeLoop(c)
	s.readLoop(c)
	c.close()
	s.mu.Lock()
	for t := range c.joined {
		s.unsubscribeLocked(t, c)
	}
	s.mu.Unlock()
}

// writeLoop writes c's frames, one write per frame.
func (s *ceiling) writeLoop(c *ceilingConn) {
	for {
		select {
		case f := <-c.send:
			c.ws.SetWriteDeadline(time.Now().Add(writeWait))
			var err error
			if f.pm != nil {
				err = c.ws.WritePreparedMessage(f.pm)
			} else {
				err = c.ws.WriteMessage(websocket.TextMessage, f.data)
			}
			if err != nil {
				c.close()
				return
			}
		case <-c.closed:
			return
		}
	}
}

// reply queues a phx_reply to f with status and response.
func (s *ceiling) reply(c *ceilingConn, f frame, status string, response []byte) {
	c.enqueue(outFrame{data: appendReply(nil, f.joinRef, f.ref, f.topic, status, response)})
}

// readLoop handles c's frames until it fails or goes idle.
func (s *ceiling) readLoop(c *ceilingConn) {
	c.ws.SetReadLimit(1 << 20)
	for {
		c.ws.SetReadDeadline(time.Now().Add(ceilingIdle))
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		f, err := parseFrame(b)
		if err != nil {
			c.ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseUnsupportedData, "bad frame"), time.Now().Add(time.Second))
			return
		}
		topic := string(f.topic)
		switch string(f.event) {
		case "heartbeat":
			s.reply(c, f, "ok", []byte("{}"))
		case "phx_join":
			c.joined[topic] = append([]byte(nil), f.joinRef...)
			s.mu.Lock()
			subs := s.topics[topic]
			if subs == nil {
				subs = map[*ceilingConn]struct{}{}
				s.topics[topic] = subs
			}
			subs[c] = struct{}{}
			s.mu.Unlock()
			s.reply(c, f, "ok", []byte("{}"))
		case "phx_leave":
			if _, ok := c.joined[topic]; ok {
				delete(c.joined, topic)
				s.mu.Lock()
				s.unsubscribeLocked(topic, c)
				s.mu.Unlock()
			}
			s.reply(c, f, "ok", []byte("{}"))
		default:
			if _, ok := c.joined[topic]; !ok {
				s.reply(c, frame{ref: f.ref, topic: f.topic}, "error", []byte(`{"reason":"unmatched topic"}`))
				continue
			}
			if string(f.event) == "pub" {
				s.broadcastFrom(c, topic, appendFrame(nil, nil, nil, f.topic, []byte("msg"), f.payload))
				s.reply(c, f, "ok", []byte("{}"))
				continue
			}
			s.reply(c, f, "ok", f.payload)
		}
	}
}

// broadcastFrom encodes b once and queues it for every subscriber of topic
// but from. The subscribers are copied under the read lock; queueing
// happens after it is released.
func (s *ceiling) broadcastFrom(from *ceilingConn, topic string, b []byte) {
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, b)
	if err != nil {
		return
	}
	s.mu.RLock()
	subs := make([]*ceilingConn, 0, len(s.topics[topic]))
	for c := range s.topics[topic] {
		if c != from {
			subs = append(subs, c)
		}
	}
	s.mu.RUnlock()
	for _, c := range subs {
		c.enqueue(outFrame{pm: pm})
	}
}

// apiBroadcast is POST /api/broadcast {"topic","event","payload"}: a
// broadcast to every subscriber of topic. Like luachan's, it answers 202.
func (s *ceiling) apiBroadcast(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Topic   string          `json:"topic"`
		Event   string          `json:"event"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil || body.Topic == "" || body.Event == "" || len(body.Payload) == 0 {
		http.Error(w, `{"error":"bad body"}`, http.StatusBadRequest)
		return
	}
	topic, _ := json.Marshal(body.Topic)
	event, _ := json.Marshal(body.Event)
	frame := appendFrame(nil, nil, nil, topic[1:len(topic)-1], event[1:len(event)-1], body.Payload)
	s.broadcastFrom(nil, body.Topic, frame)
	w.WriteHeader(http.StatusAccepted)
}

func (s *ceiling) unsubscribeLocked(topic string, c *ceilingConn) {
	if subs := s.topics[topic]; subs != nil {
		delete(subs, c)
		if len(subs) == 0 {
			delete(s.topics, topic)
		}
	}
}

// runCeilingServer is `luachan-bench ceiling-server`: it serves until ctx
// ends, logging its address the way luachan does.
func runCeilingServer(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("luachan-bench ceiling-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (127.0.0.0/8 only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if _, err := raiseFileLimit(); err != nil {
		log.Warn("cannot raise the open-file limit", "err", err)
	}
	if err := checkLoopback("ws://" + *addr); err != nil {
		return usageErr(err.Error())
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	s := &ceiling{
		log:      log,
		topics:   map[string]map[*ceilingConn]struct{}{},
		upgrader: websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024},
	}
	mux := http.NewServeMux()
	mux.Handle("/socket/websocket", s)
	mux.HandleFunc("POST /api/broadcast", s.apiBroadcast)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String())
	select {
	case err := <-served:
		return fmt.Errorf("ceiling server: %w", err)
	case <-ctx.Done():
	}
	ln.Close()
	s.mu.RLock()
	var all []*ceilingConn
	for _, subs := range s.topics {
		for c := range subs {
			all = append(all, c)
		}
	}
	s.mu.RUnlock()
	for _, c := range all {
		c.close()
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// ln is closed already; Shutdown closes it again and says so when Serve
	// has not yet seen it go.
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, net.ErrClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}
