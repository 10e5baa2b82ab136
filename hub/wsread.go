package hub

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"unicode/utf8"
)

// The hub reads its clients' WebSocket frames itself (RFC 6455 section 5), as it writes
// them (frame.go): gorilla/websocket only performs the handshake. gorilla's reader
// answers some protocol errors by writing a close frame straight to the socket, which
// would race with the connection's writer and could put a second close frame, or data
// after the close frame, on the wire. Here reading never writes: every violation
// becomes a *wireError carrying the close code, and the connection's one writer sends
// exactly one close frame for it.

// More opcodes (frame.go has those the hub sends).
const (
	opContinuation = 0x0
	opPing         = 0x9
)

// Frame header bits of client frames.
const (
	rsvBits    = 0x70 // RSV1-3: no extension is negotiated, so they must be 0
	opcodeBits = 0x0F
	maskBit    = 0x80 // every client frame must be masked
	lengthBits = 0x7F
	controlBit = 0x08 // opcodes 8-15 are control frames
)

// maxSkip is the most payload the reader skips to stay in step with the client after
// refusing a message; a frame announcing more ends reading instead.
const maxSkip = 1 << 20

// frameReader reads one client's frames: it unmasks them, reassembles fragmented
// messages, checks text messages are UTF-8 as their fragments arrive, and enforces the
// message size limit from the frame headers, before reading the payload. It is used by
// the connection's reader goroutine only.
type frameReader struct {
	in     sockReader
	limit  int64             // longest message, in bytes (Config.MaxFrameSize)
	onPing func(data []byte) // called for each ping; data is valid during the call only

	buf []byte // a message that does not fit in in's buffer, being assembled (see maxKeptReadBuffer)

	// State between frames of one fragmented message.
	inMessage bool  // a data frame without FIN arrived: continuation frames follow
	text      bool  // the message in progress is text
	checked   int   // bytes of buf already checked to be UTF-8
	discard   bool  // the message in progress was refused: its remaining frames are skipped
	skip      int64 // payload bytes of a refused frame still to be skipped
}

// frameHeader is one decoded frame header.
type frameHeader struct {
	fin    bool
	opcode byte
	length int64
	mask   [4]byte
}

// wireError is a client frame that breaks RFC 6455 or the hub's limits.
type wireError struct {
	code  int    // close code to answer with: CloseProtocol, CloseInvalidUTF8, CloseTooBig
	err   error  // ErrProtocol, ErrBadUTF8 or ErrTooBig
	why   string // details, for the log and the close reason
	fatal bool   // the byte stream cannot be parsed any further
}

func (e *wireError) Error() string { return e.err.Error() + ": " + e.why }
func (e *wireError) Unwrap() error { return e.err }

// violation reports a frame breaking RFC 6455, after which nothing more can be parsed.
func violation(format string, args ...any) error {
	return &wireError{code: CloseProtocol, err: ErrProtocol, why: fmt.Sprintf(format, args...), fatal: true}
}

// next returns the next complete data message: whether it is binary, and its payload,
// which stays valid until the next call. A message of one frame that fits in the read
// buffer is unmasked where it lies, not copied. Control frames between messages (or
// between fragments) are handled on the way: pings go to onPing, pongs are ignored, and
// a close frame ends reading with a peer *CloseError. Any other error is final, except a
// *wireError that is not fatal: reading may then go on, skipping the refused message.
func (r *frameReader) next() (binary bool, data []byte, err error) {
	for {
		if r.skip > 0 {
			n := r.skip
			r.skip = 0
			if _, err := io.CopyN(io.Discard, &r.in, n); err != nil {
				return false, nil, noEOF(err)
			}
		}
		h, err := r.header()
		if err != nil {
			return false, nil, err
		}
		if h.opcode&controlBit != 0 {
			if err := r.controlFrame(h); err != nil {
				return false, nil, err
			}
			continue
		}
		if err := r.startFrame(h); err != nil {
			return false, nil, err
		}
		if r.discard { // a frame of a message refused already
			r.refuse(h)
			if h.length > maxSkip {
				return false, nil, r.tooBig(true)
			}
			continue
		}
		if int64(len(r.buf))+h.length > r.limit {
			r.refuse(h)
			return false, nil, r.tooBig(h.length > maxSkip)
		}
		if !r.inMessage && len(r.buf) == 0 && h.length <= readBufferSize {
			return r.wholeFrame(h)
		}
		if err := r.readPayload(h); err != nil {
			return false, nil, err
		}
		if r.text {
			if err := r.checkUTF8(!r.inMessage); err != nil {
				r.refuse(h)
				r.skip = 0 // this frame's payload is read already
				return false, nil, err
			}
		}
		if !r.inMessage {
			return !r.text, r.buf, nil
		}
	}
}

// header reads and checks a frame header, reporting every RFC 6455 violation it shows.
func (r *frameReader) header() (frameHeader, error) {
	var h frameHeader
	b, err := r.in.next(2, true)
	if err != nil {
		return h, err
	}
	h.fin = b[0]&finBit != 0
	h.opcode = b[0] & opcodeBits
	if b[0]&rsvBits != 0 {
		return h, violation("reserved bits set (no extension was negotiated)")
	}
	switch h.opcode {
	case opContinuation, opText, opBinary, opClose, opPing, opPong:
	default:
		return h, violation("unknown opcode %#x", h.opcode)
	}
	if b[1]&maskBit == 0 {
		return h, violation("unmasked client frame")
	}
	short := int64(b[1] & lengthBits)
	if h.opcode&controlBit != 0 {
		if !h.fin {
			return h, violation("fragmented control frame")
		}
		if short > maxControlLength {
			return h, violation("control frame payload over %d bytes", maxControlLength)
		}
	}
	switch short {
	case length16:
		b, err := r.in.next(2, false)
		if err != nil {
			return h, err
		}
		h.length = int64(binary.BigEndian.Uint16(b))
		if h.length <= maxShortLength {
			return h, violation("length not in its shortest form")
		}
	case length64:
		b, err := r.in.next(8, false)
		if err != nil {
			return h, err
		}
		n := binary.BigEndian.Uint64(b)
		if n>>63 != 0 {
			return h, violation("length with its most significant bit set")
		}
		if n <= maxMediumLength {
			return h, violation("length not in its shortest form")
		}
		h.length = int64(n)
	default:
		h.length = short
	}
	mask, err := r.in.next(4, false)
	if err != nil {
		return h, err
	}
	copy(h.mask[:], mask)
	return h, nil
}

// wholeFrame reads a message of one frame h (at most readBufferSize long) into the read
// buffer, and unmasks and checks it there.
func (r *frameReader) wholeFrame(h frameHeader) (binary bool, data []byte, err error) {
	data, err = r.in.next(int(h.length), false)
	if err != nil {
		return false, nil, err
	}
	unmask(h.mask, data)
	if r.text && !utf8.Valid(data) {
		r.refuse(h)
		r.skip = 0 // this frame's payload is read already
		return false, nil, &wireError{code: CloseInvalidUTF8, err: ErrBadUTF8, why: "text message is not UTF-8"}
	}
	return !r.text, data, nil
}

// startFrame checks that a data frame fits the fragmentation state, and updates it.
func (r *frameReader) startFrame(h frameHeader) error {
	if h.opcode == opContinuation {
		if !r.inMessage {
			return violation("continuation frame without a message to continue")
		}
	} else {
		if r.inMessage {
			return violation("new message before the previous one ended")
		}
		r.text = h.opcode == opText
		r.checked = 0
		r.discard = false
		if cap(r.buf) > maxKeptReadBuffer {
			r.buf = nil // a huge message does not pin its memory for the connection's life
		}
		r.buf = r.buf[:0]
	}
	r.inMessage = !h.fin
	return nil
}

// tooBig reports a message over the limit. It is fatal when the frame is too long to
// be worth reading through to stay in step with the client.
func (r *frameReader) tooBig(fatal bool) error {
	return &wireError{code: CloseTooBig, err: ErrTooBig, why: fmt.Sprintf("message over %d bytes", r.limit), fatal: fatal}
}

// refuse skips the rest of the message that frame h belongs to.
func (r *frameReader) refuse(h frameHeader) {
	r.discard = r.inMessage
	r.skip = h.length
	r.buf = r.buf[:0]
}

// readPayload appends frame h's payload to buf, unmasked. The buffer grows as data
// arrives rather than by the announced length, so a client announcing big frames and
// sending nothing does not make the hub allocate for them.
func (r *frameReader) readPayload(h frameHeader) error {
	start := len(r.buf)
	for remaining := h.length; remaining > 0; {
		if len(r.buf) == cap(r.buf) {
			r.buf = slices.Grow(r.buf, int(min(remaining, initialReadBuffer)))
		}
		n := min(int64(cap(r.buf)-len(r.buf)), remaining)
		got, err := io.ReadFull(&r.in, r.buf[len(r.buf):len(r.buf)+int(n)])
		r.buf = r.buf[:len(r.buf)+got]
		remaining -= int64(got)
		if err != nil {
			return noEOF(err)
		}
	}
	unmask(h.mask, r.buf[start:])
	return nil
}

// checkUTF8 checks the text received since the last check. Unless final, a UTF-8
// sequence cut by the end of the fragment is left for the next one.
func (r *frameReader) checkUTF8(final bool) error {
	n, ok := validUTF8Prefix(r.buf[r.checked:], final)
	r.checked += n
	if !ok {
		return &wireError{code: CloseInvalidUTF8, err: ErrBadUTF8, why: "text message is not UTF-8"}
	}
	return nil
}

// controlFrame reads and handles a ping, pong or close frame.
func (r *frameReader) controlFrame(h frameHeader) error {
	p, err := r.in.next(int(h.length), false) // at most maxControlLength
	if err != nil {
		return err
	}
	unmask(h.mask, p)
	switch h.opcode {
	case opPing:
		if r.onPing != nil {
			r.onPing(p)
		}
		return nil
	case opPong:
		return nil
	}
	// A close frame: empty, or a valid code and a UTF-8 reason (RFC 6455 section 5.5.1).
	if len(p) == 0 {
		return &CloseError{Code: CloseNoStatus, Peer: true}
	}
	if len(p) == 1 {
		return violation("close frame with a 1-byte payload")
	}
	code := int(binary.BigEndian.Uint16(p))
	if !validCloseCode(code) {
		return violation("invalid close code %d", code)
	}
	if !utf8.Valid(p[2:]) {
		return &wireError{code: CloseInvalidUTF8, err: ErrBadUTF8, why: "close reason is not UTF-8", fatal: true}
	}
	return &CloseError{Code: code, Text: string(p[2:]), Peer: true}
}

// validCloseCode reports whether a peer may send code in a close frame (RFC 6455
// section 7.4 and the IANA registry): 1004-1006 and 1015 are reserved, and 1016-2999
// unassigned.
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// noEOF turns an end of stream inside a frame into io.ErrUnexpectedEOF: only a stream
// ending between frames is a plain EOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// unmask XORs b with the masking key, 8 bytes at a time where it can. b must start at
// the beginning of a frame's payload.
func unmask(key [4]byte, b []byte) {
	k := uint64(binary.LittleEndian.Uint32(key[:]))
	k |= k << 32
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= key[i&3]
	}
}

// validUTF8Prefix reports whether b is valid UTF-8, and how many bytes of it are whole
// valid sequences. Unless final, b may end with the start of a sequence that the next
// fragment completes.
func validUTF8Prefix(b []byte, final bool) (n int, ok bool) {
	if utf8.Valid(b) {
		return len(b), true
	}
	for n < len(b) {
		if b[n] < utf8.RuneSelf {
			n++
			continue
		}
		r, size := utf8.DecodeRune(b[n:])
		if r == utf8.RuneError && size == 1 {
			return n, !final && !utf8.FullRune(b[n:])
		}
		n += size
	}
	return n, true
}
