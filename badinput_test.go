package luachan_test

// SPEC section 2, bad input: it closes only the offending connection, with a close code
// and reason, is logged once at warn, and never costs another client anything.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

const (
	// maxFrame is the SPEC's default frame size limit.
	maxFrame = 1 << 20
	// maxDepth is how deep a payload may nest (the payload object itself is level 1).
	maxDepth = 64
)

// nested returns a JSON object nesting depth levels: {"a":{"a":{}}} is depth 3.
func nested(depth int) string {
	return strings.Repeat(`{"a":`, depth-1) + `{}` + strings.Repeat(`}`, depth-1)
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))
	healthy := s.dial(t, "vsn=2.0.0")
	healthy.join("test:healthy", "1", `{}`, `{"joined":"test:healthy"}`)

	tests := []struct {
		name string
		typ  int
		data string
		code int // close code (hub contract: 1003 bad shape, 1007 bad UTF-8, 1009 too big)
	}{
		{"not JSON", websocket.TextMessage, `hello there`, websocket.CloseUnsupportedData},
		{"truncated JSON", websocket.TextMessage, `["1","1","test:x","echo",{`, websocket.CloseUnsupportedData},
		{"array of 4", websocket.TextMessage, `["1","1","test:x","echo"]`, websocket.CloseUnsupportedData},
		// any JSON value is a payload and elements after the fifth are ignored (see
		// payloads_test.go), but they must be JSON
		{"array of 6, the 6th not JSON", websocket.TextMessage, `["1","1","test:x","echo",{},nope]`, websocket.CloseUnsupportedData},
		{"payload not JSON", websocket.TextMessage, `["1","1","test:x","echo",str]`, websocket.CloseUnsupportedData},
		{"array of 6 nesting 65 levels", websocket.TextMessage,
			`["1","1","test:x","echo",{},` + nested(maxDepth+1) + `]`, websocket.CloseUnsupportedData},
		{"topic a number", websocket.TextMessage, `["1","1",5,"echo",{}]`, websocket.CloseUnsupportedData},
		{"event missing", websocket.TextMessage, `["1","1","test:x",null,{}]`, websocket.CloseUnsupportedData},
		{"JSON scalar", websocket.TextMessage, `42`, websocket.CloseUnsupportedData},
		{"payload nests 65 levels", websocket.TextMessage,
			`["1","1","test:x","phx_join",` + nested(maxDepth+1) + `]`, websocket.CloseUnsupportedData},
		{"invalid UTF-8", websocket.TextMessage, "[\"1\",\"1\",\"test:\xff\",\"echo\",{}]", websocket.CloseInvalidFramePayloadData},
		{"binary frame of unknown kind", websocket.BinaryMessage, "\x09\x00\x00\x00\x00", websocket.CloseUnsupportedData},
		{"binary lengths past the end", websocket.BinaryMessage, "\x00\x10\x10\x10\x10ab", websocket.CloseUnsupportedData},
		{"frame over 1 MiB", websocket.TextMessage,
			`["1","1","test:x","echo",{"x":"` + strings.Repeat("a", maxFrame) + `"}]`, websocket.CloseMessageTooBig},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			warnsBefore := s.log.count("level=WARN")
			bad := s.dial(t, "vsn=2.0.0")
			bad.join("test:bad", "1", `{}`, `{"joined":"test:bad"}`)
			bad.write(tc.typ, []byte(tc.data))
			if reason := bad.expectClose(tc.code); reason == "" {
				t.Errorf("closed with code %d and no reason, want a reason", tc.code)
			}

			// the healthy client is still served
			ref := fmt.Sprint(100 + i)
			healthy.send(`["1","` + ref + `","test:healthy","echo",{"i":` + ref + `}]`)
			healthy.expect(`["1","` + ref + `","test:healthy","phx_reply",{"status":"ok","response":{"i":` + ref + `}}]`)

			// logged once at warn
			err := poll(readTimeout, func() error {
				if n := s.log.count("level=WARN") - warnsBefore; n != 1 {
					return fmt.Errorf("%d new warn lines, want 1", n)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("a payload nesting 64 levels is fine", func(t *testing.T) {
		c := s.dial(t, "vsn=2.0.0")
		c.send(`["1","1","nope:deep","phx_join",` + nested(maxDepth) + `]`)
		c.expect(`[null,"1","nope:deep","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
	})
}
