package engine

import (
	"sync"
	"time"

	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/luabind"
)

// evKind says what a channel event is.
type evKind uint8

const (
	evJoin  evKind = iota // the client's phx_join
	evIn                  // a client event for handle_in
	evOut                 // an intercepted broadcast for handle_out
	evLeave               // the client's phx_leave
	evStop                // the channel ends for a reason of the server's
	evInfo                // a socket:after timer fired, for handle_info
)

// event is one entry of a channel's mailbox.
type event struct {
	kind     evKind
	msg      *hub.Message   // evJoin, evIn, evLeave
	out      *hub.Broadcast // evOut
	replaced *channel       // evJoin: the earlier channel of the topic, if any
	why      stopReason     // evStop
	info     []byte         // evInfo: the timer's message, JSON
}

// stopReason says why the server ends a channel.
type stopReason uint8

const (
	stopClosed   stopReason = iota // the socket closed
	stopShutdown                   // the server is shutting down
	stopReplaced                   // the client joined the topic again
	stopDeleted                    // the script file was deleted
)

// leaveReason is the reason a script's leave callback sees.
func (r stopReason) leaveReason() string {
	switch r {
	case stopShutdown:
		return "shutdown"
	case stopReplaced:
		return "leave"
	default:
		return "closed"
	}
}

// channel is one socket joined to one topic. Its events run one at a time,
// in arrival order, on a goroutine that exists only while the mailbox has
// work; different channels run in parallel.
type channel struct {
	e       *Engine
	sess    *session
	conn    *hub.Conn
	file    *scriptFile
	topic   string
	joinRef string
	assigns *luabind.Assigns

	// mu guards the mailbox (queue, running), the subscription state
	// (stopping, subscribed) and timers. Lock order: channel.mu, then the
	// hub's locks.
	mu         sync.Mutex
	queue      []event
	running    bool
	stopping   bool
	subscribed bool
	timers     map[*time.Timer]struct{}

	// Owned by the goroutine running the mailbox.
	joined bool
	ended  bool
	outbox []outgoingSend // what the running callback sent, in order
}

// outgoingSend is a push or broadcast a callback made. They are sent when
// the callback returns: the fan-out of a broadcast to many subscribers then
// costs the script none of its CPU budget, and join's sends follow its reply.
type outgoingSend struct {
	event       string
	p           luabind.Payload
	broadcast   bool
	excludeSelf bool
}

var (
	_ hub.Subscriber = (*channel)(nil)
	_ luabind.Socket = (*channel)(nil)
)

func newChannel(s *session, f *scriptFile, topic, joinRef string) *channel {
	return &channel{
		e:       s.e,
		sess:    s,
		conn:    s.conn,
		file:    f,
		topic:   topic,
		joinRef: joinRef,
		assigns: socketAssigns(s.conn),
	}
}

// socketAssigns is where every channel of a socket starts: a copy of the
// assigns its connect gave it, or an empty table.
func socketAssigns(c *hub.Conn) *luabind.Assigns {
	if a, ok := c.State().(*luabind.Assigns); ok && a != nil {
		return a.Clone()
	}
	return luabind.NewAssigns()
}

// post queues ev and makes sure a goroutine is running the mailbox. A
// client whose events pile up beyond MaxPending is closed: its channel cannot
// keep up, and queueing without bound would let it take the server's memory.
func (c *channel) post(ev event) {
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= c.e.cfg.MaxPending {
		c.mu.Unlock()
		c.e.count.overflows.Add(1)
		c.e.log.Warn("closing socket: channel cannot keep up",
			"conn", c.conn.Key(), "topic", c.topic, "pending", c.e.cfg.MaxPending)
		c.conn.Close(hub.ClosePolicy, "too many pending events")
		return
	}
	c.queue = append(c.queue, ev)
	c.startLocked()
	c.mu.Unlock()
}

// stop ends the channel for a server reason. It unsubscribes at once, so no
// broadcast reaches the channel after stop returns, then queues the stop
// behind any event already running; events still waiting are dropped.
func (c *channel) stop(why stopReason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return
	}
	c.stopping = true
	c.unsubscribeLocked()
	c.queue = append(c.queue[:0], event{kind: evStop, why: why})
	c.startLocked()
}

func (c *channel) startLocked() {
	if c.running {
		return
	}
	c.running = true
	c.e.wg.Add(1)
	go c.run()
}

// unsubscribeLocked stops everything that could add events: broadcasts and
// timers.
func (c *channel) unsubscribeLocked() {
	c.stopTimersLocked()
	if c.subscribed {
		c.subscribed = false
		c.e.cfg.Hub.Unsubscribe(c.topic, c)
	}
}

// subscribe starts broadcasts to the channel, unless it is already
// stopping, and runs first (the join reply) atomically with it: the client
// sees its reply before any broadcast, and every broadcast after it.
func (c *channel) subscribe(first func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return false
	}
	c.subscribed = true
	c.e.cfg.Hub.SubscribeAfter(c.topic, c, first)
	return true
}

// run drains the mailbox, one event at a time, and exits when it is empty.
func (c *channel) run() {
	defer c.e.wg.Done()
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.running = false
			c.queue = nil
			c.mu.Unlock()
			return
		}
		ev := c.queue[0]
		c.queue[0] = event{}
		c.queue = c.queue[1:]
		c.mu.Unlock()

		if c.ended {
			continue
		}
		switch ev.kind {
		case evJoin:
			c.handleJoin(ev.msg, ev.replaced)
		case evIn:
			c.handleIn(ev.msg)
		case evOut:
			c.handleOut(ev.out)
		case evLeave:
			c.handleLeave(ev.msg)
		case evStop:
			c.handleStop(ev.why)
		case evInfo:
			c.handleInfo(ev.info)
		}
	}
}

// Conn is the socket the channel writes to.
func (c *channel) Conn() *hub.Conn { return c.conn }

// Intercepts reports whether the channel's current script handles event in
// handle_out; a reload changes the answer for the next broadcast.
func (c *channel) Intercepts(event string) bool { return c.file.script().Intercepts(event) }

// Deliver queues an intercepted broadcast for handle_out.
func (c *channel) Deliver(b *hub.Broadcast) { c.post(event{kind: evOut, out: b}) }

// Topic, JoinRef and ID describe the channel to its script.
func (c *channel) Topic() string   { return c.topic }
func (c *channel) JoinRef() string { return c.joinRef }
func (c *channel) ID() string      { return c.conn.ID() }

// Push is socket:push: an event to this client only, sent when the
// callback returns.
func (c *channel) Push(event string, p luabind.Payload) error {
	c.outbox = append(c.outbox, outgoingSend{event: event, p: p})
	return nil
}

// Broadcast is socket:broadcast and socket:broadcast_from: an event to
// every subscriber of the channel's topic (or every one but this socket),
// sent when the callback returns.
func (c *channel) Broadcast(event string, p luabind.Payload, excludeSelf bool) error {
	c.outbox = append(c.outbox, outgoingSend{event: event, p: p, broadcast: true, excludeSelf: excludeSelf})
	return nil
}

// flush sends what the last callback pushed and broadcast, in order.
func (c *channel) flush() {
	out := c.outbox
	c.outbox = nil
	for _, o := range out {
		if !o.broadcast {
			c.send(o.event, o.p)
			continue
		}
		if err := c.broadcast(o.event, o.p, o.excludeSelf); err != nil {
			c.e.log.Warn("broadcast not published to other nodes", "topic", c.topic, "event", o.event, "err", err)
		}
	}
}

func (c *channel) send(event string, p luabind.Payload) {
	err := c.conn.Send(&hub.Message{
		JoinRef: c.joinRef, Topic: c.topic, Event: event, Payload: p.Data, Binary: p.Binary,
	})
	if err != nil {
		c.e.log.Debug("push not sent", "conn", c.conn.Key(), "topic", c.topic, "event", event, "err", err)
	}
}

func (c *channel) broadcast(event string, p luabind.Payload, excludeSelf bool) error {
	b := &hub.Broadcast{Topic: c.topic, Event: event, Payload: p.Data, Binary: p.Binary}
	if excludeSelf {
		b.From = c.conn.Key()
	}
	return c.e.cfg.Hub.Broadcast(b)
}
