package luabind

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"
)

// opener is a block or bracket still open while scanning a file: what opened it, where, and
// the token that closes it.
type opener struct {
	what   string // "function", "if", "{", ...
	closer string // "end", "until", "}", ...
	line   int
	header bool // a while or for whose "do" has not come yet
}

// continues are the tokens after which a statement or expression cannot end: a file ending on
// one of them ends in the middle of something, not in an open block.
var continues = map[int]bool{
	'+': true, '-': true, '*': true, '/': true, '%': true, '^': true, '#': true, '<': true,
	'>': true, '=': true, ',': true, '.': true, ':': true, parse.T2Comma: true, parse.TEqeq: true,
	parse.TNeq: true, parse.TLte: true, parse.TGte: true, parse.TAnd: true, parse.TOr: true,
	parse.TNot: true, parse.TLocal: true, parse.TIn: true, parse.TGoto: true, parse.T2Colon: true,
}

// eofError explains a syntax error that gopher-lua reports at the end of the file, where it
// gives no line, the way luac does: the innermost block left open and the line it opened on
// ("'end' expected (to close 'function' at line 2) near '<eof>'"), or the line where a string
// or comment left open started. The error's line is where the file ends, as luac counts it.
func eofError(file string, src []byte, pe *parse.Error) *ScriptError {
	end := 1 + bytes.Count(src, []byte("\n"))
	se := &ScriptError{File: file, Line: end}
	sc := parse.NewScanner(bytes.NewReader(src), file)
	lx := &parse.Lexer{}
	var (
		open []opener
		last = -1 // type of the last token
	)
	for {
		tok, err := sc.Scan(lx)
		if err != nil {
			// Only a string or comment left open makes the scanner fail at the end.
			what := "string"
			var pe *parse.Error
			if errors.As(err, &pe) && pe.Message != "unterminated string" {
				what = "long string"
				if tok.Type != parse.TString {
					what = "comment"
				}
			}
			se.Msg = fmt.Sprintf("unfinished %s (starting at line %d) near '<eof>'", what, tok.Pos.Line)
			return se
		}
		if tok.Type == parse.EOF {
			break
		}
		lx.PrevTokenType = tok.Type
		last = tok.Type
		open = track(open, tok)
	}
	inTable := len(open) > 0 && open[len(open)-1].what == "{"
	switch {
	case len(open) == 0 || continues[last] && !(inTable && last == ','):
		se.Msg = "unexpected symbol near '<eof>'"
		if pe.Message != "syntax error" {
			se.Msg = pe.Message + " near '<eof>'"
		}
	case open[len(open)-1].line == end:
		se.Msg = fmt.Sprintf("'%s' expected near '<eof>'", open[len(open)-1].closer)
	default:
		o := open[len(open)-1]
		se.Msg = fmt.Sprintf("'%s' expected (to close '%s' at line %d) near '<eof>'", o.closer, o.what, o.line)
	}
	return se
}

// track updates the stack of open blocks and brackets for one token.
func track(open []opener, tok ast.Token) []opener {
	push := func(what, closer string) []opener {
		return append(open, opener{what: what, closer: closer, line: tok.Pos.Line})
	}
	closeWith := func(closer string) []opener {
		if n := len(open); n > 0 && open[n-1].closer == closer {
			return open[:n-1]
		}
		return open
	}
	switch tok.Type {
	case parse.TFunction:
		return push("function", "end")
	case parse.TIf:
		return push("if", "end")
	case parse.TWhile, parse.TFor:
		open = push(tok.Str, "end")
		open[len(open)-1].header = true
		return open
	case parse.TDo:
		if n := len(open); n > 0 && open[n-1].header {
			open[n-1].header = false // the body of a while or for
			return open
		}
		return push("do", "end")
	case parse.TRepeat:
		return push("repeat", "until")
	case '{':
		return push("{", "}")
	case '(':
		return push("(", ")")
	case '[':
		return push("[", "]")
	case parse.TEnd:
		return closeWith("end")
	case parse.TUntil:
		return closeWith("until")
	case '}', ')', ']':
		return closeWith(tok.Str)
	}
	return open
}
