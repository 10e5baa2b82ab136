package main

// idle: N joined connections held with heartbeats; the server's resident
// memory per connection, and the CPU it spends keeping them.

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// idleSettle is the pause before the server's baseline memory is read.
const idleSettle = 500 * time.Millisecond

// idleWorker is a worker's idle connections.
type idleWorker struct {
	env    workerEnv
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex // guards clients
	clients []*client
	beats   atomic.Int64 // heartbeat replies
	dead    atomic.Int32
}

func (w *idleWorker) setup(ctx context.Context) (int, error) {
	w.ctx, w.cancel = context.WithCancel(context.Background())
	beats := newBeater(time.Duration(w.env.job.Heartbeat))
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		beats.run(w.ctx)
	}()
	return dialAll(ctx, w.env.d, w.env.job.First, w.env.job.Conns, w.env.job.Dialers, w.env.job.topicOf, func(c *client) {
		w.mu.Lock()
		w.clients = append(w.clients, c)
		w.mu.Unlock()
		w.wg.Add(1)
		go w.read(c)
		beats.add(c)
	})
}

func (w *idleWorker) snapshot() []*client {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*client(nil), w.clients...)
}

func (w *idleWorker) read(c *client) {
	defer w.wg.Done()
	c.readLoop(func(_ *client, f frame, _ time.Time) {
		if string(f.topic) == "phoenix" && string(f.event) == "phx_reply" {
			w.beats.Add(1)
		}
	})
	if w.ctx.Err() == nil {
		w.dead.Add(1)
	}
}

func (w *idleWorker) start(context.Context, ctlMsg) *workerResult { return nil }

func (w *idleWorker) finish(context.Context, ctlMsg) *workerResult {
	n := len(w.snapshot())
	dead := int(w.dead.Load())
	return &workerResult{Ops: w.beats.Load(), Dead: dead, Alive: n - dead}
}

func (w *idleWorker) close() {
	if w.cancel != nil {
		w.cancel()
	}
	for _, c := range w.snapshot() {
		c.abort()
	}
	w.wg.Wait()
}

// runIdle connects -conns clients, holds them for -hold and reads the
// server's memory before and after.
func runIdle(ctx context.Context, cfg *config, target string, srv *server, stderr io.Writer) ([]row, error) {
	time.Sleep(idleSettle)
	base, baseErr := procRSS(srv.pid)
	topic := topicFor(target, "idle")
	if cfg.tick {
		topic = "bench_tick:idle"
	}
	ws, err := setupWorkers(ctx, cfg, cfg.conns, job{Mode: "idle", URL: wsURL(srv.addr), Topic: topic, Topics: cfg.topics}, stderr)
	if err != nil {
		return nil, err
	}
	defer ws.close()
	joined, _ := procRSS(srv.pid)
	srvCPU := startCPU(srv.pid)
	if err := ws.sendAll(ctlMsg{Op: "start"}); err != nil {
		return nil, err
	}
	select {
	case <-time.After(cfg.hold):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	held, heldErr := procRSS(srv.pid)
	srvUsed, srvOK := srvCPU.stop()
	if err := ws.sendAll(ctlMsg{Op: "finish"}); err != nil {
		return nil, err
	}
	res, err := ws.await(ctx, "result", 30*time.Second)
	if err != nil {
		return nil, err
	}
	r := sumResults(res)
	out := row{
		Target:   target,
		Op:       "conn",
		Ops:      int64(r.Alive),
		Expected: int64(cfg.conns),
		Lost:     int64(cfg.conns - r.Alive),
		Elapsed:  cfg.hold.Seconds(),
		Extra: map[string]any{
			"heartbeat_replies": r.Ops,
		},
	}
	if srvOK && cfg.hold > 0 {
		// the server's CPU while the connections sat: heartbeats, and with -tick the ticks
		out.Extra["server_cpu_ms_per_s"] = float64(srvUsed.Microseconds()) / 1000 / cfg.hold.Seconds()
	}
	srv.noteWarnings(out.Extra)
	out.fill(histSnap{}, srvUsed, srvOK, 0)
	out.ClientCPU, out.OpsPerSec = -1, 0
	if baseErr == nil && heldErr == nil && r.Alive > 0 {
		out.RSSPerConn = float64(held-base) / float64(r.Alive) / 1024
		out.Extra["server_rss_base_kib"] = base >> 10
		out.Extra["server_rss_joined_kib"] = joined >> 10
		out.Extra["server_rss_held_kib"] = held >> 10
	}
	return []row{out}, nil
}
