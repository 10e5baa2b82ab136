package luachan_test

// The brokers the multi-node tests run against, each a real server of the test's own on
// loopback: redis-server, and nats-server with JetStream (Debian's nats-server package,
// started by internal/natstest).

import (
	"syscall"
	"testing"

	"github.com/luachan/luachan/internal/natstest"
)

// testBroker is a broker process a multi-node test runs, kills and starts again.
type testBroker interface {
	url() string                     // the -pubsub URL
	kill(tb testing.TB)              // SIGKILL, and wait for the exit
	start(tb testing.TB)             // run it again, same address and data, and wait until it answers
	signal(sig syscall.Signal) error // sends sig to its process (SIGSTOP: it hangs)
	lostLog() string                 // the node's log line when it loses the broker
	backLog() string                 // the node's log line when the broker is back
}

// brokers are the brokers every broker-behaviour test runs with, as subtests.
var brokers = []struct {
	name  string
	start func(tb testing.TB) testBroker
}{
	{"redis", func(tb testing.TB) testBroker { return startRedis(tb) }},
	{"nats", func(tb testing.TB) testBroker { return &natsBroker{natstest.Start(tb)} }},
}

// forEachBroker runs test once per broker, as parallel subtests named for the broker.
func forEachBroker(t *testing.T, test func(t *testing.T, b testBroker)) {
	t.Helper()
	for _, br := range brokers {
		t.Run(br.name, func(t *testing.T) {
			t.Parallel()
			test(t, br.start(t))
		})
	}
}

func (rs *redisServer) lostLog() string { return logRedisLost }

func (rs *redisServer) signal(sig syscall.Signal) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.cmd.Process.Signal(sig)
}
func (rs *redisServer) backLog() string { return logRedisBack }

// natsBroker is a nats-server for the multi-node tests.
type natsBroker struct{ *natstest.Server }

// Log messages of the NATS adapter (slog text).
const (
	logNATSLost = `msg="lost NATS: local delivery carries on; reconnecting"`
	logNATSBack = `msg="NATS is back: resubscribed"`
)

func (n *natsBroker) url() string         { return n.URL() }
func (n *natsBroker) kill(tb testing.TB)  { n.Kill(tb) }
func (n *natsBroker) start(tb testing.TB) { n.Restart(tb) }
func (n *natsBroker) lostLog() string     { return logNATSLost }
func (n *natsBroker) backLog() string     { return logNATSBack }

func (n *natsBroker) signal(sig syscall.Signal) error { return n.Signal(sig) }
