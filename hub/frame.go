package hub

import "encoding/binary"

// The hub writes its WebSocket frames itself (RFC 6455 section 5.2) so that a frame is
// encoded once, header included, and the same bytes can be queued to any number of
// connections and written to each with one writev per burst. Server frames are never
// masked, never fragmented and never compressed.

// WebSocket opcodes of the frames the hub sends.
const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPong   = 0xA
)

// Frame header sizes and flags.
const (
	finBit           = 0x80  // FIN: the frame is a whole message
	maxFrameHeader   = 10    // 2 bytes + 8-byte extended length
	maxShortLength   = 125   // longest payload whose length fits in the second byte
	maxMediumLength  = 65535 // longest payload with a 2-byte extended length
	maxControlLength = 125   // longest control frame payload (close, pong)
	length16         = 126   // marker: a 2-byte length follows
	length64         = 127   // marker: an 8-byte length follows
)

// wireFrame is one complete WebSocket frame ready for the socket: header and body in a
// single slice that the hub never modifies once built, so it may be shared.
type wireFrame struct {
	buf  []byte // header then body
	body int    // offset of the body in buf
}

// newFrameBuf returns a buffer with room for the largest header followed by an empty
// body of capacity hint; encoders append the body to it and finishFrame adds the header.
func newFrameBuf(hint int) []byte {
	return make([]byte, maxFrameHeader, maxFrameHeader+hint)
}

// finishFrame writes the header for opcode in front of the body appended to buf (made by
// newFrameBuf) and returns the finished frame.
func finishFrame(buf []byte, opcode byte) wireFrame {
	n := len(buf) - maxFrameHeader
	var h int
	switch {
	case n <= maxShortLength:
		h = 2
	case n <= maxMediumLength:
		h = 4
	default:
		h = 10
	}
	start := maxFrameHeader - h
	hdr := buf[start:maxFrameHeader]
	hdr[0] = finBit | opcode
	switch h {
	case 2:
		hdr[1] = byte(n)
	case 4:
		hdr[1] = length16
		binary.BigEndian.PutUint16(hdr[2:], uint16(n))
	default:
		hdr[1] = length64
		binary.BigEndian.PutUint64(hdr[2:], uint64(n))
	}
	return wireFrame{buf: buf[start:], body: h}
}

// closeFrame builds a close frame with code and reason. The reason is cut to fit the
// 125-byte control frame limit, on a UTF-8 boundary. CloseNoStatus yields an empty
// close frame, as the RFC requires.
func closeFrame(code int, reason string) wireFrame {
	buf := newFrameBuf(maxControlLength)
	if code != CloseNoStatus {
		buf = binary.BigEndian.AppendUint16(buf, uint16(code))
		buf = append(buf, truncateUTF8(reason, maxControlLength-2)...)
	}
	return finishFrame(buf, opClose)
}

// pongFrame answers a client's ping with its application data (at most 125 bytes, as
// the reader checked).
func pongFrame(data []byte) wireFrame {
	buf := newFrameBuf(len(data))
	buf = append(buf, data...)
	return finishFrame(buf, opPong)
}

// frameBody splits a frame built by finishFrame into its opcode and body.
func frameBody(frame []byte) (opcode byte, body []byte) {
	h := 2
	switch frame[1] {
	case length16:
		h = 4
	case length64:
		h = 10
	}
	return frame[0] & opcodeBits, frame[h:]
}

// truncateUTF8 cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
