package luabind_test

import (
	"testing"
	"time"
)

// slowCallSocket is a socket whose socket:call waits before answering, as one waiting
// for a busy topic or for its owner on another node does.
type slowCallSocket struct {
	*fakeSocket
	wait time.Duration
}

func (s slowCallSocket) Call([]byte) ([]byte, error) {
	time.Sleep(s.wait) // the wait being simulated
	return []byte(`{"n":1}`), nil
}

// TestBudgetStopsInSocketCall: the time a callback waits in socket:call is not its CPU
// budget: a call answered after more than the budget returns, and the callback goes on.
func TestBudgetStopsInSocketCall(t *testing.T) {
	const budget = 200 * time.Millisecond // what the callback does besides waiting fits in it even on a loaded machine
	opts, _, _ := testOptions(t)
	opts.Timeout = budget
	s := mustLoad(t, opts, `return { topic = 'a', join = function() return true end,
		handle_in = function(event, p, socket) local r = socket:call({}) return "ok", r end }`)
	status, reply, err := s.HandleIn(testContext(t), slowCallSocket{newFakeSocket("a"), 3 * budget}, nil, "x", jsonPayload(`{}`))
	if err != nil || status != "ok" || reply == nil || string(reply.Data) != `{"n":1}` {
		t.Fatalf("a socket:call slower than the budget: %q %v %v; want ok {\"n\":1}", status, reply, err)
	}
}
