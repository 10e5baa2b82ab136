package scripttest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/luachan/luachan/engine"
	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/luabind"
	"github.com/luachan/luachan/store"
)

// Waits of a test's operations, in real time. None of them is slept through: each ends as
// soon as what it waits for happens.
const (
	// settleTimeout bounds the wait for the engine to finish what a test's step caused:
	// callbacks are bounded by the CPU budget, so only a runaway chain of them reaches it.
	settleTimeout = 5 * time.Second
	// assertWait is how long an assertion looks for a message after the engine settled.
	assertWait = time.Second
	// maxFiresAtOnce bounds the timers fired without the clock moving (socket:after(0)
	// rescheduling itself).
	maxFiresAtOnce = 10000
)

// env is one test's world: a hub and an engine of its own on the scripts folder, with a
// fresh memory store (its ttls on the virtual clock), presence and virtual clock. It
// implements luabind.TestHost.
type env struct {
	ctx      context.Context
	cancel   context.CancelFunc
	clock    *virtualClock
	hub      *hub.Hub
	bus      *recorder
	eng      *engine.Engine
	longPoll http.Handler
	refs     atomic.Uint64
	wg       sync.WaitGroup // the sockets' pollers

	mu      sync.Mutex // guards sockets
	sockets []*socket
}

var _ luabind.TestHost = (*env)(nil)

// handlerRef lets the hub be built before the engine it hands sockets to.
type handlerRef struct{ hub.Handler }

// newEnv starts a hub and an engine on cfg.Dir, without watching it (Config.Watch off).
func newEnv(ctx context.Context, cfg *Config, log *slog.Logger) (*env, error) {
	e := &env{clock: newVirtualClock(time.Now().Truncate(time.Millisecond))}
	e.ctx, e.cancel = context.WithCancel(ctx)
	var handler handlerRef
	e.hub = hub.New(hub.Config{
		Handler:        &handler,
		Logger:         log,
		IdleTimeout:    time.Hour, // a test's socket is never idle for the hub
		MaxMessageRate: -1,
		LongPollWindow: time.Hour, // a poll waits until something comes or the session ends
	})
	e.bus = newRecorder(e.hub)
	eng, err := engine.New(engine.Config{
		Dir:           cfg.Dir,
		Hub:           e.bus,
		Logger:        log,
		ScriptTimeout: cfg.ScriptTimeout,
		Secret:        cfg.Secret,
		Store:         store.NewMemoryClock(e.clock.Now), // ttls run on the virtual clock too
		Clock:         e.clock,
	})
	if err != nil {
		e.cancel()
		return nil, err
	}
	if err := eng.Start(e.ctx); err != nil {
		_ = eng.Close(context.Background()) // the workers Start began
		e.cancel()
		return nil, err
	}
	e.eng = eng
	handler.Handler = eng
	e.longPoll = e.hub.LongPollHandler()
	return e, nil
}

// scriptOptions are the options of the test file's VM: the engine's host, so luachan.store
// and luachan.broadcast reach it, and the virtual clock.
func (e *env) scriptOptions(cfg *Config, log *slog.Logger) luabind.Options {
	return luabind.Options{
		Dir: cfg.Dir, Timeout: cfg.ScriptTimeout, Logger: log, Host: e.eng,
		Secret: cfg.Secret, Now: e.clock.Now,
	}
}

// close closes every socket (their channels' leave runs) and stops the engine.
func (e *env) close() {
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	_ = e.hub.Close(ctx)
	e.cancel() // pollers still waiting stop
	e.wg.Wait()
	_ = e.eng.Close(ctx)
}

func (e *env) nextRef() string { return strconv.FormatUint(e.refs.Add(1), 10) }

// settle waits until the engine has done everything the test's last step caused: every
// callback returned, the timers due by now fired (in order, each settled before the next)
// and what was sent reached the sockets' inboxes.
func (e *env) settle() error {
	ctx, cancel := context.WithTimeout(e.ctx, settleTimeout)
	defer cancel()
	for fired := 0; ; fired++ {
		if err := e.eng.WaitIdle(ctx); err != nil {
			return fmt.Errorf("the engine was still busy after %v", settleTimeout)
		}
		t := e.clock.next(e.clock.Now())
		if t == nil {
			break
		}
		if fired == maxFiresAtOnce {
			return fmt.Errorf("%d socket:after timers fell due without the clock moving (a socket:after(0) loop?)", fired)
		}
		t.f()
	}
	e.mu.Lock()
	socks := append([]*socket(nil), e.sockets...)
	e.mu.Unlock()
	for _, s := range socks {
		if s.isClosed() {
			continue
		}
		if err := s.barrier(ctx); err != nil {
			return fmt.Errorf("the server did not answer a heartbeat within %v", settleTimeout)
		}
	}
	return nil
}

// channel is a joined channel as the test holds it.
type channel struct {
	sock    *socket
	topic   string
	joinRef string
}

// Connect is t.connect.
func (e *env) Connect(params map[string]string, authToken string) (any, string, error) {
	s, refused, err := e.connect(params, authToken)
	if err != nil || s == nil {
		return nil, refused, err
	}
	return s, "", e.settle()
}

// call sends a frame and returns its reply once the engine settled; ok is false when
// none came.
func (e *env) call(s *socket, joinRef, topic, event string, payload []byte) (f frame, ok bool, err error) {
	ref := e.nextRef()
	if joinRef == "" && event == "phx_join" {
		joinRef = ref
	}
	if err := s.send(joinRef, ref, topic, event, payload); err != nil {
		return frame{}, false, err
	}
	if err := e.settle(); err != nil {
		return frame{}, false, err
	}
	f, ok = s.reply(ref)
	return f, ok, nil
}

// Join is t.join.
func (e *env) Join(sock any, topic string, payload []byte) (any, luabind.TestReply, error) {
	s := sock.(*socket)
	f, ok, err := e.call(s, "", topic, "phx_join", payload)
	if err != nil {
		return nil, luabind.TestReply{}, fmt.Errorf("join %s: %w", topic, err)
	}
	if !ok {
		return nil, luabind.TestReply{}, fmt.Errorf("join %s: no reply came", topic)
	}
	status, response := replyOf(f)
	reply := luabind.TestReply{Status: status, Response: response}
	if status != "ok" {
		return nil, reply, nil
	}
	return &channel{sock: s, topic: topic, joinRef: f.joinRef}, reply, nil
}

// Push is t.push.
func (e *env) Push(ch any, event string, payload []byte) (*luabind.TestReply, error) {
	c := ch.(*channel)
	f, ok, err := e.call(c.sock, c.joinRef, c.topic, event, payload)
	if err != nil {
		return nil, fmt.Errorf("push %q on %s: %w", event, c.topic, err)
	}
	if !ok {
		if crash, crashed := c.find("phx_error", nil); crashed {
			return nil, fmt.Errorf("push %q on %s: the channel crashed (%s); its error is in the log", event, c.topic, show(crash.event, crash.payload))
		}
		return nil, nil
	}
	status, response := replyOf(f)
	return &luabind.TestReply{Status: status, Response: response}, nil
}

// Leave is t.leave.
func (e *env) Leave(ch any) error {
	c := ch.(*channel)
	if _, _, err := e.call(c.sock, c.joinRef, c.topic, "phx_leave", []byte(`{}`)); err != nil {
		return fmt.Errorf("leave %s: %w", c.topic, err)
	}
	return nil
}

// BroadcastFromOutside is t.broadcast_from_outside: what POST /api/broadcast does.
func (e *env) BroadcastFromOutside(topic, event string, payload []byte) error {
	if err := e.eng.Publish(&hub.Broadcast{Topic: topic, Event: event, Payload: payload}); err != nil {
		return fmt.Errorf("broadcast_from_outside: %w", err)
	}
	return e.settle()
}

// find returns the first message of event whose payload holds want the channel received,
// without taking it.
func (c *channel) find(event string, want []byte) (frame, bool) {
	c.sock.mu.Lock()
	defer c.sock.mu.Unlock()
	for _, f := range c.sock.inbox {
		if c.owns(f) && f.event == event && contains(f.payload, want) {
			return f, true
		}
	}
	return frame{}, false
}

// owns reports whether f was sent to this channel: a push of this join, or a broadcast on
// its topic.
func (c *channel) owns(f frame) bool {
	return f.topic == c.topic && (f.joinRef == "" || f.joinRef == c.joinRef)
}

// take removes and returns the first message for c of event whose payload holds want,
// waiting up to assertWait for it; otherwise it lists what c did receive.
func (c *channel) take(ctx context.Context, event string, want []byte) ([]byte, []frame, bool) {
	deadline := time.NewTimer(assertWait)
	defer deadline.Stop()
	for {
		s := c.sock
		s.mu.Lock()
		var seen []frame
		for i, f := range s.inbox {
			if !c.owns(f) {
				continue
			}
			if f.event == event && contains(f.payload, want) {
				s.inbox = append(s.inbox[:i:i], s.inbox[i+1:]...)
				s.mu.Unlock()
				return f.payload, nil, true
			}
			seen = append(seen, f)
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return nil, seen, false
		case <-ctx.Done():
			return nil, seen, false
		}
	}
}

// AssertPush is t.assert_push.
func (e *env) AssertPush(ch any, event string, want []byte) ([]byte, error) {
	c := ch.(*channel)
	if err := e.settle(); err != nil {
		return nil, fmt.Errorf("assert_push: %w", err)
	}
	got, seen, ok := c.take(e.ctx, event, want)
	if !ok {
		return nil, fmt.Errorf("assert_push: expected %s on %s, got %s", expected(event, want), c.topic, list(seen))
	}
	return got, nil
}

// RefutePush is t.refute_push.
func (e *env) RefutePush(ch any, event string, want []byte) error {
	c := ch.(*channel)
	if err := e.settle(); err != nil {
		return fmt.Errorf("refute_push: %w", err)
	}
	if f, ok := c.find(event, want); ok {
		return fmt.Errorf("refute_push: expected no %s on %s, got %s", expected(event, want), c.topic, show(f.event, f.payload))
	}
	return nil
}

// AssertBroadcast is t.assert_broadcast.
func (e *env) AssertBroadcast(topic, event string, want []byte) ([]byte, error) {
	if err := e.settle(); err != nil {
		return nil, fmt.Errorf("assert_broadcast: %w", err)
	}
	got, seen, ok := e.bus.take(e.ctx, topic, event, want)
	if !ok {
		return nil, fmt.Errorf("assert_broadcast: expected %s on %s, got %s", expected(event, want), topic, list(seen))
	}
	return got, nil
}

// Advance is t.advance: the clock moves to each timer due within ms in turn, fires it and
// lets the engine settle (so a timer set by handle_info can still fall due), then to the end.
func (e *env) Advance(ms int64) error {
	if err := e.settle(); err != nil {
		return fmt.Errorf("advance: %w", err)
	}
	until := e.clock.Now().Add(time.Duration(ms) * time.Millisecond)
	for fired := 0; ; fired++ {
		t := e.clock.next(until)
		if t == nil {
			break
		}
		if fired == maxFiresAtOnce*10 {
			return fmt.Errorf("advance: over %d socket:after timers in %d ms", fired, ms)
		}
		t.f()
		if err := e.settle(); err != nil {
			return fmt.Errorf("advance: %w", err)
		}
	}
	e.clock.set(until)
	if err := e.settle(); err != nil {
		return fmt.Errorf("advance: %w", err)
	}
	return nil
}

// list describes the messages an assertion saw instead of the one it wanted.
func list(seen []frame) string {
	if len(seen) == 0 {
		return "nothing"
	}
	parts := make([]string, len(seen))
	for i, f := range seen {
		parts[i] = show(f.event, f.payload)
	}
	return strings.Join(parts, ", ")
}
