package luabind

import (
	"math"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	lua "github.com/yuin/gopher-lua"
)

// maxExactInt is the largest magnitude up to which every integer is exact in a float64 (2^53);
// integral numbers within it encode as integers ("42", not "42.0").
const maxExactInt = 1 << 53

// encoder writes Lua values as JSON. A table whose keys are exactly 1..n is an array, any other
// table an object (number keys become their decimal text), the empty table {}, and an empty
// table with the array mark (see arrayMeta) []. Functions,
// userdata other than luachan.null, threads, cycles, NaN and infinities cannot be encoded, nor
// can more than maxStringLen bytes of strings.
// Encoders are pooled; their buffers are reused.
type encoder struct {
	buf    []byte
	stack  []*lua.LTable // tables being encoded, outermost first: catches cycles, bounds depth
	viaAPI bool          // walk objects with next even when tablesByLayout (for tests)
}

// maxPooledBuffer is the largest buffer a pooled encoder keeps, so one huge payload does not
// pin memory for good.
const maxPooledBuffer = 64 << 10

var encoderPool = sync.Pool{New: func() any { return &encoder{buf: make([]byte, 0, 512)} }}

// errTooLongMsg is the message of encodeErrors for output over maxStringLen.
var errTooLongMsg = "cannot encode more than " + strconv.Itoa(maxStringLen) + " bytes"

// encodeError is a value that cannot be encoded. Its path is built while the error unwinds,
// so encoding pays nothing for error paths until one happens.
type encodeError struct {
	msg  string
	path []string // innermost first
}

// where renders the path under root, as in "payload.items[2].name".
func (e *encodeError) where(root string) string {
	var b strings.Builder
	b.WriteString(root)
	for i := len(e.path) - 1; i >= 0; i-- {
		b.WriteString(e.path[i])
	}
	return b.String()
}

// encodeValue encodes v as JSON into a fresh slice. root names v in errors ("payload").
func encodeValue(v lua.LValue, root string) ([]byte, error) {
	e := encoderPool.Get().(*encoder)
	err := e.encode(v, root)
	var out []byte
	if err == nil {
		out = make([]byte, len(e.buf))
		copy(out, e.buf)
	}
	e.release()
	return out, err
}

// encode encodes v into e.buf.
func (e *encoder) encode(v lua.LValue, root string) error {
	e.buf = e.buf[:0]
	err := e.value(v)
	clear(e.stack)
	e.stack = e.stack[:0]
	if err != nil {
		return &ScriptError{Msg: err.msg + " at " + err.where(root)}
	}
	return nil
}

// release puts e back in the pool, unless its buffer grew too large to keep.
func (e *encoder) release() {
	if cap(e.buf) <= maxPooledBuffer {
		encoderPool.Put(e)
	}
}

// encodePayload encodes a value a script gave as a payload: nil is {}, a string is a binary
// payload holding its bytes, anything else JSON.
func encodePayload(v lua.LValue) (Payload, error) {
	switch v := v.(type) {
	case *lua.LNilType:
		return Payload{Data: []byte("{}")}, nil
	case lua.LString:
		return Payload{Data: []byte(v), Binary: true}, nil
	}
	data, err := encodeValue(v, "payload")
	return Payload{Data: data}, err
}

// encodePushPayload is encodePayload for socket:push: JSON is left in a pooled encoder's
// buffer for Payload.Release to give back, since a push is copied as soon as it is queued.
func encodePushPayload(v lua.LValue) (Payload, error) {
	if _, ok := v.(*lua.LTable); !ok {
		return encodePayload(v)
	}
	e := encoderPool.Get().(*encoder)
	if err := e.encode(v, "payload"); err != nil {
		e.release()
		return Payload{}, err
	}
	return Payload{Data: e.buf, enc: e}, nil
}

func (e *encoder) value(v lua.LValue) *encodeError {
	switch v := v.(type) {
	case lua.LString:
		if len(e.buf)+len(v) > maxStringLen { // checked first too: escapes only add
			return &encodeError{msg: errTooLongMsg}
		}
		if e.buf = appendString(e.buf, string(v)); len(e.buf) > maxStringLen {
			return &encodeError{msg: errTooLongMsg}
		}
	case lua.LNumber:
		var ok bool
		if e.buf, ok = appendNumber(e.buf, float64(v)); !ok {
			if math.IsNaN(float64(v)) {
				return &encodeError{msg: "cannot encode NaN"}
			}
			return &encodeError{msg: "cannot encode infinity"}
		}
	case lua.LBool:
		e.buf = strconv.AppendBool(e.buf, bool(v))
	case *lua.LNilType:
		e.buf = append(e.buf, "null"...)
	case *lua.LTable:
		return e.table(v)
	default:
		if v == null {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		return &encodeError{msg: "cannot encode " + v.Type().String()}
	}
	return nil
}

func (e *encoder) table(t *lua.LTable) *encodeError {
	for _, seen := range e.stack {
		if seen == t {
			return &encodeError{msg: "cannot encode a cycle"}
		}
	}
	if len(e.stack) >= maxDepth {
		return &encodeError{msg: "cannot encode nesting deeper than " + strconv.Itoa(maxDepth) + " levels"}
	}
	e.stack = append(e.stack, t)
	defer func() { e.stack = e.stack[:len(e.stack)-1] }()

	if n := sequenceLen(t); n > 0 {
		e.buf = append(e.buf, '[')
		for i := 1; i <= n; i++ {
			if i > 1 {
				e.buf = append(e.buf, ',')
			}
			if err := e.value(t.RawGetInt(i)); err != nil {
				err.path = append(err.path, "["+strconv.Itoa(i)+"]")
				return err
			}
		}
		e.buf = append(e.buf, ']')
		return nil
	}
	if isArray(t) && isEmpty(t) {
		e.buf = append(e.buf, "[]"...)
		return nil
	}

	e.buf = append(e.buf, '{')
	if tablesByLayout && !e.viaAPI {
		// next's order, walked directly: next looks each key up in k2i to find where it was.
		l := layoutOf(t)
		for i, v := range l.array {
			if v != lua.LNil {
				if err := e.field(numberValue(float64(i+1)), v); err != nil {
					return err
				}
			}
		}
		for _, k := range l.keys {
			if v := t.RawGetH(k); v != lua.LNil {
				if err := e.field(k, v); err != nil {
					return err
				}
			}
		}
	} else {
		for k, v := t.Next(lua.LNil); k != lua.LNil; k, v = t.Next(k) {
			if err := e.field(k, v); err != nil {
				return err
			}
		}
	}
	if e.buf[len(e.buf)-1] == ',' {
		e.buf[len(e.buf)-1] = '}'
	} else {
		e.buf = append(e.buf, '}')
	}
	return nil
}

// field writes k:v and a comma.
func (e *encoder) field(k, v lua.LValue) *encodeError {
	switch k := k.(type) {
	case lua.LString:
		e.buf = appendString(e.buf, string(k))
	case lua.LNumber:
		e.buf = append(e.buf, '"')
		e.buf, _ = appendNumber(e.buf, float64(k)) // keys are never NaN
		e.buf = append(e.buf, '"')
	default:
		return &encodeError{msg: "cannot encode a " + k.Type().String() + " key"}
	}
	e.buf = append(e.buf, ':')
	if err := e.value(v); err != nil {
		err.path = append(err.path, keyPath(k))
		return err
	}
	e.buf = append(e.buf, ',')
	return nil
}

// keyPath renders one step of an error path: ".name" or "[3]".
func keyPath(k lua.LValue) string {
	if s, ok := k.(lua.LString); ok {
		return "." + string(s)
	}
	return "[" + k.String() + "]"
}

// sequenceLen returns n when t's keys are exactly 1..n, else 0.
func sequenceLen(t *lua.LTable) int {
	n := t.Len()
	if n == 0 {
		return 0
	}
	for i := 1; i <= n; i++ {
		if t.RawGetInt(i) == lua.LNil {
			return 0
		}
	}
	if k, _ := t.Next(numberValue(float64(n))); k != lua.LNil {
		return 0 // more keys after the sequence
	}
	return n
}

// appendNumber writes f as JSON: integral values within ±2^53 as integers, others in the
// shortest form that reads back the same. It reports false for NaN and infinities.
func appendNumber(buf []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return buf, false
	}
	if f == math.Trunc(f) && math.Abs(f) <= maxExactInt {
		return strconv.AppendInt(buf, int64(f), 10), true
	}
	format := byte('f')
	if abs := math.Abs(f); abs < 1e-6 || abs >= 1e21 {
		format = 'e'
	}
	start := len(buf)
	buf = strconv.AppendFloat(buf, f, format, -1, 64)
	if format == 'e' {
		// Shorten e-09 to e-9, as encoding/json does.
		if n := len(buf) - start; n >= 4 && buf[len(buf)-4] == 'e' && buf[len(buf)-3] == '-' && buf[len(buf)-2] == '0' {
			buf[len(buf)-2] = buf[len(buf)-1]
			buf = buf[:len(buf)-1]
		}
	}
	return buf, true
}

// plainASCII marks the bytes a JSON string may hold unescaped below utf8.RuneSelf.
var plainASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string. Bytes that are not UTF-8 become U+FFFD, as in
// encoding/json, since a Lua string is any bytes but JSON text is UTF-8. U+FFFD is written as
// itself, not escaped, so encoding what was decoded from our own output changes nothing.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plainASCII[c] {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, "\uFFFD"...)
			i++
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
