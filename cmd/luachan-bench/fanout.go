package main

// fanout: N subscribers on one topic, one publisher pushing M broadcasts of
// S bytes. Each broadcast carries its sequence number and publish time, so
// subscribers count deliveries, spot losses and measure publish-to-receive
// latency. The publisher keeps at most -lead broadcasts ahead of the slowest
// subscriber (the workers report how far every subscriber has got), so both
// servers are measured at saturation with the same bounded queues.

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// fanoutWorker is a worker's subscribers.
type fanoutWorker struct {
	env    workerEnv
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // readers and the heartbeat and mark loops

	mu      sync.Mutex // guards clients
	clients []*client

	counts    []atomic.Int32 // receivers of each sequence number
	alive     atomic.Int32   // subscribers still connected
	mark      atomic.Int64   // sequences 0..mark-1 reached every live subscriber
	kick      chan struct{}  // cap 1: mark moved
	received  atomic.Int64
	reordered atomic.Int64
	dead      atomic.Int32
	hist      histogram
}

func (w *fanoutWorker) setup(ctx context.Context) (int, error) {
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.counts = make([]atomic.Int32, w.env.job.Msgs)
	w.kick = make(chan struct{}, 1)
	n, err := dialAll(ctx, w.env.d, w.env.job.First, w.env.job.Conns, w.env.job.Dialers, w.env.job.Topic, func(c *client) {
		w.mu.Lock()
		w.clients = append(w.clients, c)
		w.mu.Unlock()
		w.alive.Add(1)
		w.wg.Add(1)
		go w.read(c)
	})
	w.wg.Add(2)
	go func() {
		defer w.wg.Done()
		heartbeats(w.ctx, time.Duration(w.env.job.Heartbeat), w.snapshot)
	}()
	go w.reportMarks()
	return n, err
}

func (w *fanoutWorker) snapshot() []*client {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*client(nil), w.clients...)
}

// read counts one subscriber's deliveries until its connection ends.
func (w *fanoutWorker) read(c *client) {
	defer w.wg.Done()
	last := int64(-1)
	c.readLoop(func(c *client, f frame, now time.Time) {
		if string(f.event) != "msg" {
			return
		}
		seq, ok1 := payloadInt(f.payload, "s")
		sent, ok2 := payloadInt(f.payload, "t")
		if !ok1 || !ok2 || seq < 0 || seq >= int64(len(w.counts)) {
			return
		}
		w.received.Add(1)
		w.hist.record(now.UnixNano()-sent, c.id)
		if seq <= last {
			w.reordered.Add(1)
		}
		last = seq
		if w.counts[seq].Add(1) >= w.alive.Load() {
			w.advance()
		}
	})
	if w.ctx.Err() == nil {
		w.dead.Add(1)
		w.alive.Add(-1)
		w.advance()
	}
}

// advance moves the mark over every sequence all live subscribers have.
// Subscribers receive in order, so the sequences complete in order.
func (w *fanoutWorker) advance() {
	moved := false
	for {
		m := w.mark.Load()
		if m >= int64(len(w.counts)) || w.counts[m].Load() < w.alive.Load() {
			break
		}
		if w.mark.CompareAndSwap(m, m+1) {
			moved = true
		}
	}
	if moved {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// reportMarks tells the parent each time the mark moves.
func (w *fanoutWorker) reportMarks() {
	defer w.wg.Done()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-w.kick:
			w.env.emit(workerMsg{Ev: "mark", Seq: int(w.mark.Load())})
		}
	}
}

func (w *fanoutWorker) start(context.Context, ctlMsg) *workerResult { return nil }

// finish waits for the published broadcasts, at most m.Drain, and reports.
func (w *fanoutWorker) finish(ctx context.Context, m ctlMsg) *workerResult {
	deadline := time.Now().Add(time.Duration(m.Drain))
	for w.mark.Load() < int64(m.Published) && time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
	return &workerResult{
		Ops:       w.received.Load(),
		Reordered: w.reordered.Load(),
		Dead:      int(w.dead.Load()),
		Alive:     int(w.alive.Load()),
		Hist:      w.hist.snapshot(),
	}
}

func (w *fanoutWorker) close() {
	if w.cancel != nil {
		w.cancel()
	}
	for _, c := range w.snapshot() {
		c.abort()
	}
	w.wg.Wait()
}

// runFanout measures one fan-out against srv.
func runFanout(ctx context.Context, cfg *config, target string, srv *server, stderr io.Writer) ([]row, error) {
	topic := topicFor(target, "fanout")
	ws, err := setupWorkers(ctx, cfg, cfg.subs, job{Mode: "fanout", URL: wsURL(srv.addr), Topic: topic, Msgs: cfg.msgs}, stderr)
	if err != nil {
		return nil, err
	}
	defer ws.close()

	pub, err := newPublisher(ctx, cfg, srv, topic)
	if err != nil {
		return nil, err
	}
	defer pub.close()

	srvCPU, selfCPU := startCPU(srv.pid), startCPU(0)
	if err := ws.sendAll(ctlMsg{Op: "start"}); err != nil {
		return nil, err
	}
	t0 := time.Now()
	deadline := t0.Add(cfg.duration)
	var buf []byte
	published, stalled := 0, false
	for k := 0; k < cfg.msgs; k++ {
		if time.Now().After(deadline) || pub.ctx.Err() != nil {
			break
		}
		if cfg.lead > 0 && !ws.waitMark(pub.ctx, k-cfg.lead+1, cfg.stall, deadline) {
			stalled = ws.watermark() < k-cfg.lead+1 && time.Now().Before(deadline)
			break
		}
		if cfg.rate > 0 {
			if d := time.Until(t0.Add(time.Duration(float64(k) / cfg.rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		buf = benchPayload(buf[:0], int64(k), time.Now().UnixNano(), cfg.size)
		if err := pub.send(int64(k), buf); err != nil {
			return nil, fmt.Errorf("bench: publishing: %w", err)
		}
		published++
	}
	t1 := time.Now()
	if !ws.waitMark(ctx, published, cfg.stall, time.Now().Add(cfg.drain)) {
		// Count the time up to the last completed broadcast, not the wait.
		stalled = true
		if m := ws.markMoved(); m.After(t1) {
			t1 = m
		}
	} else {
		t1 = time.Now()
	}
	srvUsed, srvOK := srvCPU.stop()
	selfUsed, _ := selfCPU.stop()

	if err := ws.sendAll(ctlMsg{Op: "finish", Published: published, Drain: int64(time.Second)}); err != nil {
		return nil, err
	}
	res, err := ws.await(ctx, "result", cfg.drain+30*time.Second)
	if err != nil {
		return nil, err
	}
	r := sumResults(res)
	expected := int64(published) * int64(cfg.subs)
	out := row{
		Target:   target,
		Op:       "delivery",
		Ops:      r.Ops,
		Expected: expected,
		Lost:     max(expected-r.Ops, 0),
		Elapsed:  t1.Sub(t0).Seconds(),
		Extra: map[string]any{
			"published": published,
			"acked":     pub.acked.Load(),
			"refused":   pub.refused.Load(),
			"stalled":   stalled,
			"reordered": r.Reordered,
			"dropped":   r.Dead,
		},
	}
	if v := pub.first.Load(); v != nil {
		out.Extra["refusal"] = v
	}
	srv.noteWarnings(out.Extra)
	out.fill(r.Hist, srvUsed, srvOK, selfUsed+childCPU(res))
	return []row{out}, nil
}
