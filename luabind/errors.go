package luabind

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// ErrPayload is wrapped by errors about a payload that is not valid JSON or nests too deep.
var ErrPayload = errors.New("luabind: invalid payload")

// ScriptError is an error raised by or about a script.
type ScriptError struct {
	File    string // relative file name
	Line    int    // 0 if unknown
	Msg     string
	Timeout bool // the CPU budget ran out

	cause error // the context error that stopped the script, if one did
}

// Error reads "rooms.lua:12: attempt to index a nil value", or "rooms.lua: msg" when the line
// is unknown. It never holds a Go or Lua stack trace.
func (e *ScriptError) Error() string {
	if e.Line > 0 {
		return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return e.File + ": " + e.Msg
}

// Unwrap returns context.DeadlineExceeded or context.Canceled when the script was stopped
// for running out of time or by its caller, else nil.
func (e *ScriptError) Unwrap() error { return e.cause }

// scriptErrorf builds a ScriptError about file with no known line.
func scriptErrorf(file, format string, args ...any) *ScriptError {
	return &ScriptError{File: file, Msg: fmt.Sprintf(format, args...)}
}

// compileError turns a gopher-lua parse or compile error about src into a ScriptError naming
// file and line, also at the end of the file (see eofError).
func compileError(file string, src []byte, err error) *ScriptError {
	var pe *parse.Error
	if errors.As(err, &pe) {
		line := pe.Pos.Line
		if line == parse.EOF {
			return eofError(file, src, pe)
		}
		msg := pe.Message
		if pe.Token != "" {
			msg += " near '" + pe.Token + "'"
		}
		return &ScriptError{File: file, Line: line, Msg: msg}
	}
	var ce *lua.CompileError
	if errors.As(err, &ce) {
		return &ScriptError{File: file, Line: ce.Line, Msg: ce.Message}
	}
	return &ScriptError{File: file, Msg: err.Error()}
}

// runtimeError turns the error of a protected call into a ScriptError. defaultFile names the
// script when the message carries no position (error("x", 0), errors raised as tables).
func runtimeError(defaultFile string, err error) *ScriptError {
	var ae *lua.ApiError
	if !errors.As(err, &ae) {
		return &ScriptError{File: defaultFile, Msg: err.Error()}
	}
	if s, ok := ae.Object.(lua.LString); ok {
		return parsePosition(defaultFile, string(s))
	}
	// error({...}) or error(42): the value itself is the message, and Lua adds no
	// position to it, so the line is the first Lua frame of the traceback.
	se := &ScriptError{File: defaultFile, Msg: ae.Object.String()}
	if msg, encErr := encodeValue(ae.Object, "error"); encErr == nil {
		se.Msg = string(msg)
	}
	if file, line := tracebackPosition(ae.StackTrace); line > 0 {
		se.File, se.Line = file, line
	}
	return se
}

// tracebackPosition returns the file and line of the first Lua frame in a gopher-lua
// stack traceback ("\thostile.lua:19: in function ..."), skipping Go frames ("[G]: ...").
func tracebackPosition(trace string) (string, int) {
	for _, l := range strings.Split(trace, "\n") {
		l = strings.TrimSpace(l)
		if !strings.Contains(l, ".lua:") {
			continue
		}
		if se := parsePosition("", l); se.Line > 0 {
			return se.File, se.Line
		}
	}
	return "", 0
}

// parsePosition splits "file.lua:12: msg" (or "file.lua: msg", a module's error without a
// line) into its parts; text without such a prefix is all Msg.
func parsePosition(defaultFile, text string) *ScriptError {
	if i := strings.Index(text, "\nstack traceback:"); i >= 0 {
		text = text[:i]
	}
	file, rest, ok := strings.Cut(text, ":")
	if !ok || file == "" || strings.ContainsAny(file, " \n") {
		return &ScriptError{File: defaultFile, Msg: text}
	}
	lineText, msg, ok := strings.Cut(rest, ":")
	if line, err := strconv.Atoi(lineText); ok && err == nil && line > 0 {
		return &ScriptError{File: file, Line: line, Msg: strings.TrimPrefix(msg, " ")}
	}
	if strings.HasSuffix(file, ".lua") && strings.HasPrefix(rest, " ") {
		return &ScriptError{File: file, Msg: rest[1:]}
	}
	return &ScriptError{File: defaultFile, Msg: text}
}

// scriptMsg is the message of the *ScriptError in err's chain, without file and line, for
// raising it again in the calling script; another error gives its whole text.
func scriptMsg(err error) string {
	var se *ScriptError
	if errors.As(err, &se) {
		return se.Msg
	}
	return err.Error()
}
