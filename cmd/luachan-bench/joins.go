package main

// joins: the connect-and-join rate, as after a server restart when every
// client reconnects at once. Connections stay open until the run ends.

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// joinsWorker is a worker's connectors.
type joinsWorker struct {
	env workerEnv

	mu      sync.Mutex // guards clients
	clients []*client
}

func (w *joinsWorker) setup(context.Context) (int, error) { return 0, nil }

// start opens m.Count connections, job.Dialers at a time, timing each
// connect-and-join.
func (w *joinsWorker) start(ctx context.Context, m ctlMsg) *workerResult {
	var (
		h            histogram
		next, failed atomic.Int64
		wg           sync.WaitGroup
	)
	for range max(1, min(w.env.job.Dialers, m.Count)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(m.Count) || ctx.Err() != nil {
					return
				}
				t := time.Now()
				c, err := w.env.d.dialJoin(ctx, w.env.job.First+int(i), w.env.job.Topic)
				if err != nil {
					failed.Add(1)
					continue
				}
				h.record(int64(time.Since(t)), int(i))
				w.mu.Lock()
				w.clients = append(w.clients, c)
				w.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	w.mu.Lock()
	n := len(w.clients)
	w.mu.Unlock()
	return &workerResult{Ops: int64(n), Failed: failed.Load(), Hist: h.snapshot()}
}

func (w *joinsWorker) finish(context.Context, ctlMsg) *workerResult { return nil }

func (w *joinsWorker) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.clients {
		c.abort()
	}
	w.clients = nil
}

// runJoins opens -joins connections, -concurrency at a time in total.
func runJoins(ctx context.Context, cfg *config, target string, srv *server, stderr io.Writer) ([]row, error) {
	tmpl := job{Mode: "joins", URL: wsURL(srv.addr), Topic: topicFor(target, "joins"), Dialers: max(1, cfg.concurrency)}
	ws, err := setupWorkers(ctx, cfg, cfg.joins, tmpl, stderr)
	if err != nil {
		return nil, err
	}
	defer ws.close()
	srvCPU, selfCPU := startCPU(srv.pid), startCPU(0)
	t0 := time.Now()
	for i := range ws.procs {
		n, _ := split(cfg.joins, len(ws.procs), i)
		if err := ws.send(i, ctlMsg{Op: "start", Count: n}); err != nil {
			return nil, err
		}
	}
	res, err := ws.await(ctx, "result", cfg.duration+cfg.setupTimeout)
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	srvUsed, srvOK := srvCPU.stop()
	selfUsed, _ := selfCPU.stop()
	r := sumResults(res)
	out := row{
		Target:   target,
		Op:       "join",
		Ops:      r.Ops,
		Expected: int64(cfg.joins),
		Lost:     int64(cfg.joins) - r.Ops,
		Elapsed:  t1.Sub(t0).Seconds(),
		Failed:   r.Failed,
		Extra:    map[string]any{},
	}
	srv.noteWarnings(out.Extra)
	out.fill(r.Hist, srvUsed, srvOK, selfUsed+childCPU(res))
	return []row{out}, nil
}
