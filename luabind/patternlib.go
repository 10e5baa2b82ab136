package luabind

import (
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// The string library's pattern functions, on the budgeted matcher of pattern.go, with Lua
// 5.1's semantics (lstrlib.c's str_find_aux, gmatch_aux and str_gsub).

// strFind is string.find(s, pattern, init, plain).
func strFind(L *lua.LState) int {
	return findAux(L, true)
}

// strMatch is string.match(s, pattern, init).
func strMatch(L *lua.LState) int {
	return findAux(L, false)
}

// startIndex is the 0-based position Lua's init argument n names in a string of length l.
func startIndex(n, l int) int {
	if n < 0 {
		n += l + 1
	}
	switch {
	case n < 1:
		return 0
	case n > l:
		return l
	}
	return n - 1
}

func findAux(L *lua.LState, find bool) int {
	s, pat := L.CheckString(1), L.CheckString(2)
	init := startIndex(L.OptInt(3, 1), len(s))
	if find && (lua.LVAsBool(L.Get(4)) || !strings.ContainsAny(pat, patSpecials)) {
		if i := strings.Index(s[init:], pat); i >= 0 {
			L.Push(lua.LNumber(init + i + 1))
			L.Push(lua.LNumber(init + i + len(pat)))
			return 2
		}
		L.Push(lua.LNil)
		return 1
	}
	m := newMatcher(L, s, pat)
	p, anchor := 0, strings.HasPrefix(pat, "^")
	if anchor {
		p = 1
	}
	for s1 := init; s1 <= len(s); s1++ {
		m.level = 0
		if e := m.match(s1, p); e >= 0 {
			if find {
				L.Push(lua.LNumber(s1 + 1))
				L.Push(lua.LNumber(e))
				return m.pushCaptures(-1, -1) + 2
			}
			return m.pushCaptures(s1, e)
		}
		if anchor {
			break
		}
	}
	L.Push(lua.LNil)
	return 1
}

// strGmatch is string.gmatch(s, pattern): an iterator over the matches. As in Lua 5.1, a
// leading '^' is no anchor here but matches itself.
func strGmatch(L *lua.LState) int {
	s, pat := L.CheckString(1), L.CheckString(2)
	m := newMatcher(L, s, pat)
	pos := 0
	L.Push(L.NewFunction(func(L *lua.LState) int {
		m.L = L
		for src := pos; src <= len(s); src++ {
			m.level, m.depth = 0, 0
			if e := m.match(src, 0); e >= 0 {
				pos = e
				if e == src {
					pos++ // an empty match: go on one position at least
				}
				return m.pushCaptures(src, e)
			}
		}
		pos = len(s) + 1
		return 0
	}))
	return 1
}

// strGsub is string.gsub(s, pattern, repl, n): repl is a string (with %0-%9 for captures and
// %% for '%'), a table (indexed by the first capture) or a function (called with the
// captures); false or nil from the last two keep the match. The result is capped at
// maxStringLen.
func strGsub(L *lua.LState) int {
	src, pat := L.CheckString(1), L.CheckString(2)
	repl := L.Get(3)
	switch repl.(type) {
	case lua.LNumber, lua.LString, *lua.LTable, *lua.LFunction:
	default:
		L.ArgError(3, "string/function/table expected")
	}
	maxN := L.OptInt(4, len(src)+1)
	p, anchor := 0, strings.HasPrefix(pat, "^")
	if anchor {
		p = 1
	}
	m := newMatcher(L, src, pat)
	var b []byte
	s, n := 0, 0
	for n < maxN {
		m.level = 0
		e := m.match(s, p)
		if e >= 0 {
			n++
			b = m.appendReplacement(b, repl, s, e)
			checkLen(L, "string.gsub", float64(len(b)))
		}
		switch {
		case e > s: // a non-empty match: skip it
			s = e
		case s < len(src):
			b = append(b, src[s])
			s++
		default:
			s = len(src) + 1
		}
		if s > len(src) || anchor {
			break
		}
	}
	if s < len(src) {
		b = append(b, src[s:]...)
	}
	checkLen(L, "string.gsub", float64(len(b)))
	L.Push(lua.LString(b))
	L.Push(lua.LNumber(n))
	return 2
}

// appendReplacement writes what repl makes of the match spanning src[s:e].
func (m *matcher) appendReplacement(b []byte, repl lua.LValue, s, e int) []byte {
	L := m.L
	var v lua.LValue
	switch r := repl.(type) {
	case lua.LString, lua.LNumber:
		news := lua.LVAsString(r)
		for {
			i := strings.IndexByte(news, patEsc)
			if i < 0 || i == len(news)-1 {
				return append(b, news...)
			}
			b = append(b, news[:i]...)
			switch c := news[i+1]; {
			case c == '0':
				b = append(b, m.src[s:e]...)
			case c >= '1' && c <= '9':
				b = append(b, lua.LVAsString(m.captureValue(int(c-'1'), s, e))...)
			default:
				b = append(b, c)
			}
			news = news[i+2:]
		}
	case *lua.LFunction:
		L.Push(r)
		L.Call(m.pushCaptures(s, e), 1)
		v = L.Get(-1)
		L.Pop(1)
	case *lua.LTable:
		v = L.GetTable(r, m.captureValue(0, s, e))
	}
	switch v.(type) {
	case *lua.LNilType:
		return append(b, m.src[s:e]...) // keep the original text
	case lua.LBool:
		if v == lua.LFalse {
			return append(b, m.src[s:e]...)
		}
	case lua.LString, lua.LNumber:
		return append(b, lua.LVAsString(v)...)
	}
	L.RaiseError("invalid replacement value (a %s)", typeName(v))
	return b
}
