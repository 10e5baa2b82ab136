package engine

import (
	"errors"
	"sync"

	"github.com/luachan/luachan/hub"
)

// Phoenix protocol events and replies the engine handles or sends.
const (
	eventJoin  = "phx_join"
	eventLeave = "phx_leave"
	eventClose = "phx_close"
	eventError = "phx_error"
)

// Canned reply bodies.
var (
	replyEmpty          = []byte(`{}`)
	replyUnmatched      = []byte(`{"reason":"unmatched topic"}`)
	replyNoHandleIn     = []byte(`{"reason":"no handle_in"}`)
	replyTooMany        = []byte(`{"reason":"too many channels joined"}`)
	replyJoinCrashed    = []byte(`{"reason":"join crashed"}`)
	replyUnauthorized   = []byte(`{"reason":"unauthorized"}`)
	payloadChannelCrash = []byte(`{"reason":"channel_crash"}`)
)

// session is one socket: the channels it has joined, by topic. Frames arrive
// on the socket's reader goroutine; each channel runs its own events.
type session struct {
	e    *Engine
	conn *hub.Conn

	// mu guards chans and closed.
	mu     sync.Mutex
	chans  map[string]*channel
	closed bool
}

func newSession(e *Engine, c *hub.Conn) *session {
	return &session{e: e, conn: c, chans: make(map[string]*channel)}
}

// Handle routes one client frame.
func (s *session) Handle(m *hub.Message) {
	switch m.Event {
	case eventJoin:
		s.join(m)
	case eventLeave:
		s.leave(m)
	default:
		s.event(m)
	}
}

func (s *session) join(m *hub.Message) {
	file := s.e.route(m.Topic)
	if file == nil {
		s.e.count.unmatched.Add(1)
		s.e.log.Debug("join refused: no script serves the topic", "conn", s.conn.Key(), "topic", m.Topic)
		s.conn.Reply("", m.Ref, m.Topic, "error", replyUnmatched, false)
		return
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	old := s.chans[m.Topic]
	if old == nil && len(s.chans) >= s.e.cfg.MaxChannels {
		s.mu.Unlock()
		s.e.count.joinsRefused.Add(1)
		s.e.log.Warn("join refused: too many channels", "conn", s.conn.Key(), "topic", m.Topic, "limit", s.e.cfg.MaxChannels)
		s.conn.Reply(m.JoinRef, m.Ref, m.Topic, "error", replyTooMany, false)
		return
	}
	// A second join of a topic replaces the first: the new channel ends the
	// old one once the old join is answered, and the old phx_close follows the
	// new reply (see channel.takeOver).
	ch := newChannel(s, file, m.Topic, m.JoinRef, old)
	s.chans[m.Topic] = ch
	s.mu.Unlock()
	ch.post(event{kind: evJoin, msg: m})
}

func (s *session) leave(m *hub.Message) {
	s.mu.Lock()
	ch := s.chans[m.Topic]
	if ch != nil {
		delete(s.chans, m.Topic)
	}
	s.mu.Unlock()
	if ch == nil {
		s.conn.Reply(m.JoinRef, m.Ref, m.Topic, "ok", replyEmpty, false)
		return
	}
	ch.post(event{kind: evLeave, msg: m})
}

func (s *session) event(m *hub.Message) {
	s.mu.Lock()
	ch := s.chans[m.Topic]
	alone := len(s.chans) == 1
	s.mu.Unlock()
	if ch == nil {
		s.unmatched(m)
		return
	}
	if m.JoinRef != "" && m.JoinRef != ch.joinRef {
		s.stale(m)
		return
	}
	if alone {
		ch.runNow(event{kind: evIn, msg: m})
		return
	}
	ch.post(event{kind: evIn, msg: m})
}

// unmatched answers an event for a topic the socket has not joined.
// Like the other cold paths of a client's event, it is a function of its own,
// kept out of line: the reader goroutine runs the event, and handle_in, on its
// own stack, so every byte of this path's frames is stack the GC shrinks and the
// next message grows again.
//
//go:noinline
func (s *session) unmatched(m *hub.Message) {
	s.e.count.unmatched.Add(1)
	s.conn.Reply("", m.Ref, m.Topic, "error", replyUnmatched, false)
}

// stale drops a message for an earlier join of its topic, as Phoenix does.
//
//go:noinline
func (s *session) stale(m *hub.Message) {
	s.e.count.stale.Add(1)
	s.e.log.Debug("stale join_ref dropped", "conn", s.conn.Key(), "topic", m.Topic, "join_ref", m.JoinRef, "event", m.Event)
}

// forget removes ch from the session if it is still the channel of its topic.
func (s *session) forget(ch *channel) {
	s.mu.Lock()
	if s.chans[ch.topic] == ch {
		delete(s.chans, ch.topic)
	}
	s.mu.Unlock()
}

// Closed ends every channel of the socket.
func (s *session) Closed(reason error) {
	why := stopClosed
	if errors.Is(reason, hub.ErrShutdown) {
		why = stopShutdown
	}
	s.mu.Lock()
	s.closed = true
	chans := s.chans
	s.chans = nil
	s.mu.Unlock()
	for _, ch := range chans {
		ch.stop(why)
	}
}
