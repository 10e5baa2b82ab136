package hub_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"
	"github.com/luachan/luachan/hub"
)

func TestHeartbeat(t *testing.T) {
	ts := startServer(t, hub.Config{})
	c := ts.dial(t, "vsn=2.0.0")
	c.sendText(`[null,"7","phoenix","heartbeat",{}]`)
	_, data := c.read()
	expectJSON(t, data, `[null,"7","phoenix","phx_reply",{"status":"ok","response":{}}]`)
	select {
	case m := <-c.session.msgs:
		t.Fatalf("heartbeat reached the session: %+v", m)
	default:
	}
}

func TestFramesReachSessionInOrder(t *testing.T) {
	ts := startServer(t, hub.Config{})
	c := ts.dial(t, "vsn=2.0.0")
	for _, ref := range []string{"1", "2", "3"} {
		c.sendText(`["1","` + ref + `","rooms:lobby","new:msg",{"body":"hi"}]`)
	}
	for _, ref := range []string{"1", "2", "3"} {
		m := recv(t, c.session.msgs, "message "+ref)
		if m.Ref != ref || m.JoinRef != "1" || m.Topic != "rooms:lobby" || m.Event != "new:msg" {
			t.Fatalf("got %+v", m)
		}
		expectJSON(t, m.Payload, `{"body":"hi"}`)
	}
}

func TestVsn(t *testing.T) {
	ts := startServer(t, hub.Config{})
	for _, tc := range []struct {
		query  string
		status int
		format hub.Format
	}{
		{"", http.StatusSwitchingProtocols, hub.V1},
		{"vsn=1.0.0", http.StatusSwitchingProtocols, hub.V1},
		{"vsn=2.0.0", http.StatusSwitchingProtocols, hub.V2},
		{"vsn=3.0.0", http.StatusForbidden, 0},
		{"vsn=2", http.StatusForbidden, 0},
	} {
		t.Run(tc.query, func(t *testing.T) {
			ws, resp, err := websocket.DefaultDialer.Dial(ts.wsURL(tc.query), nil)
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("status %v, want %d (err %v)", resp, tc.status, err)
			}
			if err != nil {
				return
			}
			defer ws.Close()
			s := recv(t, ts.handler.opened, "session")
			if s.conn.Format() != tc.format {
				t.Fatalf("format %v, want %v", s.conn.Format(), tc.format)
			}
		})
	}
}

func TestConnectRequest(t *testing.T) {
	ts := startServer(t, hub.Config{})
	hdr := http.Header{}
	hdr.Set("Origin", "https://example.com")
	hdr.Set("Sec-WebSocket-Protocol", "phoenix, base64url.bearer.phx.MTIzNA") // btoa("1234")
	ws, resp, err := websocket.DefaultDialer.Dial(ts.wsURL("vsn=2.0.0&token=abc&id=u1"), hdr)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "phoenix" {
		t.Fatalf("subprotocol %q, want phoenix", got)
	}
	s := recv(t, ts.handler.opened, "session")
	r := ts.handler.lastRequest(t)
	if r.AuthToken != "1234" || r.Origin != "https://example.com" || r.RemoteIP != "127.0.0.1" {
		t.Fatalf("request %+v", r)
	}
	if r.Params.Get("token") != "abc" || r.Params.Has("vsn") {
		t.Fatalf("params %v", r.Params)
	}
	if s.conn.ID() != "u1" || s.conn.State() != "state:u1" || s.conn.Key() == 0 || s.conn.RemoteAddr() == "" {
		t.Fatalf("conn id %q state %v key %d", s.conn.ID(), s.conn.State(), s.conn.Key())
	}
}

func TestConnectRefused(t *testing.T) {
	ts := startServer(t, hub.Config{Origins: []string{"https://good.example"}})
	for _, tc := range []struct {
		name   string
		query  string
		origin string
		status int
	}{
		{"handler refuses", "vsn=2.0.0&reject=1", "", http.StatusForbidden},
		{"bad origin", "vsn=2.0.0", "https://evil.example", http.StatusForbidden},
		{"good origin", "vsn=2.0.0", "https://good.example", http.StatusSwitchingProtocols},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{}
			if tc.origin != "" {
				hdr.Set("Origin", tc.origin)
			}
			ws, resp, _ := websocket.DefaultDialer.Dial(ts.wsURL(tc.query), hdr)
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("response %v, want %d", resp, tc.status)
			}
			if ws != nil {
				ws.Close()
				recv(t, ts.handler.opened, "session")
			}
		})
	}
	resp, err := http.Get(ts.srv.URL + "/socket/websocket")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET: %d, want 400", resp.StatusCode)
	}
}

// TestBadInput checks that each kind of bad frame closes only its own connection, with
// the right code, and that a healthy client on the same hub is still served.
func TestBadInput(t *testing.T) {
	ts := startServer(t, hub.Config{MaxFrameSize: 4096})
	healthy := ts.dial(t, "vsn=2.0.0")
	deep := strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65)
	for _, tc := range []struct {
		name   string
		query  string
		binary bool
		frame  string
		code   int
	}{
		{"garbage", "vsn=2.0.0", false, "hello", hub.CloseUnsupported},
		{"short array", "vsn=2.0.0", false, `[null,"1","t","e"]`, hub.CloseUnsupported},
		{"long array, 6th not JSON", "vsn=2.0.0", false, `[null,"1","t","e",{},x]`, hub.CloseUnsupported},
		{"payload not JSON", "vsn=2.0.0", false, `[null,"1","t","e",x]`, hub.CloseUnsupported},
		{"topic not string", "vsn=2.0.0", false, `[null,"1",5,"e",{}]`, hub.CloseUnsupported},
		{"ref is bool", "vsn=2.0.0", false, `[null,true,"t","e",{}]`, hub.CloseUnsupported},
		{"too deep", "vsn=2.0.0", false, `[null,"1","t","e",` + deep + `]`, hub.CloseUnsupported},
		{"too big", "vsn=2.0.0", false, `[null,"1","t","e",{"a":"` + strings.Repeat("x", 8192) + `"}]`, hub.CloseTooBig},
		{"invalid utf8", "vsn=2.0.0", false, "[null,\"1\",\"t\",\"e\",{\"a\":\"\xff\"}]", hub.CloseInvalidUTF8},
		{"V1 array", "vsn=1.0.0", false, `[null,"1","t","e",{}]`, hub.CloseUnsupported},
		{"V1 binary", "vsn=1.0.0", true, "\x00\x00\x00\x01\x01te", hub.CloseUnsupported},
		{"binary reply kind", "vsn=2.0.0", true, "\x01\x00\x00\x01\x01\x00te", hub.CloseUnsupported},
		{"binary overrun", "vsn=2.0.0", true, "\x00\x00\x00\x09\x01te", hub.CloseUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.dial(t, tc.query)
			typ := websocket.TextMessage
			if tc.binary {
				typ = websocket.BinaryMessage
			}
			if err := c.ws.WriteMessage(typ, []byte(tc.frame)); err != nil {
				t.Fatal(err)
			}
			c.expectClose(tc.code)
			reason := c.closedReason()
			if tc.code == hub.CloseTooBig && !errors.Is(reason, hub.ErrTooBig) ||
				tc.code != hub.CloseTooBig && !errors.Is(reason, hub.ErrBadFrame) {
				t.Fatalf("Closed(%v)", reason)
			}

			healthy.sendText(`[null,"hb","phoenix","heartbeat",{}]`)
			if arr := healthy.readV2(); arr[1] != "hb" {
				t.Fatalf("healthy client got %v", arr)
			}
		})
	}
}

func TestBadFrameFlushesRepliesFirst(t *testing.T) {
	ts := startServer(t, hub.Config{})
	c := ts.dial(t, "vsn=2.0.0")
	c.sendText(`[null,"1","phoenix","heartbeat",{}]`)
	c.sendText(`nope`)
	if arr := c.readV2(); arr[1] != "1" {
		t.Fatalf("got %v", arr)
	}
	c.expectClose(hub.CloseUnsupported)
}

func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, hub.Config{IdleTimeout: 100 * time.Millisecond})
	c := ts.dial(t, "vsn=2.0.0")
	start := time.Now()
	c.expectClose(hub.CloseGoingAway)
	if !errors.Is(c.closedReason(), hub.ErrIdle) {
		t.Fatal("want ErrIdle")
	}
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Fatalf("closed after %v", d)
	}
}

func TestHeartbeatKeepsAlive(t *testing.T) {
	ts := startServer(t, hub.Config{IdleTimeout: 200 * time.Millisecond})
	c := ts.dial(t, "vsn=2.0.0")
	for i := range 6 { // 6 × 80 ms: well past one idle timeout
		c.sendText(`[null,"` + string(rune('a'+i)) + `","phoenix","heartbeat",{}]`)
		c.readV2()
		time.Sleep(80 * time.Millisecond) // the pacing is the test, not a wait for a condition
	}
}

func TestSendV1HasNoJoinRef(t *testing.T) {
	ts := startServer(t, hub.Config{})
	c := ts.dial(t, "vsn=1.0.0")
	if err := c.session.conn.Send(&hub.Message{JoinRef: "1", Ref: "2", Topic: "t", Event: "e", Payload: []byte(`{"m":1}`)}); err != nil {
		t.Fatal(err)
	}
	if err := c.session.conn.Reply("1", "3", "t", "ok", nil, false); err != nil {
		t.Fatal(err)
	}
	_, data := c.read()
	expectJSON(t, data, `{"topic":"t","event":"e","payload":{"m":1},"ref":"2"}`)
	_, data = c.read()
	expectJSON(t, data, `{"topic":"t","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"3"}`)
	if strings.Contains(string(data), "join_ref") {
		t.Fatalf("V1 frame has join_ref: %s", data)
	}
	err := c.session.conn.Send(&hub.Message{Topic: "t", Event: "e", Payload: []byte{1}, Binary: true})
	if !errors.Is(err, hub.ErrBinaryV1) {
		t.Fatalf("binary to V1: %v", err)
	}
	c.sendText(`{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"9"}`)
	_, data = c.read()
	expectJSON(t, data, `{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"9"}`)
}

func TestBinaryBothWays(t *testing.T) {
	ts := startServer(t, hub.Config{})
	c := ts.dial(t, "vsn=2.0.0")
	push := []byte("\x00\x02\x03\x05\x05" + "12" + "123" + "topic" + "event" + "efg")
	if err := c.ws.WriteMessage(websocket.BinaryMessage, push); err != nil {
		t.Fatal(err)
	}
	m := recv(t, c.session.msgs, "binary push")
	if !m.Binary || m.JoinRef != "12" || m.Ref != "123" || m.Topic != "topic" || m.Event != "event" || string(m.Payload) != "efg" {
		t.Fatalf("got %+v", m)
	}
	if err := c.session.conn.Reply("12", "123", "topic", "ok", []byte("efg"), true); err != nil {
		t.Fatal(err)
	}
	typ, data := c.read()
	if typ != websocket.BinaryMessage || string(data) != "\x01\x02\x03\x05\x02"+"12"+"123"+"topic"+"ok"+"efg" {
		t.Fatalf("reply %d %q", typ, data)
	}
}

func TestPing(t *testing.T) {
	ts := startServer(t, hub.Config{})
	c := ts.dial(t, "vsn=2.0.0")
	pong := make(chan string, 1)
	c.ws.SetPongHandler(func(data string) error { pong <- data; return nil })
	if err := c.ws.WriteControl(websocket.PingMessage, []byte("p1"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	go c.ws.ReadMessage() // pong handlers run inside reads
	if got := recv(t, pong, "pong"); got != "p1" {
		t.Fatalf("pong %q", got)
	}
}

func TestCloseByServer(t *testing.T) {
	ts := startServer(t, hub.Config{})
	c := ts.dial(t, "vsn=2.0.0")
	conn := c.session.conn
	if err := conn.Send(&hub.Message{Topic: "t", Event: "last"}); err != nil {
		t.Fatal(err)
	}
	conn.Close(hub.CloseNormal, "bye")
	conn.Close(hub.CloseInternal, "again") // idempotent: the first close counts
	if arr := c.readV2(); arr[3] != "last" {
		t.Fatalf("queued frame not flushed before close: %v", arr)
	}
	c.expectClose(hub.CloseNormal)
	var ce *hub.CloseError
	if reason := c.closedReason(); !errors.As(reason, &ce) || ce.Code != hub.CloseNormal || ce.Peer || !errors.Is(reason, hub.ErrClosed) {
		t.Fatalf("Closed(%v)", reason)
	}
	if err := conn.Send(&hub.Message{Topic: "t", Event: "e"}); !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("Send after close: %v", err)
	}
	waitFor(t, "conn to be forgotten", func() bool { return ts.hub.Conns() == 0 })
}

func TestCloseByClient(t *testing.T) {
	ts := startServer(t, hub.Config{})
	c := ts.dial(t, "vsn=2.0.0")
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "done")
	if err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	c.expectClose(hub.CloseNormal) // the server echoes the code
	var ce *hub.CloseError
	if reason := c.closedReason(); !errors.As(reason, &ce) || !ce.Peer || ce.Text != "done" || !errors.Is(reason, hub.ErrPeerClosed) {
		t.Fatalf("Closed(%v)", reason)
	}
}

func TestClientDropsConnection(t *testing.T) {
	ts := startServer(t, hub.Config{})
	c := ts.dial(t, "vsn=2.0.0")
	c.ws.NetConn().Close()
	if reason := c.closedReason(); !errors.Is(reason, hub.ErrPeerClosed) {
		t.Fatalf("Closed(%v)", reason)
	}
}

func TestSessionPanicIsContained(t *testing.T) {
	ts := startServer(t, hub.Config{})
	c := ts.dial(t, "vsn=2.0.0")
	c.session.onMsg = func(*hub.Message) { panic("boom") }
	c.sendText(`[null,"1","t","e",{}]`)
	c.expectClose(hub.CloseInternal)
	c.closedReason()
}

// TestQuietReaderMoves: a client quiet for restAfter gets its reader moved to a fresh
// goroutine (with a small stack), and nothing about the connection changes: frames
// after the move are served, a frame cut short after the move gets the whole idle
// timeout rather than what is left of restAfter, and the idle timeout counts from the
// client's last frame.
func TestQuietReaderMoves(t *testing.T) {
	if !hub.CanRestRead {
		t.Skip("no resting read on this system")
	}
	hub.SetRestAfter(t, 100*time.Millisecond)
	const idle = 700 * time.Millisecond
	ts := startServer(t, hub.Config{IdleTimeout: idle})
	c := ts.dialRaw(t, "vsn=2.0.0")
	heartbeat := func(ref string) []byte { return []byte(`[null,"` + ref + `","phoenix","heartbeat",{}]`) }
	reply := func() {
		t.Helper()
		f, err := c.readFrame()
		if err != nil || f.op != opText || !strings.Contains(string(f.payload), `"ok"`) {
			t.Fatalf("want a heartbeat reply, got %+v, %v", f, err)
		}
	}
	waitMoves := func(n uint64) {
		t.Helper()
		waitFor(t, "the reader to move", func() bool { return hub.RestMoves(ts.hub) >= n })
	}

	c.send(rawFrame{op: opText, payload: heartbeat("1")})
	reply()
	waitMoves(1)
	c.send(rawFrame{op: opText, payload: heartbeat("2")})
	reply()

	// A frame in two writes, 3 × restAfter apart, the first within restAfter of the
	// last frame: the second half must still be read.
	whole := rawFrame{op: opText, payload: heartbeat("3")}.bytes()
	if _, err := c.nc.Write(whole[:5]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the pause is the test
	if _, err := c.nc.Write(whole[5:]); err != nil {
		t.Fatal(err)
	}
	last := time.Now()
	reply()

	f, err := c.readFrame()
	if err != nil || f.op != opClose {
		t.Fatalf("want the idle close, got %+v, %v", f, err)
	}
	if d := time.Since(last); d < idle-50*time.Millisecond {
		t.Fatalf("closed %v after the last frame, idle timeout %v", d, idle)
	}
	if code := binary.BigEndian.Uint16(f.payload); code != hub.CloseGoingAway {
		t.Fatalf("close code %d", code)
	}
}

// TestParkedReader: a quiet connection is parked, with no goroutine reading it; its
// client's next frame, and the server's close, each resume it.
func TestParkedReader(t *testing.T) {
	if !hub.CanRestRead {
		t.Skip("no resting read, so no parking, on this system")
	}
	hub.SetRestAfter(t, 50*time.Millisecond)
	ts := startServer(t, hub.Config{IdleTimeout: time.Minute})
	c := ts.dialRaw(t, "vsn=2.0.0")
	heartbeat := func(ref string) {
		t.Helper()
		c.send(rawFrame{op: opText, payload: []byte(`[null,"` + ref + `","phoenix","heartbeat",{}]`)})
		f, err := c.readFrame()
		if err != nil || f.op != opText || !strings.Contains(string(f.payload), `"ok"`) {
			t.Fatalf("want a heartbeat reply, got %+v, %v", f, err)
		}
	}
	heartbeat("1")
	waitFor(t, "the reader to park", func() bool { return hub.Parked(ts.hub) == 1 })
	heartbeat("2") // the poller resumes it
	waitFor(t, "the reader to park again", func() bool { return hub.RestMoves(ts.hub) >= 2 && hub.Parked(ts.hub) == 1 })

	// The server closes it while parked: the client gets the close frame and does not
	// answer it, so only the writer's close resumes the reader (to wait out closeGrace);
	// Close returns once the connection is done.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- ts.hub.Close(ctx) }()
	f, err := c.readFrame()
	if err != nil || f.op != opClose || binary.BigEndian.Uint16(f.payload) != hub.CloseServiceRestart {
		t.Fatalf("want the shutdown close, got %+v, %v", f, err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close with a parked connection: %v", err)
	}
	if n := hub.Parked(ts.hub); n != 0 {
		t.Fatalf("%d still parked after Close", n)
	}
	// With nothing parked, the poller ends within its second of quiet.
	waitFor(t, "the poller to end", func() bool { return !hub.Polling(ts.hub) })
}

// TestBusyReaderKeepsItsStack: a reader whose Handle grew its stack to 8 KiB waits for the
// next frame holding enough of it (restHold) that a garbage collection does not halve it,
// so the next frame does not grow it again by copying it: Handle's frame is where it was.
func TestBusyReaderKeepsItsStack(t *testing.T) {
	if !hub.CanRestRead {
		t.Skip("no resting read on this system")
	}
	if raceEnabled {
		// The race detector's frames are larger and differ by build: how deep the reader
		// waits, and so what restHold must cover, is not what it is in a real build.
		// ./test.sh runs this test again without -race.
		t.Skip("stack depths under -race are not a real build's")
	}
	ts := startServer(t, hub.Config{IdleTimeout: time.Minute})
	for conn := range 5 { // a fresh reader each: one may never be caught at 8 KiB
		c := ts.dialRaw(t, "vsn=2.0.0")
		s := c.session
		at := make(chan uintptr, 2)
		reader := make(chan string, 2) // the reader goroutine's header in a stack dump
		s.onMsg = func(*hub.Message) {
			var here byte
			deepStack(16, &here) // about 5 KiB below Handle: the stack grows to 8 KiB
			buf := make([]byte, 64)
			header, _, _ := strings.Cut(string(buf[:runtime.Stack(buf, false)]), " [")
			reader <- header + " ["
			at <- uintptr(unsafe.Pointer(&here))
		}
		var header string
		waiting := func() bool { // the reader waits for the next frame in rest
			buf := make([]byte, 1<<20)
			for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
				if strings.HasPrefix(g, header) {
					return strings.Contains(g, "hub.(*sockReader).restRead(")
				}
			}
			return false
		}
		msg := rawFrame{op: opText, payload: []byte(`[null,"1","room:a","ev",{}]`)}

		c.send(msg) // a busy reader has passed two frames to the Session
		header = recv(t, reader, "the first frame's Handle")
		recv(t, at, "the first frame's Handle")
		waitFor(t, "the reader to wait for the next frame", waiting)
		c.send(msg)
		<-reader
		first := recv(t, at, "the second frame's Handle")
		// A collection does not always find a reader's stack at 8 KiB, so the test takes
		// three rounds on each of five readers.
		for round := range 3 {
			waitFor(t, "the reader to wait for the next frame", waiting)
			runtime.GC() // a collection halves a waiting goroutine's stack if it uses under a quarter
			c.send(msg)
			<-reader
			if second := recv(t, at, "the next frame's Handle"); second != first {
				t.Fatalf("connection %d, round %d: the reader's stack moved between two frames (Handle's frame at %#x, then %#x): a collection shrank it", conn, round, first, second)
			}
		}
	}
}

// deepStack uses about 320 bytes of stack per level, n levels deep.
//
//go:noinline
func deepStack(n int, p *byte) {
	var pad [256]byte
	pad[n%len(pad)] = *p
	if n > 0 {
		deepStack(n-1, &pad[n%len(pad)])
	}
	*p = pad[0]
}
