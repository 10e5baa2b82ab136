package luabind

import (
	lua "github.com/yuin/gopher-lua"
)

// Lua 5.1 patterns (the manual's section 5.4.1), matched by backtracking as lstrlib.c does,
// but checking the CPU budget every budgetCheckEvery steps: gopher-lua's matcher cannot be
// interrupted, and string.find(("a"):rep(5000), ("a-"):rep(12) .. "b") runs for minutes in it.
// Here it ends with the callback's budget.

const (
	// maxCaptures is how many captures a pattern may have (LUA_MAXCAPTURES).
	maxCaptures = 32
	// maxPatternLen is the longest pattern the pattern functions take.
	maxPatternLen = 16 << 10
	// maxMatchDepth bounds the matcher's recursion, which grows with the pattern's items
	// (Lua 5.2's MAXCCALLS); deeper is "pattern too complex".
	maxMatchDepth = 200

	capUnfinished = -1 // capture[i].len of a capture still open
	capPosition   = -2 // capture[i].len of a position capture, ()
	patEsc        = '%'
	patSpecials   = "^$*+?.([%-"
)

// matcher is the state of matching one pattern against one subject. Positions are byte
// indexes into src and pat; -1 stands for "no match".
type matcher struct {
	L       *lua.LState
	src     string
	pat     string
	level   int // captures opened so far
	capture [maxCaptures]struct{ init, len int }
	depth   int
	steps   int
}

func newMatcher(L *lua.LState, src, pat string) *matcher {
	if len(pat) > maxPatternLen {
		L.RaiseError("pattern too long (%d bytes, at most %d)", len(pat), maxPatternLen)
	}
	return &matcher{L: L, src: src, pat: pat}
}

// step counts one unit of work, checking the budget now and then.
func (m *matcher) step() {
	if m.steps++; m.steps%budgetCheckEvery == 0 {
		checkBudget(m.L)
	}
}

// at is pat[i], or 0 past its end (where C reads the terminating NUL).
func (m *matcher) at(i int) byte {
	if i < len(m.pat) {
		return m.pat[i]
	}
	return 0
}

// classEnd returns the index after the single-character class starting at p.
func (m *matcher) classEnd(p int) int {
	c := m.pat[p]
	p++
	switch c {
	case patEsc:
		if p >= len(m.pat) {
			m.L.RaiseError("%s", "malformed pattern (ends with '%')")
		}
		return p + 1
	case '[':
		if m.at(p) == '^' {
			p++
		}
		for { // look for the closing ']'
			if p >= len(m.pat) {
				m.L.RaiseError("malformed pattern (missing ']')")
			}
			c := m.pat[p]
			p++
			if c == patEsc && p < len(m.pat) {
				p++ // skip escapes such as %]
			}
			if m.at(p) == ']' {
				return p + 1
			}
		}
	}
	return p
}

// matchClass reports whether c is in class %cl (an upper-case letter is the complement).
func matchClass(c, cl byte) bool {
	var res bool
	switch cl | 0x20 { // lower case
	case 'a':
		res = isAlpha(c)
	case 'c':
		res = c < 0x20 || c == 0x7f
	case 'd':
		res = c >= '0' && c <= '9'
	case 'l':
		res = c >= 'a' && c <= 'z'
	case 'p':
		res = c > 0x20 && c < 0x7f && !isAlpha(c) && !(c >= '0' && c <= '9')
	case 's':
		res = c == ' ' || c >= '\t' && c <= '\r'
	case 'u':
		res = c >= 'A' && c <= 'Z'
	case 'w':
		res = isAlpha(c) || c >= '0' && c <= '9'
	case 'x':
		res = c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'f'
	case 'z':
		res = c == 0
	default:
		return cl == c
	}
	if cl >= 'A' && cl <= 'Z' {
		return !res
	}
	return res
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// matchBracketClass reports whether c is in the set [...] from p (at '[') to ec (at ']').
func (m *matcher) matchBracketClass(c byte, p, ec int) bool {
	in := true
	if m.at(p+1) == '^' {
		in = false
		p++
	}
	for p++; p < ec; p++ {
		switch {
		case m.pat[p] == patEsc:
			p++
			if matchClass(c, m.at(p)) {
				return in
			}
		case m.at(p+1) == '-' && p+2 < ec:
			p += 2
			if m.pat[p-2] <= c && c <= m.pat[p] {
				return in
			}
		case m.pat[p] == c:
			return in
		}
	}
	return !in
}

// singleMatch reports whether src[s] exists and matches the class from p to ep.
func (m *matcher) singleMatch(s, p, ep int) bool {
	if s >= len(m.src) {
		return false
	}
	c := m.src[s]
	switch m.pat[p] {
	case '.':
		return true
	case patEsc:
		return matchClass(c, m.at(p+1))
	case '[':
		return m.matchBracketClass(c, p, ep-1)
	}
	return m.pat[p] == c
}

// match matches pat[p:] at src[s:] and returns where the match ends, or -1.
func (m *matcher) match(s, p int) int {
	if m.depth++; m.depth > maxMatchDepth {
		m.L.RaiseError("pattern too complex")
	}
	r := m.doMatch(s, p)
	m.depth--
	return r
}

func (m *matcher) doMatch(s, p int) int {
	for { // loops where lstrlib.c uses goto init: tail calls do not recurse
		m.step()
		if p >= len(m.pat) {
			return s // end of pattern: matched
		}
		switch m.pat[p] {
		case '(':
			if m.at(p+1) == ')' {
				return m.startCapture(s, p+2, capPosition)
			}
			return m.startCapture(s, p+1, capUnfinished)
		case ')':
			return m.endCapture(s, p+1)
		case '$':
			if p+1 == len(m.pat) {
				if s == len(m.src) {
					return s
				}
				return -1
			}
		case patEsc:
			switch next := m.at(p + 1); {
			case next == 'b':
				if s = m.matchBalance(s, p+2); s < 0 {
					return -1
				}
				p += 4
				continue
			case next == 'f':
				p += 2
				if m.at(p) != '[' {
					m.L.RaiseError("%s", "missing '[' after '%f' in pattern")
				}
				ep := m.classEnd(p)
				var prev, cur byte
				if s > 0 {
					prev = m.src[s-1]
				}
				if s < len(m.src) {
					cur = m.src[s]
				}
				if m.matchBracketClass(prev, p, ep-1) || !m.matchBracketClass(cur, p, ep-1) {
					return -1
				}
				p = ep
				continue
			case next >= '0' && next <= '9':
				if s = m.matchCapture(s, next); s < 0 {
					return -1
				}
				p += 2
				continue
			}
		}
		// A single-character class, maybe with a quantifier after it.
		ep := m.classEnd(p)
		ok := m.singleMatch(s, p, ep)
		switch m.at(ep) {
		case '?':
			if ok {
				if r := m.match(s+1, ep+1); r >= 0 {
					return r
				}
			}
			p = ep + 1
			continue
		case '*':
			return m.maxExpand(s, p, ep)
		case '+':
			if !ok {
				return -1
			}
			return m.maxExpand(s+1, p, ep)
		case '-':
			return m.minExpand(s, p, ep)
		}
		if !ok {
			return -1
		}
		s++
		p = ep
	}
}

// maxExpand matches as many repetitions as possible of the class p..ep, then the rest.
func (m *matcher) maxExpand(s, p, ep int) int {
	i := 0
	for m.singleMatch(s+i, p, ep) {
		m.step()
		i++
	}
	for ; i >= 0; i-- {
		if r := m.match(s+i, ep+1); r >= 0 {
			return r
		}
	}
	return -1
}

// minExpand matches as few repetitions as possible of the class p..ep, then the rest.
func (m *matcher) minExpand(s, p, ep int) int {
	for {
		if r := m.match(s, ep+1); r >= 0 {
			return r
		}
		if !m.singleMatch(s, p, ep) {
			return -1
		}
		s++
	}
}

func (m *matcher) startCapture(s, p, what int) int {
	if m.level >= maxCaptures {
		m.L.RaiseError("too many captures")
	}
	m.capture[m.level].init, m.capture[m.level].len = s, what
	m.level++
	r := m.match(s, p)
	if r < 0 {
		m.level-- // undo the capture
	}
	return r
}

func (m *matcher) endCapture(s, p int) int {
	l := m.captureToClose()
	m.capture[l].len = s - m.capture[l].init
	r := m.match(s, p)
	if r < 0 {
		m.capture[l].len = capUnfinished
	}
	return r
}

func (m *matcher) captureToClose() int {
	for l := m.level - 1; l >= 0; l-- {
		if m.capture[l].len == capUnfinished {
			return l
		}
	}
	m.L.RaiseError("invalid pattern capture")
	return 0
}

// matchBalance matches %bxy at src[s:], with x and y at pat[p] and pat[p+1].
func (m *matcher) matchBalance(s, p int) int {
	if p+1 >= len(m.pat) {
		m.L.RaiseError("unbalanced pattern")
	}
	if s >= len(m.src) || m.src[s] != m.pat[p] {
		return -1
	}
	open, closing, depth := m.pat[p], m.pat[p+1], 1
	for s++; s < len(m.src); s++ {
		m.step()
		switch m.src[s] {
		case closing:
			if depth--; depth == 0 {
				return s + 1
			}
		case open:
			depth++
		}
	}
	return -1
}

// matchCapture matches back-reference %1-%9 at src[s:]. A position capture matches nothing,
// as in lstrlib.c (where its negative length, as an unsigned size, is longer than any text).
func (m *matcher) matchCapture(s int, digit byte) int {
	l := m.checkCapture(digit)
	c := m.capture[l]
	if c.len >= 0 && len(m.src)-s >= c.len && m.src[s:s+c.len] == m.src[c.init:c.init+c.len] {
		return s + c.len
	}
	return -1
}

func (m *matcher) checkCapture(digit byte) int {
	l := int(digit) - '1'
	if l < 0 || l >= m.level || m.capture[l].len == capUnfinished {
		m.L.RaiseError("invalid capture index")
	}
	return l
}

// captureValue is capture i of a match spanning src[s:e]: the whole match when the pattern
// has no captures and i is 0, a position (1-based) for (), else the captured text.
func (m *matcher) captureValue(i, s, e int) lua.LValue {
	if i >= m.level {
		if i != 0 {
			m.L.RaiseError("invalid capture index")
		}
		return lua.LString(m.src[s:e])
	}
	c := m.capture[i]
	switch c.len {
	case capUnfinished:
		m.L.RaiseError("unfinished capture")
	case capPosition:
		return lua.LNumber(c.init + 1)
	}
	return lua.LString(m.src[c.init : c.init+c.len])
}

// pushCaptures pushes the captures of a match spanning src[s:e] (the whole match when there
// are none and s >= 0) and returns how many it pushed.
func (m *matcher) pushCaptures(s, e int) int {
	n := m.level
	if n == 0 && s >= 0 {
		n = 1
	}
	for i := range n {
		m.L.Push(m.captureValue(i, s, e))
	}
	return n
}
