package luachan_test

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// hangingLeaveLua tracks presence in Redis on join, and on leave broadcasts and then hangs for as
// long as its budget lets it.
const hangingLeaveLua = `return {
  topic = "hang:*",
  join = function(topic, payload, socket)
    luachan.presence.track(socket, "u", {})
    return true
  end,
  leave = function(reason, socket)
    luachan.broadcast(socket.topic, "bye", {})
    while true do end
  end,
}
`

// TestShutdownWithinTenSecondsWhenEverythingHangs: a leave that hangs for its whole
// (long) budget and a broker (Redis, NATS) that stops answering during shutdown still leave the process
// exiting 0 within SPEC section 1's 10 s: every step of the shutdown shares one deadline.
func TestShutdownWithinTenSecondsWhenEverythingHangs(t *testing.T) {
	forEachBroker(t, testShutdownWithinTenSecondsWhenEverythingHangs)
}

func testShutdownWithinTenSecondsWhenEverythingHangs(t *testing.T, rs testBroker) {
	const limit = 10*time.Second + 500*time.Millisecond // the SPEC's 10 s, and the process's exit
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "hang.lua"), hangingLeaveLua)
	s := startServer(t, dir, "-pubsub", rs.url(), "-script-timeout", "60s", "-log-level", "info")
	c := s.dial(t, "vsn=2.0.0")
	c.join("hang:1", "1", `{}`, `{}`)
	c.readWaiting("presence_state") // the track reached Redis

	if err := rs.signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.signal(syscall.SIGCONT) }) // before the broker's kill
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(stopTimeout + 10*time.Second):
		t.Fatalf("luachan did not exit within %v of SIGTERM", stopTimeout+10*time.Second)
	}
	if elapsed := time.Since(start); elapsed > limit {
		t.Errorf("luachan exited %v after SIGTERM, want within %v", elapsed, limit)
	} else {
		t.Logf("luachan exited %v after SIGTERM", elapsed)
	}
	if s.err != nil {
		t.Errorf("luachan exited with %v, want status 0", s.err)
	}
}
