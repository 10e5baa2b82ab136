package hub

import (
	"unicode/utf16"
	"unicode/utf8"
)

// scanner reads the JSON of one client frame: just enough of a JSON parser to take a
// Phoenix frame apart in a single pass, validating all of it (as encoding/json would),
// bounding nesting, and copying out only the strings and the payload the Message keeps.
// It expects valid UTF-8 (Decode checks that first) and never recurses deeper than
// maxDepth.
type scanner struct {
	data     []byte
	pos      int
	maxDepth int
	err      error // first error; once set, every method fails
}

// fail records why the frame is bad (the first reason wins) and returns false.
func (s *scanner) fail(why string) bool {
	if s.err == nil {
		s.err = badFrame(why)
	}
	return false
}

// error returns why the frame was refused.
func (s *scanner) error() error {
	if s.err == nil {
		return badFrame("invalid JSON") // every refusal sets err; this is a safety net
	}
	return s.err
}

// skipSpace skips JSON whitespace.
func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, or 0 at the end.
func (s *scanner) peek() byte {
	s.skipSpace()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// consume skips whitespace and then c, reporting whether c was there.
func (s *scanner) consume(c byte) bool {
	if s.peek() != c {
		return false
	}
	s.pos++
	return true
}

// end reports whether only whitespace is left.
func (s *scanner) end() bool {
	s.skipSpace()
	return s.pos == len(s.data)
}

// str reads a JSON string and returns its value.
func (s *scanner) str(what string) (string, bool) {
	if !s.consume('"') {
		return "", s.fail(what + " is not a string")
	}
	start := s.pos
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; {
		case c == '"':
			v := string(s.data[start:s.pos])
			s.pos++
			return v, true
		case c == '\\':
			return s.escapedStr(start)
		case c < 0x20:
			return "", s.fail("control character in a string")
		default:
			s.pos++
		}
	}
	return "", s.fail("unterminated string")
}

// escapedStr finishes reading a string that has escapes, from its first backslash;
// start is where the string's contents began.
func (s *scanner) escapedStr(start int) (string, bool) {
	buf := make([]byte, 0, s.pos-start+16)
	buf = append(buf, s.data[start:s.pos]...)
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return string(buf), true
		case c < 0x20:
			return "", s.fail("control character in a string")
		case c != '\\':
			buf = append(buf, c)
			s.pos++
			continue
		}
		if s.pos+1 >= len(s.data) {
			break
		}
		e := s.data[s.pos+1]
		s.pos += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				r = s.lowSurrogate(r)
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", s.fail("invalid escape in a string")
		}
	}
	return "", s.fail("unterminated string")
}

// hex4 reads the four hex digits after \u.
func (s *scanner) hex4() (rune, bool) {
	r, ok := parseHex4(s.data[s.pos:])
	if !ok {
		return 0, s.fail("invalid \\u escape")
	}
	s.pos += 4
	return r, true
}

// parseHex4 parses the four hex digits at the start of b.
func parseHex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// lowSurrogate completes the surrogate pair begun by hi if a \uXXXX low surrogate
// follows, consuming it; otherwise hi stands alone and becomes U+FFFD, and what follows
// is read as usual, as in encoding/json.
func (s *scanner) lowSurrogate(hi rune) rune {
	rest := s.data[s.pos:]
	if len(rest) < 6 || rest[0] != '\\' || rest[1] != 'u' {
		return utf8.RuneError
	}
	lo, ok := parseHex4(rest[2:])
	if !ok {
		return utf8.RuneError
	}
	r := utf16.DecodeRune(hi, lo)
	if r != utf8.RuneError {
		s.pos += 6
	}
	return r
}

// ref reads a ref: a string, null (returned as ""), or a number (returned as its text).
func (s *scanner) ref() (string, bool) {
	switch c := s.peek(); {
	case c == '"':
		return s.str("ref")
	case c == 'n':
		return "", s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		start := s.pos
		if !s.number() {
			return "", false
		}
		return string(s.data[start:s.pos]), true
	}
	return "", s.fail("ref is not a string, number or null")
}

// payload reads a JSON value of any kind and returns a copy of its text: Phoenix's
// serializers accept any value as a payload.
func (s *scanner) payload() ([]byte, bool) {
	s.skipSpace()
	start := s.pos
	if !s.value(0) {
		return nil, false
	}
	p := make([]byte, s.pos-start)
	copy(p, s.data[start:s.pos])
	return p, true
}

// value validates and skips any JSON value found inside depth levels of nesting.
func (s *scanner) value(depth int) bool {
	switch c := s.peek(); {
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		return s.skipStr()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 0 && s.pos == len(s.data):
		return s.fail("unexpected end of JSON")
	}
	return s.fail("invalid JSON")
}

// object skips an object at nesting level depth.
func (s *scanner) object(depth int) bool {
	if depth > s.maxDepth {
		return s.fail("payload nests too deep")
	}
	s.pos++ // '{'
	if s.consume('}') {
		return true
	}
	for {
		if s.peek() != '"' {
			return s.fail("object key is not a string")
		}
		if !s.skipStr() || !s.colon() || !s.value(depth) {
			return false
		}
		if s.consume('}') {
			return true
		}
		if !s.consume(',') {
			return s.fail("invalid JSON object")
		}
	}
}

// array skips an array at nesting level depth.
func (s *scanner) array(depth int) bool {
	if depth > s.maxDepth {
		return s.fail("payload nests too deep")
	}
	s.pos++ // '['
	if s.consume(']') {
		return true
	}
	for {
		if !s.value(depth) {
			return false
		}
		if s.consume(']') {
			return true
		}
		if !s.consume(',') {
			return s.fail("invalid JSON array")
		}
	}
}

// colon consumes the ':' after an object key.
func (s *scanner) colon() bool {
	if !s.consume(':') {
		return s.fail("invalid JSON object")
	}
	return true
}

// skipStr validates and skips a string without decoding it.
func (s *scanner) skipStr() bool {
	s.pos++ // opening quote, checked by the caller
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return true
		case c < 0x20:
			return s.fail("control character in a string")
		case c == '\\':
			if s.pos+1 >= len(s.data) {
				return s.fail("unterminated string")
			}
			switch s.data[s.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos += 2
			case 'u':
				s.pos += 2
				if _, ok := s.hex4(); !ok {
					return false
				}
			default:
				return s.fail("invalid escape in a string")
			}
		default:
			s.pos++
		}
	}
	return s.fail("unterminated string")
}

// literal consumes the keyword lit (true, false or null).
func (s *scanner) literal(lit string) bool {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return s.fail("invalid JSON literal")
	}
	s.pos += len(lit)
	return true
}

// number consumes a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	if s.pos < len(s.data) && s.data[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(s.data) && s.data[s.pos] == '0':
		s.pos++
	case s.digits() == 0:
		return s.fail("invalid JSON number")
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if s.digits() == 0 {
			return s.fail("invalid JSON number")
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if s.digits() == 0 {
			return s.fail("invalid JSON number")
		}
	}
	return true
}

// digits consumes a run of decimal digits and returns its length.
func (s *scanner) digits() int {
	start := s.pos
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
	}
	return s.pos - start
}
