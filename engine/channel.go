package engine

import (
	"sync"
	"sync/atomic"

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
	evFast                // a fast-laned broadcast queued behind intercepted ones
)

// event is one entry of a channel's mailbox.
type event struct {
	kind evKind
	msg  *hub.Message   // evJoin, evIn, evLeave
	out  *hub.Broadcast // evOut, evFast
	why  stopReason     // evStop
	info []byte         // evInfo: the timer's message, JSON
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
	timers     map[Timer]struct{}

	// queuedOut counts the broadcasts (evOut, evFast) in the mailbox or
	// being handled whose copies are not yet queued on the socket. While
	// there are any, Intercepts sends every broadcast through the mailbox,
	// so a fast-laned broadcast never overtakes an intercepted one before
	// it: a sender's broadcasts reach the client in the order it sent them.
	queuedOut atomic.Int32

	// Owned by the goroutine running the mailbox.
	joined bool
	ended  bool
	outbox []outgoingSend // what the running callback sent, in order

	// A join of a topic the socket had already joined takes over from the
	// earlier channel, but only once that channel's own join has settled, as
	// in Phoenix, whose socket runs joins one at a time: the earlier join is
	// answered first, and only a channel that did join gets a phx_close.
	replaced *channel      // the earlier channel, until takeOver
	settled  chan struct{} // closed when this channel's join has settled
	joinOK   bool          // written before settled is closed: the join succeeded
}

// outgoingSend is something a callback sent: a push, a broadcast, a
// luachan.broadcast or luachan.disconnect, or a fast-laned broadcast queued
// behind intercepted ones. They are sent when the callback returns, in call
// order: the fan-out of a broadcast to many subscribers then costs the script
// none of its CPU budget, join's sends follow its reply, and nothing a
// callback sends overtakes what it sent before.
type outgoingSend struct {
	kind  sendKind
	topic string // sendTopic: the topic; sendDisconnect: the socket id
	event string
	p     luabind.Payload
	fast  *hub.Broadcast // sendFast
}

// sendKind says what an outgoingSend is.
type sendKind uint8

const (
	sendPush          sendKind = iota // socket:push, to this client
	sendBroadcast                     // socket:broadcast, on the channel's topic
	sendBroadcastFrom                 // socket:broadcast_from
	sendTopic                         // luachan.broadcast, on any topic
	sendDisconnect                    // luachan.disconnect
	sendFast                          // a fast-laned broadcast's frame, to this client
)

// leavesChannel reports whether the send reaches beyond the channel's own
// client and topic: what a join that is refused still sends.
func (k sendKind) leavesChannel() bool { return k == sendTopic || k == sendDisconnect }

var (
	_ hub.Subscriber      = (*channel)(nil)
	_ luabind.Socket      = (*channel)(nil)
	_ luabind.SocketSends = (*channel)(nil)
)

func newChannel(s *session, f *scriptFile, topic, joinRef string, replaced *channel) *channel {
	return &channel{
		e:        s.e,
		sess:     s,
		conn:     s.conn,
		file:     f,
		topic:    topic,
		joinRef:  joinRef,
		assigns:  socketAssigns(s.conn),
		replaced: replaced,
		settled:  make(chan struct{}),
	}
}

// settle records the outcome of the channel's join for a channel that
// replaces it. Only the mailbox goroutine calls it.
func (c *channel) settle(ok bool) {
	select {
	case <-c.settled:
	default:
		c.joinOK = ok
		close(c.settled)
	}
}

// takeOver waits for the channel this one replaced to settle its join and
// ends it if it had joined, returning its join ref for the phx_close the
// client must then get ("" when it never joined).
func (c *channel) takeOver() (closeRef string) {
	old := c.replaced
	if old == nil {
		return ""
	}
	c.replaced = nil
	<-old.settled // bounded: its join runs under the script budget
	if !old.joinOK {
		return ""
	}
	old.stop(stopReplaced)
	return old.joinRef
}

// socketAssigns is where every channel of a socket starts: a copy of the
// assigns its connect gave it, or an empty table.
func socketAssigns(c *hub.Conn) *luabind.Assigns {
	if a, ok := c.State().(*luabind.Assigns); ok && a != nil {
		return a.Clone()
	}
	return luabind.NewAssigns()
}

// post queues ev and makes sure a goroutine is running the mailbox.
func (c *channel) post(ev event) {
	if c.enqueue(ev) {
		go c.run() // inherits running and the wg count
	}
}

// enqueue adds ev to the mailbox and reports whether it woke it: the caller
// then runs it (c.running is set and counted in the wg). A client whose
// events pile up beyond MaxPending is closed: its channel cannot keep up, and
// queueing without bound would let it take the server's memory.
func (c *channel) enqueue(ev event) (woke bool) {
	c.mu.Lock()
	// A leave is always taken: the session has already forgotten the
	// channel, so nothing else would end it or answer the client (and it
	// comes once). A channel that is ending answers it when its turn comes.
	if c.stopping && ev.kind != evLeave {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= c.e.cfg.MaxPending && ev.kind != evLeave {
		c.mu.Unlock()
		c.overflow()
		return false
	}
	c.queue = append(c.queue, ev)
	if ev.kind == evOut || ev.kind == evFast {
		c.queuedOut.Add(1)
	}
	woke = !c.running
	if woke {
		c.running = true
		c.e.wg.Add(1)
	}
	c.mu.Unlock()
	return woke
}

// overflow closes the socket of a channel whose events pile up.
func (c *channel) overflow() {
	c.e.count.overflows.Add(1)
	c.e.log.Warn("closing socket: channel cannot keep up",
		"conn", c.conn.Key(), "topic", c.topic, "pending", c.e.cfg.MaxPending)
	c.conn.Close(hub.ClosePolicy, "too many pending events")
}

// stop ends the channel for a server reason. It unsubscribes at once, so no
// broadcast reaches the channel after stop returns, then queues the stop
// behind any event already running; events still waiting are dropped, but
// for a leave, answered after the stop.
func (c *channel) stop(why stopReason) {
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		return
	}
	c.stopping = true
	unsubscribe := c.stopEventsLocked()
	c.dropQueuedLocked()
	c.queue = append(c.queue, event{})
	copy(c.queue[1:], c.queue)
	c.queue[0] = event{kind: evStop, why: why}
	c.startLocked()
	c.mu.Unlock()
	if unsubscribe {
		c.unsubscribe()
	}
}

func (c *channel) startLocked() {
	if c.running {
		return
	}
	c.running = true
	c.e.wg.Add(1)
	go c.run()
}

// stopEventsLocked stops everything that could add events: the timers at
// once, and broadcasts through unsubscribe, which the caller must run when it
// reports true, once c.mu is released: Hub.Unsubscribe may wait on the
// registry (up to a second while Redis confirms a subscription), and the
// hub's deliveries, which take c.mu (Deliver), would wait with it.
func (c *channel) stopEventsLocked() (unsubscribe bool) {
	c.stopTimersLocked()
	unsubscribe = c.subscribed
	c.subscribed = false
	return unsubscribe
}

// unsubscribe ends the channel's subscription; see stopEventsLocked.
func (c *channel) unsubscribe() { c.e.cfg.Hub.Unsubscribe(c.topic, c) }

// isStopping reports whether the channel is ending.
func (c *channel) isStopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopping
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

// dropQueuedLocked empties the mailbox of a channel that is ending, but for
// a leave, which is still answered (see dispatch). c.mu must be held.
func (c *channel) dropQueuedLocked() {
	kept, dropped := c.queue[:0], int32(0)
	for _, ev := range c.queue {
		switch ev.kind {
		case evLeave:
			kept = append(kept, ev)
		case evOut, evFast:
			dropped++
		}
	}
	clear(c.queue[len(kept):])
	c.queue = kept
	c.queuedOut.Add(-dropped)
}

// popLocked takes the mailbox's next event; there must be one.
func (c *channel) popLocked() event {
	ev := c.queue[0]
	c.queue[0] = event{} // let what it holds be collected
	c.queue = c.queue[1:]
	return ev
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
		ev := c.popLocked()
		c.mu.Unlock()
		c.dispatch(ev)
	}
}

// runNow runs ev on the calling goroutine, the socket's reader, when the
// mailbox is idle, instead of starting a goroutine for it; otherwise it posts
// ev. The socket reads its next frame once the callback returns (within the
// script budget), so the client's own events wait in the socket rather than
// in the mailbox, and a request costs no goroutine start and no wake-up.
// Only a socket with no other channel runs events so, whose frames it would
// otherwise hold up.
func (c *channel) runNow(ev event) {
	c.mu.Lock()
	if c.stopping || c.running {
		c.mu.Unlock()
		c.post(ev)
		return
	}
	c.running = true
	c.e.wg.Add(1)
	c.mu.Unlock()

	c.dispatch(ev)

	c.mu.Lock()
	if len(c.queue) > 0 { // posted meanwhile: they get a goroutine, as usual
		c.mu.Unlock()
		go c.run() // inherits running and the wg count
		return
	}
	c.running = false
	c.queue = nil
	c.mu.Unlock()
	c.e.wg.Done()
}

// dispatch runs one event of the mailbox. A panic in handling it crashes
// the channel (see recoverPanic), never the process.
func (c *channel) dispatch(ev event) {
	defer c.recoverPanic(ev)
	if dispatchHook != nil {
		dispatchHook(c, ev.kind)
	}
	if c.ended {
		if ev.kind == evLeave {
			// As Phoenix answers a leave of a topic not joined.
			c.reply(ev.msg, "ok", nil, replyEmpty)
		}
		return
	}
	switch ev.kind {
	case evJoin:
		c.handleJoin(ev.msg)
	case evIn:
		c.handleIn(ev.msg)
	case evOut:
		c.handleOut(ev.out)
	case evFast:
		c.handleFast(ev.out)
	case evLeave:
		c.handleLeave(ev.msg)
	case evStop:
		c.handleStop(ev.why)
	case evInfo:
		c.handleInfo(ev.info)
	}
}

// Conn is the socket the channel writes to.
func (c *channel) Conn() *hub.Conn { return c.conn }

// Intercepts reports whether a broadcast of event must go through the
// channel's mailbox: when the current script handles event in handle_out (a
// reload changes the answer for the next broadcast), and, for every event,
// while earlier broadcasts wait there (see queuedOut).
func (c *channel) Intercepts(event string) bool {
	return c.queuedOut.Load() > 0 || c.file.script().Intercepts(event)
}

// Deliver queues a broadcast in the mailbox, in arrival order with the
// channel's other events: for handle_out when the script intercepts it,
// otherwise as the fast lane's frame, behind the broadcasts before it. A
// mailbox it wakes is run by one of the engine's intercept workers rather
// than a goroutine of its own (see intercept.go).
func (c *channel) Deliver(b *hub.Broadcast) {
	kind := evFast
	if c.file.script().Intercepts(b.Event) {
		kind = evOut
	}
	if c.enqueue(event{kind: kind, out: b}) {
		c.e.outs.post(c)
	}
}

// Topic, JoinRef and ID describe the channel to its script.
func (c *channel) Topic() string   { return c.topic }
func (c *channel) JoinRef() string { return c.joinRef }
func (c *channel) ID() string      { return c.conn.ID() }

// Push is socket:push: an event to this client only, sent when the
// callback returns.
func (c *channel) Push(event string, p luabind.Payload) error {
	c.outbox = append(c.outbox, outgoingSend{kind: sendPush, event: event, p: p})
	return nil
}

// Broadcast is socket:broadcast and socket:broadcast_from: an event to
// every subscriber of the channel's topic (or every one but this socket),
// sent when the callback returns.
func (c *channel) Broadcast(event string, p luabind.Payload, excludeSelf bool) error {
	kind := sendBroadcast
	if excludeSelf {
		kind = sendBroadcastFrom
	}
	c.outbox = append(c.outbox, outgoingSend{kind: kind, topic: c.topic, event: event, p: p})
	return nil
}

// BroadcastTopic is luachan.broadcast in one of the channel's callbacks: an
// event to every subscriber of topic, sent when the callback returns.
func (c *channel) BroadcastTopic(topic, event string, p luabind.Payload) error {
	c.outbox = append(c.outbox, outgoingSend{kind: sendTopic, topic: topic, event: event, p: p})
	return nil
}

// DisconnectID is luachan.disconnect in one of the channel's callbacks:
// every socket whose id is id closes once the callback's earlier pushes are
// queued (a close writes what is queued first).
func (c *channel) DisconnectID(id string) error {
	c.outbox = append(c.outbox, outgoingSend{kind: sendDisconnect, topic: id})
	return nil
}

// flush sends what the last callback sent, in order.
func (c *channel) flush() {
	out := c.outbox
	c.outbox = nil
	for i := range out {
		c.sendOut(&out[i])
	}
	if cap(out) <= maxKeptOutbox { // kept for the next callback, unless one sent a lot
		clear(out)
		c.outbox = out[:0]
	}
}

// flushUnjoined is flush for a join that failed: a client that did not join
// gets nothing of the channel's, while what the script sent elsewhere
// (luachan.broadcast, luachan.disconnect) still goes.
func (c *channel) flushUnjoined() {
	out := c.outbox
	c.outbox = nil
	for i := range out {
		if out[i].kind.leavesChannel() {
			c.sendOut(&out[i])
		}
	}
}

// sendOut sends one thing a callback sent.
func (c *channel) sendOut(o *outgoingSend) {
	var err error
	switch o.kind {
	case sendPush:
		c.send(o.event, o.p)
		o.p.Release() // queued: send copied it
	case sendFast:
		if err := o.fast.SendTo(c.conn); err != nil {
			c.e.log.Debug("broadcast not sent", "conn", c.conn.Key(), "topic", c.topic, "event", o.fast.Event, "err", err)
		}
	case sendDisconnect:
		err = c.e.Disconnect(o.topic)
	default:
		err = c.broadcastTo(o.topic, o.event, o.p, o.kind == sendBroadcastFrom)
	}
	if err != nil {
		c.e.log.Warn("broadcast not published to other nodes", "topic", o.topic, "event", o.event, "err", err)
	}
}

// maxKeptOutbox is the largest outbox (88 bytes an entry) a channel keeps
// between callbacks: enough for the usual push or two, without every
// channel that once sent a burst keeping a kilobyte for it.
const maxKeptOutbox = 4

func (c *channel) send(event string, p luabind.Payload) {
	err := c.conn.Send(&hub.Message{
		JoinRef: c.joinRef, Topic: c.topic, Event: event, Payload: p.Data, Binary: p.Binary,
	})
	if err != nil {
		c.e.log.Debug("push not sent", "conn", c.conn.Key(), "topic", c.topic, "event", event, "err", err)
	}
}

func (c *channel) broadcast(event string, p luabind.Payload, excludeSelf bool) error {
	return c.broadcastTo(c.topic, event, p, excludeSelf)
}

// broadcastTo broadcasts on topic, from this socket when excludeSelf.
func (c *channel) broadcastTo(topic, event string, p luabind.Payload, excludeSelf bool) error {
	b := &hub.Broadcast{Topic: topic, Event: event, Payload: p.Data, Binary: p.Binary}
	if excludeSelf {
		b.From = c.conn.Key()
	}
	return c.e.cfg.Hub.Broadcast(b)
}
