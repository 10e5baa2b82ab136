package luabind_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/luachan/luachan/luabind"
)

// TestNearMissFieldsWarn: a field within two edits of a callback or setting loads, with
// a warning naming the key and the field meant, logged and returned by Warnings; helpers
// and constants do not warn.
func TestNearMissFieldsWarn(t *testing.T) {
	opts, _, logs := testOptions(t)
	s := mustLoad(t, opts, `local r = { topic = "t:*", intercepts = { "x" }, max_len = 10, id = 1 }
function r.join() return true end
function r.handle_inn() end
function r.hadle_out() end
function r.format_message() end
return r`)
	want := []string{
		`unknown field "hadle_out": did you mean handle_out?`,
		`unknown field "handle_inn": did you mean handle_in?`,
		`unknown field "intercepts": did you mean intercept?`,
	}
	if got := s.Warnings(); !slices.Equal(got, want) {
		t.Errorf("Warnings() = %q, want %q", got, want)
	}
	var logged []string
	for _, line := range logs.lines(t) {
		if line["msg"] == "script warning" && line["script"] == "test.lua" && line["level"] == "WARN" {
			logged = append(logged, line["warning"].(string))
		}
	}
	if !slices.Equal(logged, want) {
		t.Errorf("logged warnings %q, want %q", logged, want)
	}
}

func TestConnectNearMissWarns(t *testing.T) {
	opts, _, _ := testOptions(t)
	c, err := luabind.LoadConnectSource(opts, "socket.lua", []byte(`return { connect = function() return true end, conect = 1 }`))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Warnings(); len(got) != 1 || !strings.Contains(got[0], "did you mean connect?") {
		t.Errorf("Warnings() = %q, want one naming connect", got)
	}
}

// TestInterceptNeedsHandleOut: an intercept list without handle_out does not load, since
// fast-laning the events would send every subscriber what handle_out was meant to filter.
func TestInterceptNeedsHandleOut(t *testing.T) {
	opts, _, _ := testOptions(t)
	_, err := luabind.LoadSource(opts, "test.lua", []byte(`return { topic = "t", intercept = { "new:msg" }, join = function() return true end }`))
	if err == nil || !strings.Contains(err.Error(), "no handle_out function") {
		t.Fatalf("load: %v, want an error naming the missing handle_out", err)
	}
	if !strings.HasPrefix(err.Error(), "test.lua") {
		t.Errorf("error %q does not name the file", err)
	}
}
