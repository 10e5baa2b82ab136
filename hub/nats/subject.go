package nats

import "strings"

// escapeToken writes s as one NATS subject token (or key-value key part): bytes in
// [A-Za-z0-9_-] stay, every other byte becomes =XX (upper-case hex), so dots, '*', '>',
// spaces and any UTF-8 stay inside the token. The empty string is "=", which no escape
// produces.
func escapeToken(s string) string {
	if s == "" {
		return "="
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plainByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// unescapeToken reverses escapeToken; ok is false for a token escapeToken cannot write.
func unescapeToken(t string) (s string, ok bool) {
	if t == "=" {
		return "", true
	}
	if t == "" {
		return "", false
	}
	var b strings.Builder
	b.Grow(len(t))
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case plainByte(c):
			b.WriteByte(c)
		case c == '=' && i+2 < len(t) && isUpperHex(t[i+1]) && isUpperHex(t[i+2]):
			b.WriteByte(unhex(t[i+1])<<4 | unhex(t[i+2]))
			i += 2
		default:
			return "", false
		}
	}
	return b.String(), true
}

func plainByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}
