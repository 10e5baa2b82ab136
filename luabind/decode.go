package luabind

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	lua "github.com/yuin/gopher-lua"
)

// shareSourceMax is the largest JSON text whose strings are cut from one copy of the whole text
// instead of being allocated one by one: faster, but a kept substring pins the whole text.
const shareSourceMax = 8 << 10

// maxPooledValues is the largest value stack a pooled decoder keeps, so one huge payload does
// not pin memory for good.
const maxPooledValues = 4096

// decoder turns JSON text into Lua values: objects become tables with string keys, arrays
// sequences 1..n with the array mark (so [] stays []), null the shared luachan.null. It is a hand-written scanner because payload
// conversion is the hot cost of every callback. Decoders are pooled; their stacks are reused.
type decoder struct {
	data   []byte
	src    string // data as one string when shared (len(data) <= shareSourceMax)
	shared bool   // src holds data
	pos    int
	depth  int
	vals   []lua.LValue // values of the objects and arrays being decoded, innermost last
	keys   []string     // keys of the objects being decoded, innermost last
	buf    []byte       // scratch for strings with escapes
}

var decoderPool = sync.Pool{New: func() any { return new(decoder) }}

// decodeJSON decodes one JSON value (any kind) into a Lua value.
func decodeJSON(data []byte) (lua.LValue, error) {
	d := decoderPool.Get().(*decoder)
	d.data, d.pos, d.depth = data, 0, 0
	if d.shared = len(data) <= shareSourceMax; d.shared {
		d.src = string(data)
	}
	v, err := d.document()
	d.data, d.src = nil, ""
	clear(d.vals) // left filled only by an error
	clear(d.keys)
	d.vals, d.keys = d.vals[:0], d.keys[:0]
	if cap(d.vals) > maxPooledValues {
		d.vals, d.keys = nil, nil
	}
	decoderPool.Put(d)
	return v, err
}

// decodePayload decodes a payload for a callback: raw bytes become a Lua string, empty JSON
// text an empty table, and a payload that is JSON null nil (a client may send any JSON
// value as a payload; luachan.null only stands for a null inside one).
func decodePayload(p Payload) (lua.LValue, error) {
	if p.Binary {
		return lua.LString(p.Data), nil
	}
	if len(p.Data) == 0 {
		return newTable(0, 0), nil
	}
	v, err := decodeJSON(p.Data)
	if v == null {
		return lua.LNil, nil
	}
	return v, err
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", ErrPayload, fmt.Sprintf(format, args...), d.pos)
}

func (d *decoder) document() (lua.LValue, error) {
	d.skipSpace()
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	d.skipSpace()
	if d.pos != len(d.data) {
		return nil, d.errorf("unexpected %q after the value", d.data[d.pos])
	}
	return v, nil
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) value() (lua.LValue, error) {
	if d.pos >= len(d.data) {
		return nil, d.errorf("unexpected end of input")
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		return lua.LString(s), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case c == 't':
		return d.literal("true", lua.LTrue)
	case c == 'f':
		return d.literal("false", lua.LFalse)
	case c == 'n':
		return d.literal("null", null)
	default:
		return nil, d.errorf("unexpected %q", c)
	}
}

func (d *decoder) literal(word string, v lua.LValue) (lua.LValue, error) {
	if len(d.data)-d.pos < len(word) || string(d.data[d.pos:d.pos+len(word)]) != word {
		return nil, d.errorf("invalid literal")
	}
	d.pos += len(word)
	return v, nil
}

// enter and leave track nesting; deeper than maxDepth is an error.
func (d *decoder) enter() error {
	d.depth++
	if d.depth > maxDepth {
		return d.errorf("nesting deeper than %d levels", maxDepth)
	}
	d.pos++ // the opening bracket
	d.skipSpace()
	return nil
}

func (d *decoder) object() (lua.LValue, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	base := len(d.vals)
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		d.depth--
		return newTable(0, 0), nil
	}
	for {
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, d.errorf("expected a string key")
		}
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, d.errorf("expected ':'")
		}
		d.pos++
		d.skipSpace()
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		d.keys = append(d.keys, k)
		d.vals = append(d.vals, v)
		more, err := d.separator('}')
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
	}
	n := len(d.vals) - base
	kbase := len(d.keys) - n
	t := newObject(d.keys[kbase:], d.vals[base:])
	clear(d.vals[base:])
	clear(d.keys[kbase:])
	d.vals, d.keys = d.vals[:base], d.keys[:kbase]
	d.depth--
	return t, nil
}

// separator reads what follows a member of an object or array: a ',' (more follow)
// or close (the end of it), with the spaces around.
func (d *decoder) separator(close byte) (more bool, err error) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return false, d.errorf("unexpected end of input")
	}
	switch d.data[d.pos] {
	case ',':
		d.pos++
		d.skipSpace()
		return true, nil
	case close:
		d.pos++
		return false, nil
	}
	return false, d.errorf("expected ',' or '%c'", close)
}

func (d *decoder) array() (lua.LValue, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	base := len(d.vals)
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		d.depth--
		return markArray(newTable(0, 0)), nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		d.vals = append(d.vals, v)
		more, err := d.separator(']')
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
	}
	items := d.vals[base:]
	t := newTable(len(items), 0)
	for _, v := range items {
		t.Append(v)
	}
	clear(items)
	d.vals = d.vals[:base]
	d.depth--
	return markArray(t), nil
}

// str reads a JSON string starting at the opening quote. Strings without escapes are cut from
// the shared source when there is one. Bytes that are not UTF-8 become U+FFFD, as in
// encoding/json, so what the encoder writes back names the same keys.
func (d *decoder) str() (string, error) {
	start := d.pos + 1
	var high byte // OR of all bytes: >= 0x80 when the string may hold bad UTF-8
	for i := start; i < len(d.data); i++ {
		switch c := d.data[i]; {
		case c == '"':
			if high >= utf8.RuneSelf && !utf8.Valid(d.data[start:i]) {
				return d.escaped(start, start)
			}
			d.pos = i + 1
			if d.shared {
				return d.src[start:i], nil
			}
			return string(d.data[start:i]), nil
		case c == '\\':
			return d.escaped(start, i)
		case c < 0x20:
			d.pos = i
			return "", d.errorf("control character in string")
		default:
			high |= c
		}
	}
	d.pos = len(d.data)
	return "", d.errorf("unterminated string")
}

// escaped finishes a string the slow way, from data[i:]; data[start:i] is plain valid text.
func (d *decoder) escaped(start, i int) (string, error) {
	b := append(d.buf[:0], d.data[start:i]...)
	defer func() { d.buf = b[:0] }()
	for i < len(d.data) {
		c := d.data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return string(b), nil
		case c < 0x20:
			d.pos = i
			return "", d.errorf("control character in string")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d.data[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, "\uFFFD"...)
			} else {
				b = append(b, d.data[i:i+size]...)
			}
			i += size
			continue
		case c != '\\':
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(d.data) {
			break
		}
		switch e := d.data[i+1]; e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, n := d.unicodeEscape(i)
			if n == 0 {
				d.pos = i
				return "", d.errorf("invalid \\u escape")
			}
			b = utf8.AppendRune(b, r)
			i += n
			continue
		default:
			d.pos = i
			return "", d.errorf("invalid escape '\\%c'", e)
		}
		i += 2
	}
	d.pos = len(d.data)
	return "", d.errorf("unterminated string")
}

// unicodeEscape reads \uXXXX at data[i:] (and a low surrogate after a high one) and returns the
// rune and the bytes used, 0 if malformed. Lone surrogates become U+FFFD, as in encoding/json.
func (d *decoder) unicodeEscape(i int) (rune, int) {
	r := hex4(d.data, i+2)
	if r < 0 {
		return 0, 0
	}
	if !utf16.IsSurrogate(r) {
		return r, 6
	}
	if i+12 <= len(d.data) && d.data[i+6] == '\\' && d.data[i+7] == 'u' {
		if r2 := hex4(d.data, i+8); r2 >= 0 {
			if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
				return dec, 12
			}
		}
	}
	return utf8.RuneError, 6
}

// hex4 parses four hex digits at b[i:], or returns -1.
func hex4(b []byte, i int) rune {
	if i+4 > len(b) {
		return -1
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// maxFastDigits is how many digits an integer may have to be parsed without strconv (exact in float64).
const maxFastDigits = 15

// number reads a JSON number; integers are parsed by hand, the rest by strconv.
func (d *decoder) number() (lua.LValue, error) {
	b, start := d.data, d.pos
	i := start
	neg := b[i] == '-'
	if neg {
		i++
	}
	digits := i
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		d.pos = i
		return nil, d.errorf("invalid number")
	}
	intEnd := i
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			d.pos = i
			return nil, d.errorf("invalid number")
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			d.pos = i
			return nil, d.errorf("invalid number")
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	d.pos = i
	if i == intEnd && intEnd-digits <= maxFastDigits {
		var n int64
		for _, c := range b[digits:intEnd] {
			n = n*10 + int64(c-'0')
		}
		if neg {
			return lua.LNumber(-n), nil
		}
		return numberValue(float64(n)), nil
	}
	f, err := strconv.ParseFloat(string(b[start:i]), 64)
	if err != nil && (math.IsInf(f, 0) || math.IsNaN(f)) {
		d.pos = start
		return nil, d.errorf("number out of range")
	}
	return numberValue(f), nil
}
