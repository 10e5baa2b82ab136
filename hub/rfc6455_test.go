package hub_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/luachan/luachan/hub"
)

// A raw-TCP client, so that tests can send what no WebSocket library would: frames
// breaking RFC 6455 in every way the hub must notice.

// Opcodes and header bits, as the tests spell frames.
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
	rsv1     = 0x40
	rsv2     = 0x20
	rsv3     = 0x10
)

// rawFrame is a frame as a client sends it; the zero value of each field is the
// well-formed choice.
type rawFrame struct {
	op       byte
	payload  []byte
	more     bool   // FIN not set
	rsv      byte   // reserved bits to set
	unmasked bool   // leave the mask bit off
	length   uint64 // announced length, when form is set
	form     byte   // 126 or 127: force that length encoding (0: the shortest)
	noBody   bool   // send the header only
}

// bytes encodes f.
func (f rawFrame) bytes() []byte {
	b0 := f.op | f.rsv
	if !f.more {
		b0 |= 0x80
	}
	n := uint64(len(f.payload))
	if f.form != 0 {
		n = f.length
	}
	mask := byte(0x80)
	if f.unmasked {
		mask = 0
	}
	out := []byte{b0}
	switch {
	case f.form == 127 || f.form == 0 && n > 65535:
		out = append(out, mask|127)
		out = binary.BigEndian.AppendUint64(out, n)
	case f.form == 126 || f.form == 0 && n > 125:
		out = append(out, mask|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, mask|byte(n))
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	if !f.unmasked {
		out = append(out, key[:]...)
	}
	if f.noBody {
		return out
	}
	for i, c := range f.payload {
		if !f.unmasked {
			c ^= key[i%4]
		}
		out = append(out, c)
	}
	return out
}

// closePayload is a close frame's payload: code and reason.
func closePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// serverFrame is one frame read from the server.
type serverFrame struct {
	op      byte
	payload []byte
}

// rawClient is a test's raw TCP connection to the hub.
type rawClient struct {
	tb      testing.TB
	nc      net.Conn
	br      *bufio.Reader
	session *testSession
}

// dialRaw connects over TCP and performs the WebSocket handshake by hand.
func (ts *testServer) dialRaw(tb testing.TB, query string) *rawClient {
	tb.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(ts.srv.URL, "http://"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(waitTimeout))
	req := "GET /socket/websocket?" + query + " HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n" +
		"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		tb.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		tb.Fatalf("handshake: %v %v", resp, err)
	}
	s := recv(tb, ts.handler.opened, "session to open")
	return &rawClient{tb: tb, nc: nc, br: br, session: s}
}

// send writes frames.
func (c *rawClient) send(frames ...rawFrame) {
	c.tb.Helper()
	var out []byte
	for _, f := range frames {
		out = append(out, f.bytes()...)
	}
	if _, err := c.nc.Write(out); err != nil {
		c.tb.Fatalf("write: %v", err)
	}
}

// readFrame reads one server frame, checking that it is well formed: unmasked, no
// reserved bits, a known opcode, a control frame whole and at most 125 bytes.
func (c *rawClient) readFrame() (serverFrame, error) {
	c.tb.Helper()
	var hdr [2]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return serverFrame{}, err
	}
	f := serverFrame{op: hdr[0] & 0x0F}
	if hdr[0]&0x70 != 0 || hdr[1]&0x80 != 0 || hdr[0]&0x80 == 0 {
		c.tb.Fatalf("malformed server frame header % x", hdr)
	}
	n := uint64(hdr[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		io.ReadFull(c.br, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		io.ReadFull(c.br, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	if f.op >= opClose && n > 125 {
		c.tb.Fatalf("server control frame of %d bytes", n)
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(c.br, f.payload); err != nil {
		return f, err
	}
	return f, nil
}

// expectClose reads until the server's close frame and checks its code; then, having
// answered it (when reply is set), checks that nothing follows it but the end of the
// stream: exactly one close frame, last.
func (c *rawClient) expectClose(code int, reply bool) {
	c.tb.Helper()
	var got serverFrame
	for {
		f, err := c.readFrame()
		if err != nil {
			c.tb.Fatalf("no close frame: %v", err)
		}
		if f.op == opClose {
			got = f
			break
		}
	}
	gotCode := hub.CloseNoStatus
	if len(got.payload) >= 2 {
		gotCode = int(binary.BigEndian.Uint16(got.payload))
	}
	if gotCode != code {
		c.tb.Fatalf("close code %d (%q), want %d", gotCode, got.payload, code)
	}
	if reply {
		c.send(rawFrame{op: opClose, payload: got.payload[:min(2, len(got.payload))]})
	}
	if f, err := c.readFrame(); !errors.Is(err, io.EOF) {
		c.tb.Fatalf("after the close frame: frame %d %q, error %v; want the end of the stream", f.op, f.payload, err)
	}
	c.nc.Close() // as a client does at the end of the stream
}

// TestRFC6455Violations sends a frame breaking RFC 6455 (or the hub's limits) on each
// connection and checks the one close frame that answers it. Violations the stream
// cannot be parsed past end with the server's end of stream, whatever the client does
// next; the others are answered by a normal close handshake.
func TestRFC6455Violations(t *testing.T) {
	ts := startServer(t, hub.Config{MaxFrameSize: 4096})
	healthy := ts.dial(t, "vsn=2.0.0")
	heartbeat := []byte(`[null,"1","phoenix","heartbeat",{}]`)
	big := []byte(strings.Repeat("x", 3000))
	for _, tc := range []struct {
		name   string
		frames []rawFrame
		code   int
		reason error // the Session.Closed reason it must match
	}{
		{"unmasked frame", []rawFrame{{op: opText, payload: heartbeat, unmasked: true}}, hub.CloseProtocol, hub.ErrProtocol},
		{"RSV1 without compression", []rawFrame{{op: opText, payload: heartbeat, rsv: rsv1}}, hub.CloseProtocol, hub.ErrProtocol},
		{"RSV2", []rawFrame{{op: opText, payload: heartbeat, rsv: rsv2}}, hub.CloseProtocol, hub.ErrProtocol},
		{"RSV3 on a ping", []rawFrame{{op: opPing, rsv: rsv3}}, hub.CloseProtocol, hub.ErrProtocol},
		{"reserved data opcode", []rawFrame{{op: 0x3, payload: heartbeat}}, hub.CloseProtocol, hub.ErrProtocol},
		{"reserved control opcode", []rawFrame{{op: 0xB}}, hub.CloseProtocol, hub.ErrProtocol},
		{"ping over 125 bytes", []rawFrame{{op: opPing, payload: make([]byte, 126)}}, hub.CloseProtocol, hub.ErrProtocol},
		{"close over 125 bytes", []rawFrame{{op: opClose, payload: closePayload(1000, strings.Repeat("r", 124))}}, hub.CloseProtocol, hub.ErrProtocol},
		{"fragmented ping", []rawFrame{{op: opPing, more: true}}, hub.CloseProtocol, hub.ErrProtocol},
		{"fragmented close", []rawFrame{{op: opClose, payload: closePayload(1000, ""), more: true}}, hub.CloseProtocol, hub.ErrProtocol},
		{"continuation without start", []rawFrame{{op: opCont, payload: heartbeat}}, hub.CloseProtocol, hub.ErrProtocol},
		{"new message inside a fragmented one", []rawFrame{{op: opText, payload: heartbeat[:5], more: true}, {op: opText, payload: heartbeat}}, hub.CloseProtocol, hub.ErrProtocol},
		{"close code 0", []rawFrame{{op: opClose, payload: closePayload(0, "")}}, hub.CloseProtocol, hub.ErrProtocol},
		{"close code 999", []rawFrame{{op: opClose, payload: closePayload(999, "")}}, hub.CloseProtocol, hub.ErrProtocol},
		{"close code 1004", []rawFrame{{op: opClose, payload: closePayload(1004, "")}}, hub.CloseProtocol, hub.ErrProtocol},
		{"close code 1005", []rawFrame{{op: opClose, payload: closePayload(1005, "")}}, hub.CloseProtocol, hub.ErrProtocol},
		{"close code 1006", []rawFrame{{op: opClose, payload: closePayload(1006, "")}}, hub.CloseProtocol, hub.ErrProtocol},
		{"close code 1015", []rawFrame{{op: opClose, payload: closePayload(1015, "")}}, hub.CloseProtocol, hub.ErrProtocol},
		{"close code 2999", []rawFrame{{op: opClose, payload: closePayload(2999, "")}}, hub.CloseProtocol, hub.ErrProtocol},
		{"close code 5000", []rawFrame{{op: opClose, payload: closePayload(5000, "")}}, hub.CloseProtocol, hub.ErrProtocol},
		{"close payload of 1 byte", []rawFrame{{op: opClose, payload: []byte{3}}}, hub.CloseProtocol, hub.ErrProtocol},
		{"close reason not UTF-8", []rawFrame{{op: opClose, payload: closePayload(1000, "\xff\xfe")}}, hub.CloseInvalidUTF8, hub.ErrBadUTF8},
		{"length with the top bit set", []rawFrame{{op: opText, form: 127, length: 1 << 63, noBody: true}}, hub.CloseProtocol, hub.ErrProtocol},
		{"16-bit length not shortest", []rawFrame{{op: opText, form: 126, length: 5, payload: []byte("hello")}}, hub.CloseProtocol, hub.ErrProtocol},
		{"64-bit length not shortest", []rawFrame{{op: opText, form: 127, length: 300, payload: make([]byte, 300)}}, hub.CloseProtocol, hub.ErrProtocol},
		{"over-long frame", []rawFrame{{op: opText, form: 127, length: 1 << 40, noBody: true}}, hub.CloseTooBig, hub.ErrTooBig},
		{"frame over the limit", []rawFrame{{op: opBinary, payload: make([]byte, 5000)}}, hub.CloseTooBig, hub.ErrTooBig},
		{"message over the limit in fragments", []rawFrame{{op: opText, payload: big, more: true}, {op: opCont, payload: big}}, hub.CloseTooBig, hub.ErrTooBig},
		{"invalid UTF-8 text", []rawFrame{{op: opText, payload: []byte("[null,\"1\",\"t\",\"e\",{\"a\":\"\xc3\x28\"}]")}}, hub.CloseInvalidUTF8, hub.ErrBadUTF8},
		{"invalid UTF-8 in a first fragment", []rawFrame{{op: opText, payload: []byte("[\xff"), more: true}}, hub.CloseInvalidUTF8, hub.ErrBadUTF8},
		{"UTF-8 cut short at the end of a message", []rawFrame{{op: opText, payload: []byte("[\xe2\x82"), more: true}, {op: opCont, payload: nil}}, hub.CloseInvalidUTF8, hub.ErrBadUTF8},
		{"surrogate in UTF-8", []rawFrame{{op: opText, payload: []byte("[\"\xed\xa0\x80\"]")}}, hub.CloseInvalidUTF8, hub.ErrBadUTF8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.dialRaw(t, "vsn=2.0.0")
			c.send(tc.frames...)
			c.expectClose(tc.code, true)
			if reason := recv(t, c.session.closed, "Session.Closed"); !errors.Is(reason, tc.reason) {
				t.Fatalf("Closed(%v), want %v", reason, tc.reason)
			}
			healthy.sendText(`[null,"hb","phoenix","heartbeat",{}]`)
			if arr := healthy.readV2(); arr[1] != "hb" {
				t.Fatalf("healthy client got %v", arr)
			}
		})
	}
}

// TestRFC6455Valid checks frames that are unusual but valid: they must be served.
func TestRFC6455Valid(t *testing.T) {
	ts := startServer(t, hub.Config{})
	heartbeat := []byte(`[null,"1","phoenix","heartbeat",{"s":"€"}]`)
	euro := strings.Index(string(heartbeat), "€") + 1 // inside the 3-byte sequence
	reply := `[null,"1","phoenix","phx_reply",{"status":"ok","response":{}}]`
	for _, tc := range []struct {
		name   string
		frames []rawFrame
		pong   string // the pong expected before the reply, if any
	}{
		{"fragments", []rawFrame{{op: opText, payload: heartbeat[:3], more: true}, {op: opCont, payload: heartbeat[3:10], more: true}, {op: opCont, payload: heartbeat[10:]}}, ""},
		{"UTF-8 sequence split over fragments", []rawFrame{{op: opText, payload: heartbeat[:euro], more: true}, {op: opCont, payload: heartbeat[euro:]}}, ""},
		{"empty fragments", []rawFrame{{op: opText, payload: nil, more: true}, {op: opCont, payload: heartbeat, more: true}, {op: opCont}}, ""},
		{"ping between fragments", []rawFrame{{op: opText, payload: heartbeat[:5], more: true}, {op: opPing, payload: []byte("p")}, {op: opCont, payload: heartbeat[5:]}}, "p"},
		{"pong unasked", []rawFrame{{op: opPong, payload: []byte("x")}, {op: opText, payload: heartbeat}}, ""},
		{"16-bit length", []rawFrame{{op: opText, payload: append(heartbeat[:len(heartbeat)-1:len(heartbeat)-1], []byte(strings.Repeat(" ", 200)+"]")...)}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.dialRaw(t, "vsn=2.0.0")
			c.send(tc.frames...)
			f, err := c.readFrame()
			if tc.pong != "" {
				if err != nil || f.op != opPong || string(f.payload) != tc.pong {
					t.Fatalf("want pong %q, got %d %q %v", tc.pong, f.op, f.payload, err)
				}
				f, err = c.readFrame()
			}
			if err != nil || f.op != opText {
				t.Fatalf("want the heartbeat reply, got %d %q %v", f.op, f.payload, err)
			}
			expectJSON(t, f.payload, reply)
		})
	}
}

// TestRFC6455CloseHandshake checks that the hub echoes a valid close code once and
// then ends the stream.
func TestRFC6455CloseHandshake(t *testing.T) {
	ts := startServer(t, hub.Config{})
	for _, code := range []int{1000, 1001, 1003, 1007, 1011, 1012, 1014, 3000, 4999} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			c := ts.dialRaw(t, "vsn=2.0.0")
			c.send(rawFrame{op: opClose, payload: closePayload(code, "bye")})
			c.expectClose(code, false)
			var ce *hub.CloseError
			if reason := recv(t, c.session.closed, "Session.Closed"); !errors.As(reason, &ce) || ce.Code != code || ce.Text != "bye" || !ce.Peer {
				t.Fatalf("Closed(%v)", reason)
			}
		})
	}
	t.Run("empty close", func(t *testing.T) {
		c := ts.dialRaw(t, "vsn=2.0.0")
		c.send(rawFrame{op: opClose})
		c.expectClose(hub.CloseNoStatus, false) // answered with an empty close frame
	})
}
