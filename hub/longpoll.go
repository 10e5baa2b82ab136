package hub

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Phoenix's LongPoll transport (lib/phoenix/transports/long_poll.ex, and the JS
// client's longpoll.js), for networks that block WebSockets. A session is a Conn
// without a socket:
//
//	GET  without a token   Handler.Connect; {"status":410,"token":T,"messages":[]} opens
//	                       the session (403 if refused)
//	GET  ?token=T          waits up to LongPollWindow for queued frames:
//	                       {"status":200,"token":T,"messages":["<frame>",...]}, or 204
//	                       with none; 410 once the session is gone
//	POST ?token=T          a frame, or with Content-Type application/x-ndjson one frame
//	                       a line (binary pushes in base64): {"status":200}, 410 if gone
//	OPTIONS                CORS preflight
//
// Every answer is a JSON object whose "status" is what the client acts on; the HTTP
// status is the same for errors, and 200 for 200, 204 and 410. The Phoenix client sends
// no heartbeats over LongPoll: a session is idle when no request arrives for
// IdleTimeout while no poll is waiting.
//
// Unlike Phoenix, a session lives on the node that opened it (a load balancer must keep
// a client on one node), and an unknown token answers 410 without opening a session
// (Phoenix opens one that the JS client then ignores).

// DefaultLongPollWindow is Phoenix's window_ms: how long a poll waits for messages.
const DefaultLongPollWindow = 10 * time.Second

const (
	// DefaultMaxLongPollSessions bounds the LongPoll sessions open at once: each holds a
	// goroutine, a timer and its queue for up to the idle timeout.
	DefaultMaxLongPollSessions = 10000
	// DefaultMaxLongPollPerAddr bounds the sessions open from one remote address: room
	// for a NAT full of clients, not for one client opening sessions in a loop.
	DefaultMaxLongPollPerAddr = 256
	// refusalLogEvery is the least time between two log lines about refused sessions.
	refusalLogEvery = 10 * time.Second
)

// Request fields of the LongPoll protocol.
const (
	longPollTokenParam = "token"               // query parameter naming the session
	longPollAuthHeader = "X-Phoenix-AuthToken" // the 1.8 JS client's authToken
	ndjsonType         = "application/x-ndjson"
)

// longPoll is the state a LongPoll Conn has besides the Conn's own.
type longPoll struct {
	token    string
	addr     string        // the remote IP address its slot is counted under
	unsent   [][]byte      // guarded by Conn.w.mu: frames an answer took but failed to deliver
	closeReq chan struct{} // closed by the first close request (see Conn.closeRequested)
	taken    chan struct{} // capacity 1: a poll took frames from a closing session
	polls    atomic.Int32  // polls waiting for frames
	lastSeen atomic.Int64  // monoNow of the latest request's start or end

	// handleMu serialises the POSTs' frames, so the Session sees them one at a time in
	// order, and lets the end of the session wait for the last Handle to return.
	handleMu sync.Mutex
	ended    bool // guarded by handleMu: Session.Closed is due, no Handle may start
}

// touch records activity on the session.
func (lp *longPoll) touch() { lp.lastSeen.Store(monoNow()) }

// LongPollHandler serves Phoenix's LongPoll transport; mount it at /socket/longpoll. Its
// sessions are Conns like the WebSocket ones: the same Handler decides who connects and
// receives their frames, and Disconnect, Close, the idle timeout, the rate limit and
// the outbound queue bound apply to them alike.
func (h *Hub) LongPollHandler() http.Handler {
	return http.HandlerFunc(h.serveLongPoll)
}

// serveLongPoll routes one LongPoll request to its session, or opens one.
func (h *Hub) serveLongPoll(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*") // the Origin is checked below
	origin := r.Header.Get("Origin")
	if !h.originAllowed(origin) {
		h.log.Debug("origin refused", "remote", r.RemoteAddr, "origin", origin)
		longPollStatus(w, http.StatusForbidden)
		return
	}
	switch r.Method {
	case http.MethodOptions:
		w.Header().Set("Access-Control-Allow-Headers", r.Header.Get("Access-Control-Request-Headers"))
		w.Header().Set("Access-Control-Allow-Methods", "get, post, options")
		w.Header().Set("Access-Control-Max-Age", "3600")
		w.WriteHeader(http.StatusOK)
		return
	case http.MethodGet, http.MethodPost:
	default:
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if !h.admit() {
		longPollStatus(w, http.StatusInternalServerError) // the JS client retries later
		return
	}
	defer h.wg.Done()

	token := r.URL.Query().Get(longPollTokenParam)
	if token == "" {
		if r.Method == http.MethodGet {
			h.openLongPoll(w, r)
			return
		}
		longPollStatus(w, http.StatusGone)
		return
	}
	h.mu.Lock()
	c := h.polls[token]
	h.mu.Unlock()
	switch {
	case c == nil:
		longPollStatus(w, http.StatusGone)
	case r.Method == http.MethodGet:
		c.poll(w, r)
	default:
		c.publish(w, r)
	}
}

// openLongPoll asks the Handler whether the client may connect and opens its session.
func (h *Hub) openLongPoll(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	format, ok := formatFromQuery(q)
	if !ok {
		longPollStatus(w, http.StatusForbidden)
		return
	}
	q.Del("vsn")
	q.Del(longPollTokenParam)
	addr := remoteIP(r.RemoteAddr)
	if !h.takeLongPollSlot(w, addr) {
		return
	}
	ok, id, state := h.cfg.Handler.Connect(&ConnectRequest{
		Ctx:       r.Context(),
		Params:    q,
		AuthToken: r.Header.Get(longPollAuthHeader),
		Origin:    r.Header.Get("Origin"),
		RemoteIP:  addr,
	})
	if !ok {
		h.lpSlots.release(addr)
		longPollStatus(w, http.StatusForbidden)
		return
	}
	token, err := newLongPollToken()
	if err != nil {
		h.lpSlots.release(addr)
		h.log.Error("long poll token", "reason", err)
		longPollStatus(w, http.StatusInternalServerError)
		return
	}
	c := newConn(h, nil, nil, format, id, state, r.RemoteAddr)
	c.lp = &longPoll{token: token, addr: addr, closeReq: make(chan struct{}), taken: make(chan struct{}, 1)}
	c.lp.touch()
	h.count.longPolls.Add(1)
	h.addConn(c)
	c.session = h.cfg.Handler.Open(c)
	if c.session == nil {
		c.session = nopSession{}
	}
	h.wg.Add(1) // within this admitted request, so never after Close's Wait began
	go c.runLongPoll()
	writeLongPoll(w, http.StatusGone, token, nil)
}

// longPollSlots counts the LongPoll sessions open, in all and by remote address, so that
// neither a flood of session-opening GETs nor one address can hold unbounded goroutines.
type longPollSlots struct {
	mu       sync.Mutex
	total    int
	byAddr   map[string]int
	lastLog  time.Time // when a refusal was last logged
	unlogged uint64    // refusals since then
}

// errTooManySessions and errTooManyFromAddr are why a slot was refused.
var (
	errTooManySessions = errors.New("hub: too many LongPoll sessions open")
	errTooManyFromAddr = errors.New("hub: too many LongPoll sessions open from one address")
)

// acquire takes a slot for a session from addr, or says which bound refused it.
func (s *longPollSlots) acquire(addr string, maxTotal, maxPerAddr int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.byAddr[addr] >= maxPerAddr:
		return errTooManyFromAddr
	case s.total >= maxTotal:
		return errTooManySessions
	}
	if s.byAddr == nil {
		s.byAddr = make(map[string]int)
	}
	s.total++
	s.byAddr[addr]++
	return nil
}

// release gives back a slot acquire took for addr.
func (s *longPollSlots) release(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.byAddr[addr]--; s.byAddr[addr] <= 0 {
		delete(s.byAddr, addr)
	}
}

// refused records one refusal and reports whether to log it, with the refusals not
// logged since the last line: at most one line every refusalLogEvery.
func (s *longPollSlots) refused(now time.Time) (log bool, since uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unlogged++
	if now.Sub(s.lastLog) < refusalLogEvery {
		return false, 0
	}
	since, s.unlogged, s.lastLog = s.unlogged, 0, now
	return true, since
}

// takeLongPollSlot takes a session slot for addr, or answers the GET: HTTP 429 over the
// per-address bound, 503 over the total one, each with a plain-text body the JS client
// does not parse, so it retries later.
func (h *Hub) takeLongPollSlot(w http.ResponseWriter, addr string) bool {
	err := h.lpSlots.acquire(addr, h.cfg.MaxLongPollSessions, h.cfg.MaxLongPollPerAddr)
	if err == nil {
		return true
	}
	h.count.lpRefused.Add(1)
	if log, n := h.lpSlots.refused(time.Now()); log {
		h.log.Warn("long poll sessions refused", "reason", err, "remote", addr, "refused", n,
			"max_sessions", h.cfg.MaxLongPollSessions, "max_per_addr", h.cfg.MaxLongPollPerAddr)
	}
	w.Header().Set("Retry-After", "10")
	if errors.Is(err, errTooManyFromAddr) {
		http.Error(w, fmt.Sprintf("luachan: too many LongPoll sessions from %s (at most %d); close some or retry later",
			addr, h.cfg.MaxLongPollPerAddr), http.StatusTooManyRequests)
		return false
	}
	http.Error(w, fmt.Sprintf("luachan: too many LongPoll sessions on this server (at most %d); retry later or use another node",
		h.cfg.MaxLongPollSessions), http.StatusServiceUnavailable)
	return false
}

// newLongPollToken returns an unguessable session token.
func newLongPollToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// runLongPoll owns a LongPoll session: it closes the session when it goes idle, and
// once it is closing lets a poll collect what is queued, then ends it.
func (c *Conn) runLongPoll() {
	defer c.hub.wg.Done()
	lp, idle := c.lp, c.hub.cfg.IdleTimeout
	timer := time.NewTimer(idle)
	defer timer.Stop()
	for open := true; open; {
		select {
		case <-lp.closeReq:
			open = false
		case <-timer.C:
			since := time.Duration(monoNow() - lp.lastSeen.Load())
			switch {
			case lp.polls.Load() > 0:
				timer.Reset(idle)
			case since < idle:
				timer.Reset(idle - since)
			default:
				// Nobody is polling: what is queued could not be delivered anyway.
				if c.closeWith(CloseGoingAway, "idle timeout", ErrIdle, false) {
					c.hub.count.idleClosed.Add(1)
					c.logger().Debug("idle long poll session closed", "reason", ErrIdle)
				}
			}
		}
	}

	// A closing session keeps what was queued before the close (unless the close
	// dropped it) for the client's next poll, for up to closeWait.
	grace := time.NewTimer(closeWait)
	defer grace.Stop()
	for expired := false; c.queuedBytes() > 0; {
		if expired {
			c.w.mu.Lock()
			c.w.q.drop()
			c.dropUnsentLocked()
			c.w.mu.Unlock()
			if c.queuedBytes() > 0 {
				<-lp.taken // a poll is still writing its answer; it signals when done
			}
			continue
		}
		select {
		case <-lp.taken:
		case <-grace.C:
			expired = true
		}
	}

	lp.handleMu.Lock()
	lp.ended = true // a POST still running has returned; no Handle starts after this
	lp.handleMu.Unlock()
	c.hub.removeConn(c)
	c.hub.lpSlots.release(lp.addr)
	c.w.wakeUp() // a poll that arrived meanwhile answers 410
	c.ended()
}

// dropUnsentLocked discards the frames a failed answer left for the next poll.
func (c *Conn) dropUnsentLocked() {
	c.w.q.wrote(framesSize(c.lp.unsent))
	c.lp.unsent = nil
}

// framesSize is how many bytes frames hold, as the queue counts them.
func framesSize(frames [][]byte) (n int) {
	for _, f := range frames {
		n += len(f)
	}
	return n
}

// queuedBytes returns how many bytes wait in the outbound queue, or in an answer that
// has not been delivered.
func (c *Conn) queuedBytes() int {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	return c.w.q.size()
}

// poll answers a GET: the frames queued so far, or those that arrive within
// LongPollWindow, or 204, or 410 once the session is closing with nothing left.
//
// Frames taken for an answer stay counted in the queue until the answer is written and
// flushed; when it is not (the client went away), they are kept, ahead of the queue, for
// the next poll. An answer the kernel accepted whose client then vanished cannot be told
// apart from a delivered one: the JS client then opens a new session and rejoins.
func (c *Conn) poll(w http.ResponseWriter, r *http.Request) {
	lp := c.lp
	lp.polls.Add(1)
	lp.touch()
	defer func() {
		lp.touch()
		lp.polls.Add(-1)
	}()
	window := time.NewTimer(c.hub.cfg.LongPollWindow)
	defer window.Stop()
	for {
		if r.Context().Err() != nil {
			return // the client is gone; nothing was taken
		}
		c.w.mu.Lock()
		frames := lp.unsent
		lp.unsent = nil
		if c.w.q.queued > 0 {
			frames = append(frames, c.w.q.take(nil)...)
		}
		closing := c.w.closing
		c.w.mu.Unlock()
		switch {
		case len(frames) > 0:
			c.deliver(w, frames)
			select { // a closing session's end waits for its frames to be delivered
			case lp.taken <- struct{}{}:
			default:
			}
			return
		case closing:
			longPollStatus(w, http.StatusGone)
			return
		}
		select {
		case <-c.w.wake:
		case <-lp.closeReq: // every waiting poll sees the close, not just one
		case <-window.C:
			_ = writeLongPoll(w, http.StatusNoContent, lp.token, nil) // nothing is lost when this does not arrive
			return
		case <-r.Context().Done():
			return // the client is gone; nothing was taken
		}
	}
}

// deliver answers a poll with frames, taken from the queue (their bytes still counted),
// and flushes the answer. When that fails the frames go back ahead of the queue for the
// next poll; when it succeeds their bytes are uncounted.
func (c *Conn) deliver(w http.ResponseWriter, frames [][]byte) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(writeWait)) // unsupported only by test recorders
	err := writeLongPoll(w, http.StatusOK, c.lp.token, frames)
	if err == nil {
		err = rc.Flush()
	}
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	if err == nil {
		c.w.q.wrote(framesSize(frames))
		return
	}
	c.lp.unsent = append(frames, c.lp.unsent...)
	c.logger().Debug("long poll answer not delivered; its frames wait for the next poll",
		"reason", err, "frames", len(frames))
}

// publish answers a POST: its frames go to the Session one at a time, in order, as
// from a WebSocket.
func (c *Conn) publish(w http.ResponseWriter, r *http.Request) {
	lp := c.lp
	lp.touch()
	defer lp.touch()
	limit := c.hub.cfg.MaxFrameSize
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			c.reject(CloseTooBig, fmt.Errorf("%w: over %d bytes", ErrTooBig, limit))
			longPollStatus(w, http.StatusRequestEntityTooLarge)
			return
		}
		longPollStatus(w, http.StatusBadRequest) // the body did not arrive: the session is fine
		return
	}
	frames := [][]byte{body}
	if strings.HasPrefix(r.Header.Get("Content-Type"), ndjsonType) {
		frames = bytes.Split(body, []byte("\n"))
	}

	lp.handleMu.Lock()
	defer lp.handleMu.Unlock()
	for _, f := range frames {
		if lp.ended || c.isClosing() {
			longPollStatus(w, http.StatusGone)
			return
		}
		f = bytes.TrimSuffix(f, []byte("\r"))
		if len(f) == 0 {
			continue
		}
		if !c.allowMessage() {
			longPollStatus(w, http.StatusTooManyRequests)
			return
		}
		m, code, err := c.decodeLongPoll(f)
		if err != nil {
			c.reject(code, err)
			longPollStatus(w, http.StatusBadRequest)
			return
		}
		c.hub.count.framesIn.Add(1)
		if m.isHeartbeat() {
			_ = c.Reply("", m.Ref, phoenixTopic, "ok", nil, false)
			continue
		}
		c.handle(m)
	}
	longPollStatus(w, http.StatusOK)
}

// decodeLongPoll decodes one POSTed frame: JSON text, or a V2 binary push in base64
// (what the JS client makes of an ArrayBuffer). On error it also returns the close code.
func (c *Conn) decodeLongPoll(f []byte) (*Message, int, error) {
	binary := f[0] != '[' && f[0] != '{'
	if binary {
		raw := make([]byte, base64.StdEncoding.DecodedLen(len(f)))
		n, err := base64.StdEncoding.Decode(raw, f)
		if err != nil {
			return nil, CloseUnsupported, badFrame("LongPoll frame is neither JSON nor base64")
		}
		f = raw[:n]
	}
	m, err := Decode(f, c.format, binary, c.hub.cfg.MaxDepth)
	if err != nil {
		if errors.Is(err, ErrBadUTF8) {
			return nil, CloseInvalidUTF8, err
		}
		return nil, CloseUnsupported, err
	}
	return m, 0, nil
}

// longPollStatus answers with just {"status":status}.
func longPollStatus(w http.ResponseWriter, status int) {
	_ = writeLongPoll(w, status, "", nil) // nothing is lost when this does not arrive
}

// writeLongPoll answers {"status":status[,"token":token,"messages":[...]]}: each frame
// (a complete text WebSocket frame from the queue) becomes one JSON string holding its
// body, as Phoenix sends them. Statuses the client treats as normal go out with HTTP 200.
// It returns the error of writing the body.
func writeLongPoll(w http.ResponseWriter, status int, token string, frames [][]byte) error {
	size := 64 + len(token)
	for _, f := range frames {
		size += len(f) + len(f)/8 + 2 // room for escaping the quotes
	}
	buf := make([]byte, 0, size)
	buf = fmt.Appendf(buf, `{"status":%d`, status)
	if token != "" {
		buf = append(buf, `,"token":`...)
		buf = appendString(buf, token)
		buf = append(buf, `,"messages":[`...)
		n := 0
		for _, f := range frames {
			op, body := frameBody(f)
			if op != opText {
				continue // enqueue refuses binary frames for LongPoll; nothing else is queued
			}
			if n > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, string(body))
			n++
		}
		buf = append(buf, ']')
	}
	buf = append(buf, '}')

	code := status
	if status == http.StatusNoContent || status == http.StatusGone {
		code = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, err := w.Write(buf)
	return err
}
