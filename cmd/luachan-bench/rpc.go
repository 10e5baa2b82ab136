package main

// rpc: C clients pushing an event that the channel answers (handle_in on
// luachan, the echo on the ceiling), at a fixed aggregate rate. Sends follow
// a schedule, not the replies, and latency counts from the scheduled time,
// so a slow server cannot hide its queueing (no coordinated omission).

import (
	"context"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// rpcRing is how many pushes one client may have unanswered; beyond it the
// client skips sends and reports them.
const rpcRing = 256

// rpcRefBase keeps push refs clear of the join's ref "1".
const rpcRefBase = 100

// rpcSenders is how many goroutines of a worker send its clients' pushes.
const rpcSenders = 4

// rpcClient is one client and its pushes in flight.
type rpcClient struct {
	c     *client
	sent  [rpcRing]atomic.Int64 // scheduled send time of push k at k%rpcRing
	nsent atomic.Int64
	nrecv atomic.Int64
}

// rpcPhase is one measurement at one rate.
type rpcPhase struct {
	hist    histogram
	replies atomic.Int64
	failed  atomic.Int64
	skipped atomic.Int64
	sent    atomic.Int64
}

// rpcWorker is a worker's rpc clients.
type rpcWorker struct {
	env    workerEnv
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex // guards clients
	clients []*rpcClient
	dead    atomic.Int32
	phase   atomic.Pointer[rpcPhase]
}

func (w *rpcWorker) setup(ctx context.Context) (int, error) {
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.phase.Store(new(rpcPhase))
	return dialAll(ctx, w.env.d, w.env.job.First, w.env.job.Conns, w.env.job.Dialers, w.env.job.topicOf, func(c *client) {
		rc := &rpcClient{c: c}
		w.mu.Lock()
		w.clients = append(w.clients, rc)
		w.mu.Unlock()
		w.wg.Add(1)
		go w.read(rc)
	})
}

// read matches replies to pushes until the connection ends.
func (w *rpcWorker) read(rc *rpcClient) {
	defer w.wg.Done()
	rc.c.readLoop(func(c *client, f frame, now time.Time) {
		if string(f.event) != "phx_reply" {
			return
		}
		ref, err := strconv.ParseInt(string(f.ref), 10, 64)
		if err != nil || ref < rpcRefBase {
			return
		}
		k := ref - rpcRefBase
		p := w.phase.Load()
		p.hist.record(now.UnixNano()-rc.sent[k%rpcRing].Load(), c.id)
		if !replyOK(f.payload) {
			p.failed.Add(1)
		}
		p.replies.Add(1)
		rc.nrecv.Add(1) // last: once settled sees it, the phase has counted the reply
	})
	if w.ctx.Err() == nil {
		w.dead.Add(1)
	}
}

// start runs one phase: every client pushes at its share of m.Rate from
// m.StartNs for m.Duration, then waits up to m.Drain for the replies.
func (w *rpcWorker) start(ctx context.Context, m ctlMsg) *workerResult {
	p := new(rpcPhase)
	w.phase.Store(p)
	w.mu.Lock()
	clients := append([]*rpcClient(nil), w.clients...)
	w.mu.Unlock()
	start := time.Unix(0, m.StartNs)
	end := start.Add(time.Duration(m.Duration))
	var senders sync.WaitGroup
	if m.Rate > 0 && len(clients) > 0 {
		interval := time.Duration(float64(len(clients)) / m.Rate * float64(time.Second))
		stride := min(rpcSenders, len(clients))
		for g := range stride {
			senders.Add(1)
			go func() {
				defer senders.Done()
				w.sendShare(ctx, clients, g, stride, p, start, interval, end, m.Size)
			}()
		}
	}
	senders.Wait()
	drain := time.Now().Add(time.Duration(m.Drain))
	for ctx.Err() == nil && time.Now().Before(drain) && !w.settled(clients) {
		time.Sleep(5 * time.Millisecond)
	}
	return &workerResult{
		Ops:     p.replies.Load(),
		Sent:    p.sent.Load(),
		Failed:  p.failed.Load(),
		Skipped: p.skipped.Load(),
		Dead:    int(w.dead.Load()),
		Hist:    p.hist.snapshot(),
	}
}

// sendShare sends the pushes of clients g, g+stride, g+2*stride, ... on
// their schedule: client i pushes at start + i*interval/n + k*interval, so
// the n clients together push evenly at n/interval per second. One
// goroutine walks the merged schedule of its share, so a push costs no
// goroutine wake-up of its own.
func (w *rpcWorker) sendShare(ctx context.Context, clients []*rpcClient, g, stride int, p *rpcPhase, start time.Time, interval time.Duration, end time.Time, size int) {
	n := time.Duration(len(clients))
	var buf []byte
	for round := time.Duration(0); ; round++ {
		for i := g; i < len(clients); i += stride {
			due := start.Add(round*interval + interval*time.Duration(i)/n)
			if !due.Before(end) || ctx.Err() != nil {
				return
			}
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			rc := clients[i]
			k := rc.nsent.Load()
			if k-rc.nrecv.Load() >= rpcRing {
				p.skipped.Add(1)
				continue
			}
			rc.sent[k%rpcRing].Store(due.UnixNano())
			rc.nsent.Add(1)
			buf = benchPayload(buf[:0], k, due.UnixNano(), size)
			if err := rc.c.push(k+rpcRefBase, "ping", buf); err != nil {
				continue // the reader sees the connection end
			}
			p.sent.Add(1)
		}
	}
}

func (w *rpcWorker) settled(clients []*rpcClient) bool {
	for _, rc := range clients {
		if rc.nrecv.Load() < rc.nsent.Load() {
			return false
		}
	}
	return true
}

func (w *rpcWorker) finish(context.Context, ctlMsg) *workerResult { return nil }

func (w *rpcWorker) close() {
	if w.cancel != nil {
		w.cancel()
	}
	w.mu.Lock()
	clients := w.clients
	w.mu.Unlock()
	for _, rc := range clients {
		rc.c.abort()
	}
	w.wg.Wait()
}

// runRPC measures request/reply against srv at each rate of the run: the
// given one, or with -search a climb (or descent) to the highest rate whose
// p99 stays under -p99 with nothing lost.
func runRPC(ctx context.Context, cfg *config, target string, srv *server, stderr io.Writer) ([]row, error) {
	topic := topicFor(target, "rpc")
	if cfg.call {
		topic = "bench_call:rpc"
	}
	ws, err := setupWorkers(ctx, cfg, cfg.clients, job{Mode: "rpc", URL: wsURL(srv.addr), Topic: topic, Topics: cfg.topics}, stderr)
	if err != nil {
		return nil, err
	}
	defer ws.close()

	var rows []row
	rate, dir := cfg.rate, 0
	for step := 0; step < cfg.steps; step++ {
		r, err := rpcStep(ctx, cfg, ws, srv, target, rate)
		if err != nil {
			return rows, err
		}
		rows = append(rows, r)
		if !cfg.search {
			break
		}
		ok := r.pass(cfg.p99)
		switch {
		case dir == 0 && ok, dir > 0 && ok:
			dir, rate = 1, rate*rpcSearchUp
		case dir == 0 && !ok, dir < 0 && !ok:
			dir, rate = -1, rate/rpcSearchDown
		default:
			return rows, nil // crossed the limit
		}
	}
	return rows, nil
}

const (
	// rpcSearchUp and rpcSearchDown are the -search steps.
	rpcSearchUp   = 1.25
	rpcSearchDown = 1.5
	// phaseLead is how far ahead of now a timed phase is scheduled, so every
	// worker has its instruction before the start.
	phaseLead = 200 * time.Millisecond
)

// rpcStep is one timed phase at rate pushes/s in total.
func rpcStep(ctx context.Context, cfg *config, ws *workerSet, srv *server, target string, rate float64) (row, error) {
	start := time.Now().Add(phaseLead)
	for i := range ws.procs {
		n, _ := split(cfg.clients, len(ws.procs), i)
		m := ctlMsg{Op: "start", StartNs: start.UnixNano(), Duration: int64(cfg.duration), Drain: int64(cfg.drain),
			Rate: rate * float64(n) / float64(cfg.clients), Size: cfg.size}
		if err := ws.send(i, m); err != nil {
			return row{}, err
		}
	}
	time.Sleep(time.Until(start))
	srvCPU, selfCPU := startCPU(srv.pid), startCPU(0)
	res, err := ws.await(ctx, "result", cfg.duration+cfg.drain+30*time.Second)
	if err != nil {
		return row{}, err
	}
	srvUsed, srvOK := srvCPU.stop()
	selfUsed, _ := selfCPU.stop()
	r := sumResults(res)
	out := row{
		Target:   target,
		Op:       "reply",
		Rate:     rate,
		Ops:      r.Ops,
		Expected: r.Sent,
		Lost:     max(r.Sent-r.Ops, 0),
		Elapsed:  cfg.duration.Seconds(),
		Skipped:  r.Skipped,
		Failed:   r.Failed,
		Extra: map[string]any{
			"dropped": r.Dead,
		},
	}
	srv.noteWarnings(out.Extra)
	out.fill(r.Hist, srvUsed, srvOK, selfUsed+childCPU(res))
	return out, nil
}

// pass reports whether an rpc step met its goal: p99 under limit, every
// push sent on time and answered ok.
func (r row) pass(limit time.Duration) bool {
	return r.Err == "" && r.Lost == 0 && r.Skipped == 0 && r.Ops > 0 &&
		r.Failed == 0 && r.P99 < us(limit)
}
