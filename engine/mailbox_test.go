package engine

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recordingHandler is a mailbox's eventHandler that records what it runs. An
// event whose info is "block" waits in handle until release is closed; one
// whose info is "panic" panics.
type recordingHandler struct {
	started chan struct{} // a "block" event began
	release chan struct{}

	mu      sync.Mutex
	handled []string // info of each event handled, in order
	panics  []string // info of each event whose handling panicked

	running atomic.Int32
	overlap atomic.Bool // two events ran at once
}

func newRecordingHandler() *recordingHandler {
	return &recordingHandler{started: make(chan struct{}, 1), release: make(chan struct{})}
}

func (h *recordingHandler) handle(ev event) {
	if h.running.Add(1) > 1 {
		h.overlap.Store(true)
	}
	defer h.running.Add(-1)
	h.mu.Lock()
	h.handled = append(h.handled, string(ev.info))
	h.mu.Unlock()
	switch string(ev.info) {
	case "block":
		h.started <- struct{}{}
		<-h.release
	case "panic":
		panic("test: panic in handle")
	}
}

func (h *recordingHandler) panicked(ev event, p any) {
	h.mu.Lock()
	h.panics = append(h.panics, fmt.Sprint(string(ev.info), ": ", p))
	h.mu.Unlock()
}

func (h *recordingHandler) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.handled)
}

// newTestMailbox returns a mailbox of h holding at most max events, and the
// busy group it counts its owners in.
func newTestMailbox(h *recordingHandler, max int) (*mailbox, *busyGroup) {
	busy := &busyGroup{}
	m := newMailbox(h, busy, max)
	return &m, busy
}

// infoEvent is an event for handle_info carrying s, the name the handler records.
func infoEvent(s string) event { return event{kind: evInfo, info: []byte(s)} }

// post is channel.post without the channel: put, and run what it acquires.
func post(tb testing.TB, m *mailbox, ev event) putResult {
	tb.Helper()
	r := m.put(ev)
	if r == putAcquired {
		m.start()
	}
	return r
}

// waitIdle waits until no goroutine owns a mailbox counted in busy.
func waitIdle(tb testing.TB, busy *busyGroup) {
	tb.Helper()
	done := make(chan struct{})
	go func() { busy.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(rigTimeout):
		tb.Fatalf("mailbox still owned after %v (%d owners)", rigTimeout, busy.n.Load())
	}
}

// started waits until h's "block" event runs.
func (h *recordingHandler) waitStarted(tb testing.TB) {
	tb.Helper()
	select {
	case <-h.started:
	case <-time.After(rigTimeout):
		tb.Fatal("the blocking event never ran")
	}
}

func TestMailboxRunsEventsInOrder(t *testing.T) {
	h := newRecordingHandler()
	m, busy := newTestMailbox(h, 1000)
	var want []string
	for i := range 100 {
		want = append(want, fmt.Sprint(i))
		post(t, m, infoEvent(want[i]))
	}
	waitIdle(t, busy)
	if got := h.got(); !slices.Equal(got, want) {
		t.Errorf("handled %v, want %v", got, want)
	}
	if m.owned || m.queue != nil {
		t.Errorf("idle mailbox: owned %v, queue %v", m.owned, m.queue)
	}
}

// TestMailboxHandOffUnderContention: many goroutines post, and some run
// events in place as a socket's reader does; every event runs once, one at a
// time, each poster's in the order it posted them, and the mailbox ends idle.
func TestMailboxHandOffUnderContention(t *testing.T) {
	const posters, each = 8, 300
	h := newRecordingHandler()
	m, busy := newTestMailbox(h, posters*each)
	var wg sync.WaitGroup
	for p := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				ev := infoEvent(fmt.Sprintf("%d/%d", p, i))
				if p%2 == 0 && m.runNow(ev) {
					continue
				}
				if r := post(t, m, ev); r != putQueued && r != putAcquired {
					t.Errorf("put: %d", r)
				}
			}
		}()
	}
	wg.Wait()
	waitIdle(t, busy)
	if h.overlap.Load() {
		t.Error("two events ran at once")
	}
	got := h.got()
	if len(got) != posters*each {
		t.Fatalf("handled %d events, want %d", len(got), posters*each)
	}
	next := make([]int, posters)
	for _, s := range got {
		var p, i int
		fmt.Sscanf(s, "%d/%d", &p, &i)
		if i != next[p] {
			t.Fatalf("poster %d: event %d ran where %d was due", p, i, next[p])
		}
		next[p]++
	}
}

// TestMailboxStopWhileRunning: stop during an event puts its event next,
// drops what waits but a leave, and the mailbox takes only leaves after.
func TestMailboxStopWhileRunning(t *testing.T) {
	h := newRecordingHandler()
	m, busy := newTestMailbox(h, 100)
	post(t, m, infoEvent("block"))
	h.waitStarted(t)
	post(t, m, infoEvent("dropped"))
	post(t, m, event{kind: evIntercepted, info: []byte("dropped broadcast")})
	post(t, m, event{kind: evLeave, info: []byte("leave")})
	if !m.hasUnsentBroadcasts() {
		t.Error("a queued broadcast is not counted")
	}

	closed, acquired := m.stop(infoEvent("stop"))
	if !closed || acquired {
		t.Errorf("stop while running: closed %v, acquired %v; want true, false", closed, acquired)
	}
	if m.hasUnsentBroadcasts() {
		t.Error("a dropped broadcast is still counted")
	}
	if closed, _ := m.stop(infoEvent("stop again")); closed {
		t.Error("a second stop closed the mailbox again")
	}
	if r := m.put(infoEvent("after stop")); r != putRefused {
		t.Errorf("put after stop: %d, want putRefused", r)
	}
	if r := m.put(event{kind: evLeave, info: []byte("late leave")}); r != putQueued {
		t.Errorf("leave after stop: %d, want putQueued", r)
	}
	if !m.isClosed() {
		t.Error("stopped mailbox is not closed")
	}
	close(h.release)
	waitIdle(t, busy)
	want := []string{"block", "stop", "leave", "late leave"}
	if got := h.got(); !slices.Equal(got, want) {
		t.Errorf("handled %v, want %v", got, want)
	}
}

// TestMailboxStopIdle: stop of an idle mailbox acquires it for the caller.
func TestMailboxStopIdle(t *testing.T) {
	h := newRecordingHandler()
	m, busy := newTestMailbox(h, 100)
	closed, acquired := m.stop(infoEvent("stop"))
	if !closed || !acquired {
		t.Fatalf("stop when idle: closed %v, acquired %v; want true, true", closed, acquired)
	}
	if m.runNow(infoEvent("in place")) {
		t.Error("runNow ran in a stopped mailbox")
	}
	m.start()
	waitIdle(t, busy)
	if got := h.got(); !slices.Equal(got, []string{"stop"}) {
		t.Errorf("handled %v, want [stop]", got)
	}
}

// TestMailboxPanicInRun: a panic in handling an event, on the mailbox's
// goroutine or in place, goes to the handler, and later events still run.
func TestMailboxPanicInRun(t *testing.T) {
	h := newRecordingHandler()
	m, busy := newTestMailbox(h, 100)
	post(t, m, infoEvent("block"))
	h.waitStarted(t)
	post(t, m, infoEvent("panic"))
	post(t, m, infoEvent("after"))
	close(h.release)
	waitIdle(t, busy)
	if !m.runNow(infoEvent("panic")) {
		t.Fatal("runNow did not run in an idle mailbox")
	}
	waitIdle(t, busy)
	if !m.runNow(infoEvent("last")) {
		t.Fatal("runNow did not run after a panic")
	}
	want := []string{"block", "panic", "after", "panic", "last"}
	if got := h.got(); !slices.Equal(got, want) {
		t.Errorf("handled %v, want %v", got, want)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.panics) != 2 || !strings.Contains(h.panics[0], "test: panic in handle") {
		t.Errorf("panics reported: %q, want two", h.panics)
	}
}

// TestMailboxHandOffProtectsFirst: a worker's hand-off runs its first step
// before the queued events, and a panic there goes to the handler.
func TestMailboxHandOffProtectsFirst(t *testing.T) {
	h := newRecordingHandler()
	m, busy := newTestMailbox(h, 100)
	if m.put(infoEvent("queued")) != putAcquired {
		t.Fatal("put in an idle mailbox did not acquire it")
	}
	m.handOff(infoEvent("handed"), func() { panic("test: panic in first") })
	waitIdle(t, busy)
	if got := h.got(); !slices.Equal(got, []string{"queued"}) {
		t.Errorf("handled %v, want [queued]", got)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.panics) != 1 || !strings.HasPrefix(h.panics[0], "handed: test: panic in first") {
		t.Errorf("panics reported: %q", h.panics)
	}
}

// TestMailboxLeaveIntoFullMailbox: a full mailbox refuses events (the caller
// closes the socket) but takes a leave, which then runs.
func TestMailboxLeaveIntoFullMailbox(t *testing.T) {
	h := newRecordingHandler()
	m, busy := newTestMailbox(h, 2)
	post(t, m, infoEvent("block"))
	h.waitStarted(t)
	post(t, m, infoEvent("1"))
	post(t, m, infoEvent("2"))
	if r := m.put(infoEvent("3")); r != putFull {
		t.Errorf("put into a full mailbox: %d, want putFull", r)
	}
	if r := m.put(event{kind: evLeave, info: []byte("leave")}); r != putQueued {
		t.Errorf("leave into a full mailbox: %d, want putQueued", r)
	}
	close(h.release)
	waitIdle(t, busy)
	want := []string{"block", "1", "2", "leave"}
	if got := h.got(); !slices.Equal(got, want) {
		t.Errorf("handled %v, want %v", got, want)
	}
}

// TestMailboxWorkerTurn: the owner takes only the events its turn accepts,
// keeps the mailbox while events wait, and releases it once empty.
func TestMailboxWorkerTurn(t *testing.T) {
	h := newRecordingHandler()
	m, busy := newTestMailbox(h, 100)
	if m.put(event{kind: evFast, info: []byte("fast")}) != putAcquired {
		t.Fatal("put in an idle mailbox did not acquire it")
	}
	m.put(infoEvent("timer"))
	isBroadcast := func(ev event) bool { return ev.isBroadcast() }
	if ev, ok := m.nextIf(isBroadcast); !ok || string(ev.info) != "fast" {
		t.Fatalf("nextIf = %q, %v; want fast", ev.info, ok)
	}
	if m.headIs(isBroadcast) {
		t.Error("headIs accepts a timer event")
	}
	if _, ok := m.nextIf(isBroadcast); ok {
		t.Error("nextIf took a timer event")
	}
	m.broadcastsSent(1)
	if m.hasUnsentBroadcasts() {
		t.Error("the broadcast sent is still counted")
	}
	if m.release() {
		t.Fatal("release gave up a mailbox with an event waiting")
	}
	if m.runNow(infoEvent("in place")) {
		t.Error("runNow ran in an owned mailbox")
	}
	m.start()
	waitIdle(t, busy)
	if got := h.got(); !slices.Equal(got, []string{"timer"}) {
		t.Errorf("handled %v, want [timer]", got)
	}
}
