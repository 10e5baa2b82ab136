package main

// fanout: N subscribers on one topic, one publisher pushing M broadcasts of
// S bytes. Each broadcast carries its sequence number and publish time, so
// subscribers count deliveries, spot losses and measure publish-to-receive
// latency. The publisher keeps at most -lead broadcasts ahead of the slowest
// subscriber (the workers report how far every subscriber has got), so both
// servers are measured at saturation with the same bounded queues.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fanoutWorker is a worker's subscribers.
type fanoutWorker struct {
	env    workerEnv
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // readers, the beater and the mark loop

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

	warmed   atomic.Int32 // subscribers that have had a warm-up broadcast
	warmSent atomic.Bool  // the "warm" report is out
}

// warmSeq is the sequence number of the warm-up broadcasts that, on several
// nodes, show every subscriber's subscription has reached Redis. Subscribers
// do not count them, wherever they arrive.
const warmSeq = -1

// warmRef is the publisher's push ref of a warm-up: its replies are not
// counted either.
var warmRef = strconv.Itoa(warmSeq + rpcRefBase)

func (w *fanoutWorker) setup(ctx context.Context) (int, error) {
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.counts = make([]atomic.Int32, w.env.job.Msgs)
	w.kick = make(chan struct{}, 1)
	beats := newBeater(time.Duration(w.env.job.Heartbeat))
	w.wg.Add(2)
	go func() {
		defer w.wg.Done()
		beats.run(w.ctx)
	}()
	go w.reportMarks()
	return dialAll(ctx, w.env.d, w.env.job.First, w.env.job.Conns, w.env.job.Dialers, w.env.job.topicOf, func(c *client) {
		w.mu.Lock()
		w.clients = append(w.clients, c)
		w.mu.Unlock()
		w.alive.Add(1)
		w.wg.Add(1)
		go w.read(c)
		beats.add(c)
	})
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
	warm := false
	c.readLoop(func(c *client, f frame, now time.Time) {
		if string(f.event) != "msg" {
			return
		}
		seq, ok1 := payloadInt(f.payload, "s")
		sent, ok2 := payloadInt(f.payload, "t")
		if ok1 && seq == warmSeq && !warm {
			warm = true
			w.warmed.Add(1)
			w.reportWarm()
		}
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
		w.reportWarm()
	}
}

// reportWarm tells the parent, once, that every subscriber has had a
// warm-up broadcast or is gone (a lost subscriber is counted as lost
// deliveries, not waited for).
func (w *fanoutWorker) reportWarm() {
	warmed := w.warmed.Load()
	if int(warmed+w.dead.Load()) >= w.env.job.Conns && w.warmSent.CompareAndSwap(false, true) {
		w.env.emit(workerMsg{Ev: "warm", Conns: int(warmed)})
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
	nodes := len(srv.nodes())
	var err error
	j := job{Mode: "fanout", URL: wsURL(srv.addr), Topic: topic, Msgs: cfg.msgs}
	if nodes > 1 {
		j.URLs = srv.urls()
	}
	var base []int64
	if cfg.idle > 0 {
		if base, err = idleBase(ctx, srv); err != nil {
			return nil, err
		}
	}
	setupStart := time.Now()
	ws, err := setupWorkers(ctx, cfg, cfg.subs, j, stderr)
	if err != nil {
		return nil, err
	}
	defer ws.close()

	pub, err := newPublisher(ctx, cfg, srv, topic)
	if err != nil {
		return nil, err
	}
	defer pub.close()
	// How long every subscriber took to connect and join: at 100,000 this
	// is what -setup-timeout must cover.
	setup := time.Since(setupStart)

	var conns []int
	warmUps := 0
	var warming time.Duration
	if nodes > 1 {
		warmStart := time.Now()
		if warmUps, err = warmUp(ctx, cfg, srv, ws, pub); err != nil {
			return nil, err
		}
		warming = time.Since(warmStart)
		conns = srv.connsByNode(ctx)
	}
	var idle *idleReport
	if cfg.idle > 0 {
		if idle, err = holdIdle(ctx, cfg, srv, ws, base); err != nil {
			return nil, err
		}
	}

	srvCPU, selfCPU, redisCPU := srv.startCPU(), startCPU(0), startCPU(cfg.redisPID)
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
	srvEach, srvUsed, srvOK := srvCPU.stop()
	selfUsed, _ := selfCPU.stop()
	redisUsed, redisOK := redisCPU.stop()

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
			"nodes":     nodes,
			"setup_s":   setup.Seconds(),
		},
	}
	if v := pub.first.Load(); v != nil {
		out.Extra["refusal"] = v
	}
	if srvOK && nodes > 1 {
		// Whether one node does most of the work (the first one gets the
		// publisher and sends every broadcast to Redis).
		ms := make([]float64, nodes)
		for i, d := range srvEach {
			ms[i] = float64(d) / float64(time.Millisecond)
		}
		out.Extra["server_cpu_ms_by_node"] = ms
	}
	if nodes > 1 {
		// More than one: a subscription took a while to reach Redis (and a
		// late warm-up may have landed in the measured interval).
		out.Extra["warm_ups"] = warmUps
		out.Extra["warm_up_s"] = warming.Seconds()
	}
	if conns != nil {
		out.Extra["conns_by_node"] = conns
	}
	if redisOK && r.Ops > 0 {
		out.Extra["redis_cpu_us_per_op"] = us(redisUsed) / float64(r.Ops)
	}
	if idle != nil {
		out.Extra["idle"] = idle
		out.RSSPerConn = idle.KiBPerConn
	}
	if redisOK && published > 0 {
		out.Extra["redis_cpu_us_per_broadcast"] = us(redisUsed) / float64(published)
	}
	srv.noteWarnings(out.Extra)
	out.fill(r.Hist, srvUsed, srvOK, selfUsed+childCPU(res))
	return []row{out}, nil
}

const (
	// warmFirst is the pause after the first warm-up broadcast, each next
	// one twice the last: a Redis subscription takes a moment.
	warmFirst = 20 * time.Millisecond
	// warmMax is the longest pause: on a large run each warm-up is itself
	// a fan-out to every subscriber.
	warmMax = 2 * time.Second
)

// warmUp publishes warm-up broadcasts until every subscriber has had one.
// A node subscribes to a topic's Redis channel when the topic gets its first
// local subscriber, but that may finish after the join reply; a broadcast
// published before then never reaches the node's subscribers, and would be
// counted as lost. Bounded by -setup-timeout. It returns how many it sent.
func warmUp(ctx context.Context, cfg *config, srv *server, ws *workerSet, pub *publisher) (int, error) {
	pause := warmFirst
	sent := 0
	var buf []byte
	nudge := func() (time.Duration, error) {
		if pub.ctx.Err() != nil {
			why, _ := pub.first.Load().(string)
			return 0, fmt.Errorf("bench: the publisher can no longer publish: %s", cmp.Or(why, "its channel ended"))
		}
		buf = benchPayload(buf[:0], warmSeq, time.Now().UnixNano(), cfg.size)
		if err := pub.send(warmSeq, buf); err != nil {
			return 0, fmt.Errorf("bench: publishing a warm-up broadcast: %w", err)
		}
		sent++
		p := pause
		pause = min(2*pause, warmMax)
		return p, nil
	}
	if _, err := ws.awaitNudging(ctx, "warm", cfg.setupTimeout, nudge); err != nil {
		var late awaitTimeout
		if !errors.As(err, &late) {
			return sent, err // the publisher or a worker failed, or the run was stopped
		}
		var logs []string
		for _, n := range srv.nodes() {
			logs = append(logs, n.name+":\n"+n.logTail())
		}
		return sent, fmt.Errorf("%w: the warm-up broadcast did not reach every subscriber on %d nodes; "+
			"check that they share the Redis (-redis) and raise -setup-timeout if the box is busy:\n%s",
			err, len(logs), strings.Join(logs, "\n"))
	}
	return sent, nil
}
