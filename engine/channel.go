package engine

import (
	"sync"
	"sync/atomic"

	"github.com/luachan/luachan/history"
	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/luabind"
)

// evKind says what a channel event is.
type evKind uint8

const (
	evJoin        evKind = iota // the client's phx_join
	evIn                        // a client event for handle_in
	evIntercepted               // a broadcast the script intercepts, for handle_out
	evLeave                     // the client's phx_leave
	evStop                      // the channel ends for a reason of the server's
	evInfo                      // a socket:after timer fired, for handle_info
	evFast                      // a fast-laned broadcast queued behind intercepted ones
)

// event is one entry of a channel's mailbox.
type event struct {
	kind      evKind
	msg       *hub.Message   // evJoin, evIn, evLeave
	broadcast *hub.Broadcast // evIntercepted, evFast
	why       stopReason     // evStop
	info      []byte         // evInfo: the timer's message, JSON
}

// isBroadcast reports whether ev is a broadcast for the channel's client.
func (ev event) isBroadcast() bool { return ev.kind == evIntercepted || ev.kind == evFast }

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
// in arrival order, by whoever owns its mailbox (see mailbox); different
// channels run in parallel.
type channel struct {
	e       *Engine
	sess    *session
	conn    *hub.Conn
	file    *scriptFile
	topic   string
	joinRef string
	assigns *luabind.Assigns

	mb mailbox // the channel's events, and who runs them

	// mu guards subscribed and timers, and makes closing the mailbox one
	// step with stopping them. Lock order: channel.mu, then mailbox.mu or
	// the hub's locks.
	mu         sync.Mutex
	subscribed bool
	timers     map[Timer]struct{}

	overflowed atomic.Bool // the socket is closing: the mailbox filled up (see overflow)

	// Owned by the mailbox's owner.
	joined bool
	ended  bool
	sends  []pendingSend // what the running callback sent, in order
	outRef string        // during handle_out: the broadcast's ref, which its pushes carry

	// A join with a history (see history.go): what to replay after the
	// reply, and the position up to which the mailbox's broadcasts were sent.
	toReplay      []history.Entry[*hub.Broadcast]
	skipUpTo      history.Position
	holdUntilLive bool // the join's hold lasts until a broadcast after skipUpTo

	// A join of a topic the socket had already joined takes over from the
	// earlier channel, but only once that channel's own join has settled, as
	// in Phoenix, whose socket runs joins one at a time: the earlier join is
	// answered first, and only a channel that did join gets a phx_close.
	replaced *channel      // the earlier channel, until takeOver
	settled  chan struct{} // closed when this channel's join has settled
	joinOK   bool          // written before settled is closed: the join succeeded
}

// pendingSend is something a callback sent: a push, a broadcast, a
// luachan.broadcast or luachan.disconnect, or a fast-laned broadcast queued
// behind intercepted ones. They are sent when the callback returns, in call
// order: the fan-out of a broadcast to many subscribers then costs the script
// none of its CPU budget, join's sends follow its reply, and nothing a
// callback sends overtakes what it sent before.
type pendingSend struct {
	kind  sendKind
	topic string // sendTopic: the topic; sendDisconnect: the socket id
	event string
	p     luabind.Payload
	fast  *hub.Broadcast // sendFast
	ref   string         // sendPush from handle_out: the broadcast's history position
}

// sendKind says what a pendingSend is.
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
	c := &channel{
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
	c.mb = newMailbox(c, &s.e.wg, s.e.cfg.MaxPending)
	return c
}

// settle records the outcome of the channel's join for a channel that
// replaces it. Only the mailbox's owner calls it.
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

// post queues ev and makes sure someone runs the mailbox. A client whose
// events pile up beyond MaxPending is closed: its channel cannot keep up,
// and queueing without bound would let it take the server's memory.
func (c *channel) post(ev event) {
	switch c.mb.put(ev) {
	case putAcquired:
		c.mb.start()
	case putFull:
		c.overflow()
	}
}

// overflow closes the socket of a channel whose events pile up. Events
// posted until the socket has closed find the mailbox still full: the
// channel's overflow is counted and logged once (a socket whose channels
// overflow together is counted for each).
func (c *channel) overflow() {
	if c.overflowed.Swap(true) {
		return
	}
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
	closed, acquired := c.mb.stop(event{kind: evStop, why: why})
	if !closed {
		c.mu.Unlock()
		return
	}
	unsubscribe := c.stopEventsLocked()
	c.mu.Unlock()
	if acquired {
		c.mb.start()
	}
	if unsubscribe {
		c.unsubscribe()
	}
}

// stopEventsLocked stops everything that could add events: the timers at
// once, and broadcasts through unsubscribe, which the caller must run when it
// reports true, once c.mu is released: Hub.Unsubscribe may wait on the
// registry (up to a second while Redis confirms a subscription), and
// nothing slow runs under c.mu (a firing timer takes it).
func (c *channel) stopEventsLocked() (unsubscribe bool) {
	c.stopTimersLocked()
	unsubscribe = c.subscribed
	c.subscribed = false
	return unsubscribe
}

// closeEvents closes the mailbox to all but a leave (dropping what waits in
// it too, when drop) and stops the timers and broadcasts. The client's events
// it drops are answered as Phoenix answers an event for a topic the socket has
// not joined (the channel is gone from the session by now): a client that
// pushed while its join ran, and the join failed, learns it at once.
func (c *channel) closeEvents(drop bool) {
	c.mu.Lock()
	var dropped []*hub.Message
	if drop {
		dropped = c.mb.closeAndDrop()
	} else {
		c.mb.close()
	}
	unsubscribe := c.stopEventsLocked()
	c.mu.Unlock()
	for _, m := range dropped {
		c.sess.unmatched(m)
	}
	if unsubscribe {
		c.unsubscribe()
	}
}

// unsubscribe ends the channel's subscription; see stopEventsLocked.
func (c *channel) unsubscribe() { c.e.cfg.Hub.Unsubscribe(c.topic, c) }

// isStopping reports whether the channel is ending.
func (c *channel) isStopping() bool { return c.mb.isClosed() }

// subscribe starts broadcasts to the channel, unless it is already
// stopping, and runs first (the join reply) atomically with it: the client
// sees its reply before any broadcast, and every broadcast after it.
func (c *channel) subscribe(first func()) bool {
	c.mu.Lock()
	if c.mb.isClosed() {
		c.mu.Unlock()
		return false
	}
	c.subscribed = true
	firstHere := c.e.cfg.Hub.SubscribeAfter(c.topic, c, first)
	c.mu.Unlock()
	// Before the join reads the history (joinHistory); not under c.mu, as a history's
	// lock is held while it delivers.
	if h, ok := c.e.history.(*memoryHistory); ok && firstHere {
		h.heard(c.topic)
	}
	return true
}

// runNow runs ev on the calling goroutine, the socket's reader, when the
// mailbox is idle, instead of starting a goroutine for it; otherwise it posts
// ev. The socket reads its next frame once the callback returns (within the
// script budget), so the client's own events wait in the socket rather than
// in the mailbox. Only a socket with no other channel runs events so, whose
// frames it would otherwise hold up.
func (c *channel) runNow(ev event) {
	if !c.mb.runNow(ev) {
		c.post(ev)
	}
}

// handle runs one event of the mailbox, for its owner.
func (c *channel) handle(ev event) {
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
	if ev.isBroadcast() && c.alreadySent(ev.broadcast) {
		c.mb.broadcastsSent(1)
		return
	}
	switch ev.kind {
	case evJoin:
		c.handleJoin(ev.msg)
	case evIn:
		c.handleIn(ev.msg)
	case evIntercepted:
		c.handleOut(ev.broadcast)
	case evFast:
		c.handleFast(ev.broadcast)
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
// while earlier broadcasts wait there (see mailbox.unsentBroadcasts).
func (c *channel) Intercepts(event string) bool {
	return c.mb.hasUnsentBroadcasts() || c.file.script().Intercepts(event)
}

// Deliver queues a broadcast in the mailbox, in arrival order with the
// channel's other events: for handle_out when the script intercepts it,
// otherwise as the fast lane's frame, behind the broadcasts before it. A
// mailbox it acquires goes to one of the engine's intercept workers rather
// than a goroutine of its own (see interceptWorkers).
func (c *channel) Deliver(b *hub.Broadcast) {
	kind := evFast
	if c.file.script().Intercepts(b.Event) {
		kind = evIntercepted
	}
	switch c.mb.put(event{kind: kind, broadcast: b}) {
	case putAcquired:
		c.e.workers.post(c)
	case putFull:
		c.overflow()
	}
}

// Topic, JoinRef and ID describe the channel to its script.
func (c *channel) Topic() string   { return c.topic }
func (c *channel) JoinRef() string { return c.joinRef }
func (c *channel) ID() string      { return c.conn.ID() }

// Push is socket:push: an event to this client only, sent when the
// callback returns.
func (c *channel) Push(event string, p luabind.Payload) error {
	c.sends = append(c.sends, pendingSend{kind: sendPush, event: event, p: p, ref: c.outRef})
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
	c.sends = append(c.sends, pendingSend{kind: kind, topic: c.topic, event: event, p: p})
	return nil
}

// BroadcastTopic is luachan.broadcast in one of the channel's callbacks: an
// event to every subscriber of topic, sent when the callback returns.
func (c *channel) BroadcastTopic(topic, event string, p luabind.Payload) error {
	c.sends = append(c.sends, pendingSend{kind: sendTopic, topic: topic, event: event, p: p})
	return nil
}

// DisconnectID is luachan.disconnect in one of the channel's callbacks:
// every socket whose id is id closes once the callback's earlier pushes are
// queued (a close writes what is queued first).
func (c *channel) DisconnectID(id string) error {
	c.sends = append(c.sends, pendingSend{kind: sendDisconnect, topic: id})
	return nil
}

// flush sends what the last callback sent, in order.
func (c *channel) flush() {
	sends := c.sends
	c.sends = nil
	for i := range sends {
		c.sendPending(&sends[i])
	}
	if cap(sends) <= maxKeptSends { // kept for the next callback, unless one sent a lot
		clear(sends)
		c.sends = sends[:0]
	}
}

// flushUnjoined is flush for a join that failed: a client that did not join
// gets nothing of the channel's, while what the script sent elsewhere
// (luachan.broadcast, luachan.disconnect) still goes.
func (c *channel) flushUnjoined() {
	sends := c.sends
	c.sends = nil
	for i := range sends {
		if sends[i].kind.leavesChannel() {
			c.sendPending(&sends[i])
		}
	}
}

// sendPending sends one thing a callback sent.
func (c *channel) sendPending(o *pendingSend) {
	var err error
	switch o.kind {
	case sendPush:
		c.send(o.event, o.p, o.ref)
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

// maxKeptSends is the largest sends slice (88 bytes an entry) a channel keeps
// between callbacks: enough for the usual push or two, without every
// channel that once sent a burst keeping a kilobyte for it.
const maxKeptSends = 4

func (c *channel) send(event string, p luabind.Payload, ref string) {
	err := c.conn.Send(&hub.Message{
		JoinRef: c.joinRef, Ref: ref, Topic: c.topic, Event: event, Payload: p.Data, Binary: p.Binary,
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
	return c.e.Publish(b)
}
