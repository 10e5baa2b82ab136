package hub_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/luachan/luachan/hub"
)

// lpResponse is the body of every LongPoll answer.
type lpResponse struct {
	Status   int      `json:"status"`
	Token    string   `json:"token"`
	Messages []string `json:"messages"`
}

// lpRequest sends one LongPoll request and decodes the answer.
func (ts *testServer) lpRequest(tb testing.TB, method, query string, hdr http.Header, body string) (int, lpResponse) {
	tb.Helper()
	req, err := http.NewRequest(method, ts.srv.URL+"/socket/longpoll?"+query, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := ts.srv.Client().Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, query, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var r lpResponse
	if len(data) > 0 {
		if err := json.Unmarshal(data, &r); err != nil {
			tb.Fatalf("%s %s: body %q: %v", method, query, data, err)
		}
	}
	return resp.StatusCode, r
}

// lpClient is a test's LongPoll session, driven as the Phoenix JS client does.
type lpClient struct {
	tb      testing.TB
	ts      *testServer
	token   string
	session *testSession
}

// openLongPoll opens a session with query (e.g. "vsn=2.0.0").
func (ts *testServer) openLongPoll(tb testing.TB, query string) *lpClient {
	tb.Helper()
	code, r := ts.lpRequest(tb, http.MethodGet, query, nil, "")
	if code != http.StatusOK || r.Status != http.StatusGone || r.Token == "" || r.Messages == nil {
		tb.Fatalf("open: HTTP %d %+v", code, r)
	}
	s := recv(tb, ts.handler.opened, "session to open")
	return &lpClient{tb: tb, ts: ts, token: r.Token, session: s}
}

// poll sends one GET and returns the answer.
func (c *lpClient) poll() lpResponse {
	c.tb.Helper()
	_, r := c.ts.lpRequest(c.tb, http.MethodGet, "token="+url.QueryEscape(c.token), nil, "")
	return r
}

// post sends frames as the JS client batches them.
func (c *lpClient) post(frames ...string) lpResponse {
	c.tb.Helper()
	hdr := http.Header{"Content-Type": {"application/x-ndjson"}}
	_, r := c.ts.lpRequest(c.tb, http.MethodPost, "token="+url.QueryEscape(c.token), hdr, strings.Join(frames, "\n"))
	return r
}

// expectMessages polls until n messages have arrived and returns them.
func (c *lpClient) expectMessages(n int) []string {
	c.tb.Helper()
	var got []string
	for len(got) < n {
		r := c.poll()
		if r.Status != http.StatusOK && r.Status != http.StatusNoContent || r.Token != c.token {
			c.tb.Fatalf("poll: %+v, after %q", r, got)
		}
		got = append(got, r.Messages...)
	}
	if len(got) != n {
		c.tb.Fatalf("got %q, want %d messages", got, n)
	}
	return got
}

func TestLongPollSession(t *testing.T) {
	ts := startServer(t, hub.Config{})
	hdr := http.Header{"X-Phoenix-Authtoken": {"s3cret"}}
	code, r := ts.lpRequest(t, http.MethodGet, "vsn=2.0.0&id=u1&room=7", hdr, "")
	if code != http.StatusOK || r.Status != http.StatusGone || r.Token == "" {
		t.Fatalf("open: HTTP %d %+v", code, r)
	}
	c := &lpClient{tb: t, ts: ts, token: r.Token, session: recv(t, ts.handler.opened, "session")}
	req := ts.handler.lastRequest(t)
	if req.AuthToken != "s3cret" || req.Params.Get("room") != "7" || req.Params.Has("vsn") || req.Params.Has("token") || req.RemoteIP != "127.0.0.1" {
		t.Fatalf("ConnectRequest %+v", req)
	}
	conn := c.session.conn
	if conn.ID() != "u1" || conn.Format() != hub.V2 || ts.hub.Conns() != 1 {
		t.Fatalf("conn id %q format %v, %d conns", conn.ID(), conn.Format(), ts.hub.Conns())
	}

	// A batch: a heartbeat, answered by the hub, and a push for the Session.
	if r := c.post(`[null,"1","phoenix","heartbeat",{}]`, `["3","4","rooms:lobby","new:msg",{"body":"hi"}]`); r.Status != http.StatusOK {
		t.Fatalf("post: %+v", r)
	}
	m := recv(t, c.session.msgs, "pushed message")
	if m.JoinRef != "3" || m.Ref != "4" || m.Topic != "rooms:lobby" || m.Event != "new:msg" {
		t.Fatalf("got %+v", m)
	}
	expectJSON(t, []byte(c.expectMessages(1)[0]), `[null,"1","phoenix","phx_reply",{"status":"ok","response":{}}]`)

	// A poll waits for what comes next: a push, then a broadcast.
	polled := make(chan lpResponse, 1)
	go func() { polled <- c.poll() }()
	if err := conn.Send(&hub.Message{JoinRef: "3", Topic: "rooms:lobby", Event: "pushed", Payload: []byte(`{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	r = recv(t, polled, "poll")
	if r.Status != http.StatusOK || len(r.Messages) != 1 {
		t.Fatalf("poll: %+v", r)
	}
	expectJSON(t, []byte(r.Messages[0]), `["3",null,"rooms:lobby","pushed",{"n":1}]`)

	ts.hub.Subscribe("rooms:lobby", newSub(conn))
	ts.hub.Broadcast(&hub.Broadcast{Topic: "rooms:lobby", Event: "bin", Payload: []byte{1, 2}, Binary: true})
	ts.hub.Broadcast(&hub.Broadcast{Topic: "rooms:lobby", Event: "new:msg", Payload: []byte(`{"body":"\"quoted\"\n"}`)})
	got := c.expectMessages(1) // the binary broadcast cannot reach a LongPoll client
	expectJSON(t, []byte(got[0]), `[null,null,"rooms:lobby","new:msg",{"body":"\"quoted\"\n"}]`)
	if err := conn.Send(&hub.Message{Topic: "t", Event: "e", Payload: []byte{1}, Binary: true}); !errors.Is(err, hub.ErrBinaryLongPoll) {
		t.Fatalf("binary Send: %v", err)
	}
	if st := ts.hub.Stats(); st.LongPolls != 1 || st.Accepted != 0 || st.FramesIn != 2 {
		t.Fatalf("Stats %+v", st)
	}
}

func TestLongPollEmptyPoll(t *testing.T) {
	ts := startServer(t, hub.Config{LongPollWindow: 50 * time.Millisecond})
	c := ts.openLongPoll(t, "vsn=2.0.0")
	start := time.Now()
	if r := c.poll(); r.Status != http.StatusNoContent || r.Token != c.token || r.Messages == nil || len(r.Messages) != 0 {
		t.Fatalf("poll: %+v", r)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("answered after %v, before the window", d)
	}
}

func TestLongPollBinaryPush(t *testing.T) {
	ts := startServer(t, hub.Config{})
	c := ts.openLongPoll(t, "vsn=2.0.0")
	push := "\x00\x02\x03\x05\x05" + "12" + "123" + "topic" + "event" + "\x00\xff"
	if r := c.post(base64.StdEncoding.EncodeToString([]byte(push))); r.Status != http.StatusOK {
		t.Fatalf("post: %+v", r)
	}
	m := recv(t, c.session.msgs, "binary push")
	if !m.Binary || m.JoinRef != "12" || m.Ref != "123" || m.Topic != "topic" || m.Event != "event" || string(m.Payload) != "\x00\xff" {
		t.Fatalf("got %+v", m)
	}
}

func TestLongPollV1(t *testing.T) {
	ts := startServer(t, hub.Config{})
	c := ts.openLongPoll(t, "vsn=1.0.0")
	hdr := http.Header{"Content-Type": {"application/json"}} // a single message, as older clients post
	_, r := ts.lpRequest(t, http.MethodPost, "token="+c.token, hdr, `{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"9"}`)
	if r.Status != http.StatusOK {
		t.Fatalf("post: %+v", r)
	}
	expectJSON(t, []byte(c.expectMessages(1)[0]), `{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"9"}`)
}

func TestLongPollRefused(t *testing.T) {
	ts := startServer(t, hub.Config{Origins: []string{"https://good.example"}})
	for _, tc := range []struct {
		name       string
		method     string
		query      string
		origin     string
		httpStatus int
		status     int
	}{
		{"handler refuses", http.MethodGet, "vsn=2.0.0&reject=1", "", http.StatusForbidden, http.StatusForbidden},
		{"bad origin", http.MethodGet, "vsn=2.0.0", "https://evil.example", http.StatusForbidden, http.StatusForbidden},
		{"bad vsn", http.MethodGet, "vsn=3.0.0", "", http.StatusForbidden, http.StatusForbidden},
		{"unknown token poll", http.MethodGet, "vsn=2.0.0&token=nope", "", http.StatusOK, http.StatusGone},
		{"unknown token post", http.MethodPost, "vsn=2.0.0&token=nope", "", http.StatusOK, http.StatusGone},
		{"post without token", http.MethodPost, "vsn=2.0.0", "", http.StatusOK, http.StatusGone},
		{"other method", http.MethodPut, "vsn=2.0.0", "", http.StatusBadRequest, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{}
			if tc.origin != "" {
				hdr.Set("Origin", tc.origin)
			}
			code, r := ts.lpRequest(t, tc.method, tc.query, hdr, "")
			if code != tc.httpStatus || r.Status != tc.status {
				t.Fatalf("HTTP %d %+v, want HTTP %d status %d", code, r, tc.httpStatus, tc.status)
			}
		})
	}
	if ts.hub.Conns() != 0 {
		t.Fatalf("%d connections", ts.hub.Conns())
	}

	req, _ := http.NewRequest(http.MethodOptions, ts.srv.URL+"/socket/longpoll", nil)
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	resp, err := ts.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		resp.Header.Get("Access-Control-Allow-Headers") != "content-type" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestLongPollClose checks that a closed session delivers what was queued before the
// close, then answers 410, as the JS client expects of a session that is gone.
func TestLongPollClose(t *testing.T) {
	ts := startServer(t, hub.Config{})
	t.Run("by the server", func(t *testing.T) {
		c := ts.openLongPoll(t, "vsn=2.0.0")
		conn := c.session.conn
		conn.Send(&hub.Message{Topic: "t", Event: "last"})
		conn.Close(hub.CloseNormal, "bye")
		if r := c.poll(); r.Status != http.StatusOK || len(r.Messages) != 1 || !strings.Contains(r.Messages[0], `"last"`) {
			t.Fatalf("poll after close: %+v", r)
		}
		var ce *hub.CloseError
		if reason := recv(t, c.session.closed, "Closed"); !errors.As(reason, &ce) || ce.Code != hub.CloseNormal {
			t.Fatalf("Closed(%v)", reason)
		}
		if r := c.poll(); r.Status != http.StatusGone {
			t.Fatalf("poll of a closed session: %+v", r)
		}
		if r := c.post(`[null,"1","phoenix","heartbeat",{}]`); r.Status != http.StatusGone {
			t.Fatalf("post to a closed session: %+v", r)
		}
	})
	t.Run("disconnect", func(t *testing.T) {
		c := ts.openLongPoll(t, "vsn=2.0.0&id=user:9")
		polled := make(chan lpResponse, 1)
		go func() { polled <- c.poll() }()
		if n := ts.hub.Disconnect("user:9"); n != 1 {
			t.Fatalf("Disconnect = %d", n)
		}
		if r := recv(t, polled, "poll"); r.Status != http.StatusGone {
			t.Fatalf("waiting poll: %+v", r)
		}
		if reason := recv(t, c.session.closed, "Closed"); !errors.Is(reason, hub.ErrDisconnect) {
			t.Fatalf("Closed(%v)", reason)
		}
	})
	t.Run("bad frame", func(t *testing.T) {
		c := ts.openLongPoll(t, "vsn=2.0.0")
		if r := c.post(`[null,"1","phoenix","heartbeat"]`); r.Status != http.StatusBadRequest {
			t.Fatalf("post: %+v", r)
		}
		if reason := recv(t, c.session.closed, "Closed"); !errors.Is(reason, hub.ErrBadFrame) {
			t.Fatalf("Closed(%v)", reason)
		}
	})
	waitFor(t, "sessions to be forgotten", func() bool { return ts.hub.Conns() == 0 })
}

func TestLongPollLimits(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		ts := startServer(t, hub.Config{IdleTimeout: 100 * time.Millisecond})
		c := ts.openLongPoll(t, "vsn=2.0.0")
		if reason := recv(t, c.session.closed, "Closed"); !errors.Is(reason, hub.ErrIdle) {
			t.Fatalf("Closed(%v)", reason)
		}
		if r := c.poll(); r.Status != http.StatusGone {
			t.Fatalf("poll: %+v", r)
		}
	})
	t.Run("polling keeps it open", func(t *testing.T) {
		ts := startServer(t, hub.Config{IdleTimeout: 100 * time.Millisecond, LongPollWindow: 150 * time.Millisecond})
		c := ts.openLongPoll(t, "vsn=2.0.0")
		for range 3 { // each poll waits longer than the idle timeout
			if r := c.poll(); r.Status != http.StatusNoContent {
				t.Fatalf("poll: %+v", r)
			}
		}
	})
	t.Run("rate", func(t *testing.T) {
		ts := startServer(t, hub.Config{MaxMessageRate: 0.01, MaxMessageBurst: 2})
		c := ts.openLongPoll(t, "vsn=2.0.0")
		hb := `[null,"1","phoenix","heartbeat",{}]`
		if r := c.post(hb, hb, hb); r.Status != http.StatusTooManyRequests {
			t.Fatalf("post: %+v", r)
		}
		c.expectMessages(2) // the closing session still delivers the replies to the burst
		if reason := recv(t, c.session.closed, "Closed"); !errors.Is(reason, hub.ErrRateLimit) {
			t.Fatalf("Closed(%v)", reason)
		}
	})
	t.Run("slow", func(t *testing.T) {
		ts := startServer(t, hub.Config{MaxQueueBytes: 4096})
		c := ts.openLongPoll(t, "vsn=2.0.0")
		payload := []byte(`{"pad":"` + strings.Repeat("x", 1000) + `"}`)
		var err error
		for i := 0; i < 10 && err == nil; i++ {
			err = c.session.conn.Send(&hub.Message{Topic: "t", Event: "e", Payload: payload})
		}
		if !errors.Is(err, hub.ErrSlow) {
			t.Fatalf("Send: %v", err)
		}
		if reason := recv(t, c.session.closed, "Closed"); !errors.Is(reason, hub.ErrSlow) {
			t.Fatalf("Closed(%v)", reason)
		}
	})
	t.Run("too big", func(t *testing.T) {
		ts := startServer(t, hub.Config{MaxFrameSize: 1024})
		c := ts.openLongPoll(t, "vsn=2.0.0")
		if r := c.post(`[null,"1","t","e",{"pad":"` + strings.Repeat("x", 2000) + `"}]`); r.Status != http.StatusRequestEntityTooLarge {
			t.Fatalf("post: %+v", r)
		}
		if reason := recv(t, c.session.closed, "Closed"); !errors.Is(reason, hub.ErrTooBig) {
			t.Fatalf("Closed(%v)", reason)
		}
	})
}

func TestLongPollShutdown(t *testing.T) {
	ts := startServer(t, hub.Config{})
	c := ts.openLongPoll(t, "vsn=2.0.0")
	polled := make(chan lpResponse, 1)
	go func() { polled <- c.poll() }()
	waitFor(t, "the poll to be waiting", func() bool { return hub.PollsWaiting(c.session.conn) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := ts.hub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, polled, "poll"); r.Status != http.StatusGone {
		t.Fatalf("waiting poll: %+v", r)
	}
	if reason := recv(t, c.session.closed, "Closed"); !errors.Is(reason, hub.ErrShutdown) {
		t.Fatalf("Closed(%v)", reason)
	}
	if _, r := ts.lpRequest(t, http.MethodGet, "vsn=2.0.0", nil, ""); r.Status != http.StatusInternalServerError {
		t.Fatalf("open during shutdown: %+v", r) // the JS client retries after a 500
	}
	if st := ts.hub.Stats(); st.Closed["shutdown"] != 1 {
		t.Fatalf("Closed %v", st.Closed)
	}
}

// TestLongPollSessionCaps opens sessions from one keep-alive connection as fast as it can
// send: the sessions past the per-address bound are refused with 429 and a plain-text
// reason, those past the total bound (from another address) with 503, and 5,000 such GETs
// leave goroutines and memory bounded.
func TestLongPollSessionCaps(t *testing.T) {
	const (
		perAddr, total = 50, 60
		gets           = 5000
	)
	ts := startServer(t, hub.Config{MaxLongPollPerAddr: perAddr, MaxLongPollSessions: total})
	go func() { // the test handler's Open blocks once its channel is full
		for range ts.handler.opened {
		}
	}()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()

	client := ts.srv.Client() // one keep-alive connection, reused GET after GET
	codes := map[int]int{}
	var refusal string
	for range gets {
		resp, err := client.Get(ts.srv.URL + "/socket/longpoll?vsn=2.0.0")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		codes[resp.StatusCode]++
		if resp.StatusCode == http.StatusTooManyRequests {
			refusal = string(body)
		}
	}
	if codes[http.StatusOK] != perAddr || codes[http.StatusTooManyRequests] != gets-perAddr {
		t.Errorf("answers by HTTP status: %v, want %d opened and the rest 429", codes, perAddr)
	}
	if !strings.Contains(refusal, "too many LongPoll sessions from 127.0.0.1 (at most 50)") {
		t.Errorf("429 body %q", refusal)
	}
	if json.Valid([]byte(refusal)) {
		t.Errorf("429 body %q is JSON: the JS client would throw on its status instead of retrying", refusal)
	}
	if n := ts.hub.Conns(); n != perAddr {
		t.Errorf("%d sessions open, want %d", n, perAddr)
	}
	if st := ts.hub.Stats(); st.PollsRefused != gets-perAddr {
		t.Errorf("PollsRefused = %d, want %d", st.PollsRefused, gets-perAddr)
	}
	if n := runtime.NumGoroutine(); n > goroutines+perAddr+20 {
		t.Errorf("%d goroutines after %d GETs, %d before", n, gets, goroutines)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 16<<20 {
		t.Errorf("the heap grew by %d MiB", grown>>20)
	}

	// Another address fills the total, and is then refused with 503.
	other := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)},
	}).DialContext}}
	defer other.CloseIdleConnections()
	for i := range total - perAddr + 1 {
		resp, err := other.Get(ts.srv.URL + "/socket/longpoll?vsn=2.0.0")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := http.StatusOK
		if i == total-perAddr {
			want = http.StatusServiceUnavailable
		}
		if resp.StatusCode != want {
			t.Fatalf("GET %d from 127.0.0.2: HTTP %d %q, want %d", i, resp.StatusCode, body, want)
		}
		if want == http.StatusServiceUnavailable && !strings.Contains(string(body), "too many LongPoll sessions on this server (at most 60)") {
			t.Errorf("503 body %q", body)
		}
	}
}

// TestLongPollUndeliveredAnswer: a poll whose client goes away while its answer is being
// written loses nothing; the next poll gets every frame.
func TestLongPollUndeliveredAnswer(t *testing.T) {
	const frames, frameSize = 32, 1 << 20 // far more than the socket buffers take
	ts := startServer(t, hub.Config{MaxQueueBytes: 2 * frames * frameSize, LongPollWindow: 200 * time.Millisecond})
	c := ts.openLongPoll(t, "vsn=2.0.0")
	big := strings.Repeat("x", frameSize)
	for i := range frames {
		if err := c.session.conn.Send(&hub.Message{Topic: "t", Event: fmt.Sprint(i), Payload: []byte(`"` + big + `"`)}); err != nil {
			t.Fatal(err)
		}
	}

	// A client that asks, sees the answer start, and resets the connection.
	nc, err := net.Dial("tcp", ts.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tcp := nc.(*net.TCPConn)
	_ = tcp.SetReadBuffer(4096)
	fmt.Fprintf(nc, "GET /socket/longpoll?token=%s HTTP/1.1\r\nHost: x\r\n\r\n", url.QueryEscape(c.token))
	_ = nc.SetReadDeadline(time.Now().Add(waitTimeout))
	start := make([]byte, 12)
	if _, err := io.ReadFull(nc, start); err != nil || string(start) != "HTTP/1.1 200" {
		t.Fatalf("answer began %q (%v)", start, err)
	}
	_ = tcp.SetLinger(0) // close with a reset: the server's write fails
	nc.Close()

	// The next poll gets all of them, in order.
	var got []string
	waitFor(t, "every frame in a later poll", func() bool {
		r := c.poll()
		got = append(got, r.Messages...)
		return len(got) >= frames || r.Status == http.StatusGone
	})
	if len(got) != frames {
		t.Fatalf("got %d frames, want %d", len(got), frames)
	}
	for i, m := range got {
		if !strings.Contains(m, fmt.Sprintf(`"t","%d",`, i)) {
			t.Fatalf("frame %d is %.60s", i, m)
		}
	}
}
