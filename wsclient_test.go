package luachan_test

// A small Phoenix client over gorilla/websocket for the end-to-end tests: frames are
// written and expected as JSON text, compared by value, so a test reads like the wire.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// readTimeout bounds every wait for one frame.
	readTimeout = 5 * time.Second
	// writeTimeout bounds every frame the client writes.
	writeTimeout = 5 * time.Second
)

// wsClient is one WebSocket connection to the server under test.
type wsClient struct {
	tb   testing.TB
	conn *websocket.Conn
	resp *http.Response // the handshake response

	// inFlight holds presences readMsg skips one join diff of each, exactly as here:
	// see joinPresenceRemote.
	inFlight presenceState
}

// frame is one message read from the server.
type frame struct {
	binary bool
	data   []byte
}

func (f frame) String() string {
	if f.binary {
		return fmt.Sprintf("binary %q", f.data)
	}
	return string(f.data)
}

// dial connects to /socket/websocket?query and closes the connection when the test ends.
func (s *server) dial(tb testing.TB, query string) *wsClient {
	tb.Helper()
	c, err := s.dialHeader(tb, query, nil)
	if err != nil {
		tb.Fatalf("dial ?%s: %v", query, err)
	}
	return c
}

// dialHeader is dial with request headers, returning the handshake error instead of
// failing (the response, when there was one, is in the error's *http.Response).
func (s *server) dialHeader(tb testing.TB, query string, h http.Header) (*wsClient, error) {
	tb.Helper()
	d := websocket.Dialer{HandshakeTimeout: readTimeout}
	conn, resp, err := d.Dial(s.wsURL(query), h)
	if err != nil {
		return nil, &dialError{err: err, resp: resp}
	}
	c := &wsClient{tb: tb, conn: conn, resp: resp}
	tb.Cleanup(func() { conn.Close() })
	return c, nil
}

// dialError is a failed handshake together with the server's HTTP answer, if any.
type dialError struct {
	err  error
	resp *http.Response
}

func (e *dialError) Error() string {
	if e.resp != nil {
		return fmt.Sprintf("%v (HTTP %d)", e.err, e.resp.StatusCode)
	}
	return e.err.Error()
}

// status returns the HTTP status of a failed handshake, or 0 if there was no answer.
func handshakeStatus(err error) int {
	var de *dialError
	if errors.As(err, &de) && de.resp != nil {
		return de.resp.StatusCode
	}
	return 0
}

func (s *server) wsURL(query string) string {
	u := "ws://" + s.addr + "/socket/websocket"
	if query != "" {
		u += "?" + query
	}
	return u
}

// send writes one text frame.
func (c *wsClient) send(text string) {
	c.tb.Helper()
	c.write(websocket.TextMessage, []byte(text))
}

// write writes one frame of the given type.
func (c *wsClient) write(typ int, data []byte) {
	c.tb.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := c.conn.WriteMessage(typ, data); err != nil {
		c.tb.Fatalf("write: %v", err)
	}
}

// read returns the next frame, failing the test if none comes within readTimeout.
func (c *wsClient) read() frame {
	c.tb.Helper()
	return c.readWaiting("the next frame")
}

// readWaiting is read, naming what the test waits for if nothing comes.
func (c *wsClient) readWaiting(what string) frame {
	c.tb.Helper()
	return c.readWithin(what, readTimeout)
}

// readWithin is readWaiting for something that may take longer than readTimeout.
func (c *wsClient) readWithin(what string, d time.Duration) frame {
	c.tb.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	typ, data, err := c.conn.ReadMessage()
	if err != nil {
		c.tb.Fatalf("waiting for %s: %v", what, err)
	}
	return frame{binary: typ == websocket.BinaryMessage, data: data}
}

// expect reads the next frame and requires it to equal want, a JSON text frame.
func (c *wsClient) expect(want string) {
	c.tb.Helper()
	c.expectWithin(want, readTimeout)
}

// expectWithin is expect for a frame that may take longer than readTimeout.
func (c *wsClient) expectWithin(want string, d time.Duration) {
	c.tb.Helper()
	got := c.readWithin(want, d)
	if msg := mismatch(want, got); msg != "" {
		c.tb.Fatalf("unexpected frame:\n got %s\nwant %s\n(%s)", got, want, msg)
	}
}

// expectAnyOrder reads exactly len(wants) frames and requires them to be wants in
// some order. Each want is JSON text, or binary bytes given as binFrame.
func (c *wsClient) expectAnyOrder(wants ...any) {
	c.tb.Helper()
	left := append([]any(nil), wants...)
	var got []frame
	for range wants {
		f := c.readWaiting("(any order) " + describe(left))
		got = append(got, f)
		i := indexOfMatch(left, f)
		if i < 0 {
			c.tb.Fatalf("unexpected frame %s\nstill expecting (any order): %s\nreceived so far: %s",
				f, describe(left), got)
		}
		left = append(left[:i], left[i+1:]...)
	}
}

func indexOfMatch(wants []any, f frame) int {
	for i, w := range wants {
		switch w := w.(type) {
		case string:
			if mismatch(w, f) == "" {
				return i
			}
		case binFrame:
			if f.binary && bytes.Equal(w, f.data) {
				return i
			}
		}
	}
	return -1
}

func describe(wants []any) string {
	var parts []string
	for _, w := range wants {
		switch w := w.(type) {
		case binFrame:
			parts = append(parts, fmt.Sprintf("binary %q", []byte(w)))
		default:
			parts = append(parts, fmt.Sprint(w))
		}
	}
	return strings.Join(parts, "\n  ")
}

// expectBinary reads the next frame and requires it to be the binary frame want.
func (c *wsClient) expectBinary(want binFrame) {
	c.tb.Helper()
	got := c.readWaiting(fmt.Sprintf("binary %q", []byte(want)))
	if !got.binary || !bytes.Equal(got.data, want) {
		c.tb.Fatalf("unexpected frame:\n got %s\nwant binary %q", got, []byte(want))
	}
}

// readArray reads the next frame as a V2 JSON array of 5 and returns it decoded
// (numbers as json.Number).
func (c *wsClient) readArray() []any {
	c.tb.Helper()
	f := c.read()
	var v []any
	if f.binary || decodeJSON(f.data, &v) != nil || len(v) != 5 {
		c.tb.Fatalf("want a V2 JSON frame of 5 elements, got %s", f)
	}
	return v
}

// expectClose reads until the server closes the connection and requires close code
// code; it returns the close reason. Frames before the close are ignored.
func (c *wsClient) expectClose(code int) string {
	c.tb.Helper()
	got, reason := c.expectAnyClose()
	if got != code {
		c.tb.Fatalf("close code %d (%q), want %d", got, reason, code)
	}
	return reason
}

// expectAnyClose reads until the server closes the connection with a close frame and
// returns its code and reason. Frames before the close are ignored.
func (c *wsClient) expectAnyClose() (int, string) {
	c.tb.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(readTimeout))
	for {
		_, _, err := c.conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.tb.Fatalf("want the server to close with a close frame, got %v", err)
		}
		return ce.Code, ce.Text
	}
}

// closeResult is how a connection ended: the close frame's code and reason, or err
// when it ended without one.
type closeResult struct {
	code   int
	reason string
	err    error
}

// closeAsync keeps reading in the background, as a real client does, until the
// connection ends, and then delivers how it ended. The test must not use c otherwise
// until the result arrives.
func (c *wsClient) closeAsync() <-chan closeResult {
	done := make(chan closeResult, 1)
	go func() {
		_ = c.conn.SetReadDeadline(time.Now().Add(readTimeout))
		for {
			_, _, err := c.conn.ReadMessage()
			if err == nil {
				continue
			}
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				done <- closeResult{code: ce.Code, reason: ce.Text}
			} else {
				done <- closeResult{err: err}
			}
			return
		}
	}()
	return done
}

// heartbeat sends a heartbeat with ref and expects its reply next. Tests use it as a
// marker: whatever must not arrive would have arrived before it.
func (c *wsClient) heartbeat(ref string) {
	c.tb.Helper()
	c.send(`[null,"` + ref + `","phoenix","heartbeat",{}]`)
	c.expect(`[null,"` + ref + `","phoenix","phx_reply",{"status":"ok","response":{}}]`)
}

// join joins topic with join_ref (also used as the ref) and payload (JSON text) and
// expects an ok reply with the given response (JSON text).
func (c *wsClient) join(topic, joinRef, payload, response string) {
	c.tb.Helper()
	c.send(fmt.Sprintf(`[%q,%q,%q,"phx_join",%s]`, joinRef, joinRef, topic, payload))
	c.expect(fmt.Sprintf(`[%q,%q,%q,"phx_reply",{"status":"ok","response":%s}]`, joinRef, joinRef, topic, response))
}

// mismatch compares want (JSON text) with a text frame by value; "" means equal.
func mismatch(want string, got frame) string {
	if got.binary {
		return "got a binary frame"
	}
	var w, g any
	if err := decodeJSON([]byte(want), &w); err != nil {
		return fmt.Sprintf("bad expectation %s: %v", want, err)
	}
	if err := decodeJSON(got.data, &g); err != nil {
		return fmt.Sprintf("frame is not JSON: %v", err)
	}
	if !reflect.DeepEqual(w, g) {
		return "values differ"
	}
	return ""
}

// decodeJSON decodes exactly one JSON value, keeping numbers as written (so 1 and 1.0
// differ, as the SPEC's "integers stay integers" wants).
func decodeJSON(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// binFrame is the bytes of a V2 binary frame.
type binFrame []byte

// binClientPush builds a client push (kind 0): kind, u8 lengths of join_ref, ref,
// topic, event, the strings, then the payload (phoenix serializer.js binaryEncode).
func binClientPush(joinRef, ref, topic, event string, payload []byte) binFrame {
	b := []byte{0, byte(len(joinRef)), byte(len(ref)), byte(len(topic)), byte(len(event))}
	b = append(b, joinRef+ref+topic+event...)
	return append(b, payload...)
}

// binPush builds a server push (kind 0): no ref (serializer.js decodePush).
func binPush(joinRef, topic, event string, payload []byte) binFrame {
	b := []byte{0, byte(len(joinRef)), byte(len(topic)), byte(len(event))}
	b = append(b, joinRef+topic+event...)
	return append(b, payload...)
}

// binReply builds a server reply (kind 1) whose status takes the event's place
// (serializer.js decodeReply).
func binReply(joinRef, ref, topic, status string, payload []byte) binFrame {
	b := []byte{1, byte(len(joinRef)), byte(len(ref)), byte(len(topic)), byte(len(status))}
	b = append(b, joinRef+ref+topic+status...)
	return append(b, payload...)
}

// binBroadcast builds a server broadcast (kind 2): topic and event only
// (serializer.js decodeBroadcast).
func binBroadcast(topic, event string, payload []byte) binFrame {
	b := []byte{2, byte(len(topic)), byte(len(event))}
	b = append(b, topic+event...)
	return append(b, payload...)
}

// mustJSON encodes v (a decoded frame) back to JSON text.
func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}
