package hub_test

import (
	"errors"
	"io"
	"testing"
	"unicode/utf8"

	"github.com/luachan/luachan/hub"
)

// FuzzReadFrames feeds arbitrary bytes to a connection's frame reader, as a client
// could send them after the handshake, reading on past refusals as a closing
// connection does. It must never panic; it must end with the end of the stream, the
// client's close, or a refusal carrying the close code RFC 6455 asks for (1002
// protocol error, 1007 invalid UTF-8, 1009 too big); and every message it returns must
// respect the size limit, text ones being UTF-8. Seeds: testdata/fuzz/FuzzReadFrames.
func FuzzReadFrames(f *testing.F) {
	f.Add([]byte("\x81\x82\x01\x02\x03\x04\x7a\x7f")) // a masked text frame "{}"
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 256
		msgs, binary, refused, err := hub.ReadFrames(data, limit)
		for _, code := range refused { // refusals the reader reads past: the framing is intact
			if code != hub.CloseInvalidUTF8 && code != hub.CloseTooBig {
				t.Fatalf("reading %q: refused with %d, and read on", data, code)
			}
		}
		var ce *hub.CloseError
		code, _ := hub.CloseCodeOf(err)
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		case errors.As(err, &ce):
			if !ce.Peer || ce.Code != hub.CloseNoStatus && (ce.Code < 1000 || ce.Code > 4999) || !utf8.ValidString(ce.Text) {
				t.Fatalf("peer close %+v", ce)
			}
		case code == hub.CloseProtocol && errors.Is(err, hub.ErrProtocol),
			code == hub.CloseInvalidUTF8 && errors.Is(err, hub.ErrBadUTF8),
			code == hub.CloseTooBig && errors.Is(err, hub.ErrTooBig):
		default:
			t.Fatalf("reading %q ended with %v (close code %d)", data, err, code)
		}
		for i, m := range msgs {
			if len(m) > limit || !binary[i] && !utf8.Valid(m) {
				t.Fatalf("message %q (binary %v) from %q", m, binary[i], data)
			}
		}
	})
}

// FuzzReadFramesRoundTrip sends a message cut into fragments at arbitrary points, with
// a ping in between, and checks that the reader gives it back whole.
func FuzzReadFramesRoundTrip(f *testing.F) {
	f.Add([]byte(`[null,"1","phoenix","heartbeat",{"s":"€"}]`), uint16(0x0503), false)
	f.Add([]byte("\x00\x01\x01\x01\x01jrte\xff\x00"), uint16(7), true)
	f.Fuzz(func(t *testing.T, msg []byte, cuts uint16, binary bool) {
		if !binary && !utf8.Valid(msg) {
			return
		}
		op := byte(opText)
		if binary {
			op = opBinary
		}
		// Each nibble of cuts is the length of the next fragment, while msg lasts.
		var frames []byte
		rest := msg
		for first := true; ; first = false {
			n := min(int(cuts&0xF), len(rest))
			cuts >>= 4
			last := cuts == 0 || n == len(rest)
			if last {
				n = len(rest)
			}
			fop := byte(opCont)
			if first {
				fop = op
			}
			frames = append(frames, rawFrame{op: fop, payload: rest[:n], more: !last}.bytes()...)
			frames = append(frames, rawFrame{op: opPing, payload: []byte("p")}.bytes()...)
			rest = rest[n:]
			if last {
				break
			}
		}
		msgs, bin, refused, err := hub.ReadFrames(frames, 1<<20)
		if !errors.Is(err, io.EOF) || len(refused) != 0 || len(msgs) != 1 || bin[0] != binary || string(msgs[0]) != string(msg) {
			t.Fatalf("%q in frames %q: read %q (binary %v, refused %v), %v", msg, frames, msgs, bin, refused, err)
		}
	})
}
