package luabind

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// formatFlags are the flags a string.format conversion may have, as in C.
const formatFlags = "-+ #0"

// strFormat is string.format(fmt, ...) with Lua 5.1's rules: conversions %c %d %i %o %u %x %X
// %e %E %f %g %G %q %s and %%, flags from formatFlags, width and precision of at most two
// digits each. %s takes any value, through tostring. The result is capped at maxStringLen.
// (gopher-lua's hands the format to Go's fmt, which takes widths of any size.)
func strFormat(L *lua.LState) int {
	format := L.CheckString(1)
	var b []byte
	arg := 1
	for i := 0; i < len(format); {
		c := format[i]
		i++
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i < len(format) && format[i] == '%' {
			b = append(b, '%')
			i++
			continue
		}
		arg++
		spec, verb, next := scanFormat(L, format, i)
		i = next
		b = appendFormatted(L, b, spec, verb, arg)
		checkLen(L, "string.format", float64(len(b)))
	}
	L.Push(lua.LString(b))
	return 1
}

// formatSpec is one conversion's flags, width and precision (-1 when absent).
type formatSpec struct {
	flags       string
	width, prec int
}

// scanFormat reads the flags, width and precision starting at format[i] and the conversion
// letter after them; it returns them and the index after the letter.
func scanFormat(L *lua.LState, format string, i int) (formatSpec, byte, int) {
	spec := formatSpec{width: -1, prec: -1}
	start := i
	for i < len(format) && strings.IndexByte(formatFlags, format[i]) >= 0 {
		i++
	}
	if i-start > len(formatFlags) {
		L.RaiseError("invalid format (repeated flags)")
	}
	spec.flags = format[start:i]
	digits := func() int {
		n, d := 0, 0
		for ; d < 3 && i < len(format) && format[i] >= '0' && format[i] <= '9'; d++ {
			n = n*10 + int(format[i]-'0')
			i++
		}
		if d > 2 {
			L.RaiseError("invalid format (width or precision too long)")
		}
		if d == 0 {
			return -1
		}
		return n
	}
	spec.width = digits()
	if i < len(format) && format[i] == '.' {
		i++
		if spec.prec = digits(); spec.prec < 0 {
			spec.prec = 0
		}
	}
	if i >= len(format) {
		L.RaiseError("%s", "invalid option '%' to 'format'")
	}
	return spec, format[i], i + 1
}

// goFormat is spec as a Go fmt directive for verb.
func (s formatSpec) goFormat(verb byte) string {
	f := "%" + s.flags
	if s.width >= 0 {
		f += strconv.Itoa(s.width)
	}
	if s.prec >= 0 {
		f += "." + strconv.Itoa(s.prec)
	}
	return f + string(verb)
}

// pad writes s into b, padded with spaces to the spec's width (on the right with '-').
func (s formatSpec) pad(b []byte, text string) []byte {
	fill := s.width - len(text)
	if fill > 0 && !strings.Contains(s.flags, "-") {
		b = append(b, strings.Repeat(" ", fill)...)
	}
	b = append(b, text...)
	if fill > 0 && strings.Contains(s.flags, "-") {
		b = append(b, strings.Repeat(" ", fill)...)
	}
	return b
}

// appendFormatted writes argument arg converted by verb.
func appendFormatted(L *lua.LState, b []byte, spec formatSpec, verb byte, arg int) []byte {
	switch verb {
	case 'c':
		return spec.pad(b, string([]byte{byte(int(L.CheckNumber(arg)))}))
	case 'd', 'i':
		return fmt.Appendf(b, spec.goFormat('d'), int64(L.CheckNumber(arg)))
	case 'o', 'x', 'X':
		n := uint64(int64(L.CheckNumber(arg)))
		if n == 0 { // C's %#x of 0 is "0", Go's "0x0"
			spec.flags = strings.ReplaceAll(spec.flags, "#", "")
		}
		return fmt.Appendf(b, spec.goFormat(verb), n)
	case 'u':
		return fmt.Appendf(b, spec.goFormat('d'), uint64(int64(L.CheckNumber(arg))))
	case 'e', 'E', 'f', 'g', 'G':
		f := float64(L.CheckNumber(arg))
		if math.IsInf(f, 0) || math.IsNaN(f) {
			text := "inf"
			switch {
			case math.IsNaN(f):
				text = "nan"
			case f < 0:
				text = "-inf"
			case strings.Contains(spec.flags, "+"):
				text = "+inf"
			}
			if verb == 'E' || verb == 'G' {
				text = strings.ToUpper(text)
			}
			return spec.pad(b, text)
		}
		if (verb == 'g' || verb == 'G') && spec.prec < 0 {
			spec.prec = 6 // C's default; Go's is the shortest exact form
		}
		return fmt.Appendf(b, spec.goFormat(verb), f)
	case 'q':
		return appendQuoted(b, L.CheckString(arg))
	case 's':
		s := L.ToStringMeta(L.CheckAny(arg)).String()
		if spec.prec < 0 && len(s) >= 100 {
			return append(b, s...) // as Lua 5.1: long strings are copied whole
		}
		if spec.prec >= 0 && spec.prec < len(s) {
			s = s[:spec.prec]
		}
		return spec.pad(b, s)
	}
	L.RaiseError("invalid option '%%%c' to 'format'", verb)
	return b
}

// appendQuoted writes s as %q does: between double quotes, with '"', '\\', newline, '\r' and
// NUL escaped so the Lua reader reads back the same string.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\', '\n':
			b = append(b, '\\', c)
		case '\r':
			b = append(b, `\r`...)
		case 0:
			b = append(b, `\000`...)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
