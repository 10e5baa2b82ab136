package luabind

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// fakeHost connects and joins, and fails refute_push.
type fakeHost struct{ TestHost }

func (fakeHost) RefutePush(any, string, []byte) error                   { return errors.New("refute_push: nope") }
func (fakeHost) Connect(map[string]string, string) (any, string, error) { return 1, "", nil }
func (fakeHost) Join(any, string, []byte) (any, TestReply, error) {
	return 2, TestReply{Status: "ok", Response: []byte(`{}`)}, nil
}

// TestTestFileRun runs a script test's functions: in name order, failures at the test's
// line, an endless loop stopped by the CPU budget.
func TestTestFileRun(t *testing.T) {
	src := `local t = require("luachan.test")
local M = {}
function M.test_b() assert(false) end
function M.test_a()
  local s = t.connect()
  local ch = t.join(s, "x:1")
  assert(ch.topic == "x:1")
  t.refute_push(ch, "e")
end
function M.test_c() while true do end end
function M.test_d() error("boom") end
M.helper = 1
return M`
	f, err := LoadTestFile(Options{}, "x_test.lua", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.Tests(), ","); got != "test_a,test_b,test_c,test_d" {
		t.Fatal(got)
	}
	want := map[string]string{
		"test_a": "x_test.lua:8: refute_push: nope",
		"test_b": "x_test.lua:3: assertion failed!",
		"test_c": "x_test.lua:10: test_c ran out of time (CPU budget 50ms)",
		"test_d": "x_test.lua:11: boom",
	}
	for _, name := range f.Tests() {
		err := f.Run(context.Background(), Options{Timeout: 50 * time.Millisecond}, fakeHost{}, name)
		if err == nil || err.Error() != want[name] {
			t.Errorf("%s: got %v, want %s", name, err, want[name])
		}
	}
}
