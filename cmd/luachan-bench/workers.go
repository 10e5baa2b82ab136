package main

// The parent's side of the worker protocol: start the workers (in this
// process, or as child processes), send them instructions, collect reports,
// and track the fan-out watermark they report.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// workerExitWait bounds how long a closed worker may take to exit.
const workerExitWait = 10 * time.Second

// errWorkerGone is an instruction to a worker that never started.
var errWorkerGone = errors.New("bench: worker not running")

// workerSet is the running workers of one measurement.
type workerSet struct {
	procs  []*workerProc
	events chan indexedMsg // everything but marks
	done   chan struct{}   // closed by close: readers stop delivering
	wg     sync.WaitGroup  // the readers

	marksMu sync.Mutex    // guards marks; held while mark and movedAt change
	marks   []int         // each worker's fan-out watermark
	mark    atomic.Int64  // the lowest of marks, read without the lock
	movedAt atomic.Int64  // when mark last moved, Unix ns
	kick    chan struct{} // cap 1: the watermark moved
}

// workerProc is one worker and the pipes to it.
type workerProc struct {
	mu  sync.Mutex // guards enc
	enc *json.Encoder
	in  io.WriteCloser
	cmd *exec.Cmd     // nil for a worker in this process
	ran chan struct{} // closed when an in-process worker returns
}

type indexedMsg struct {
	worker int
	msg    workerMsg
}

// startWorkers starts n workers: in this process when child is false,
// otherwise as child processes of this executable (`luachan-bench worker`).
func startWorkers(ctx context.Context, n int, child bool, stderr io.Writer) (*workerSet, error) {
	s := &workerSet{
		events: make(chan indexedMsg, 4*n),
		done:   make(chan struct{}),
		marks:  make([]int, n),
		kick:   make(chan struct{}, 1),
	}
	exe, err := os.Executable()
	if child && err != nil {
		return nil, fmt.Errorf("bench: cannot find own executable for worker processes: %w", err)
	}
	for i := range n {
		p := &workerProc{}
		var out io.ReadCloser
		if child {
			p.cmd = exec.Command(exe, "worker")
			p.cmd.Stderr = stderr
			if p.in, err = p.cmd.StdinPipe(); err == nil {
				out, err = p.cmd.StdoutPipe()
			}
			if err == nil {
				err = p.cmd.Start()
			}
			if err != nil {
				s.close()
				return nil, fmt.Errorf("bench: starting worker process: %w", err)
			}
		} else {
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			p.in, out, p.ran = inW, outR, make(chan struct{})
			go func() {
				defer close(p.ran)
				err := serveWorker(ctx, inR, outW)
				inR.Close()
				outW.CloseWithError(err)
			}()
		}
		p.enc = json.NewEncoder(p.in)
		s.procs = append(s.procs, p)
		s.wg.Add(1)
		go s.read(i, out)
	}
	return s, nil
}

// read delivers worker i's reports until its output ends. After close it
// keeps reading, so a worker never blocks on a report nobody takes.
func (s *workerSet) read(i int, out io.ReadCloser) {
	defer s.wg.Done()
	defer out.Close()
	deliver := func(m workerMsg) {
		select {
		case s.events <- indexedMsg{i, m}:
		case <-s.done:
		}
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var m workerMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			m = workerMsg{Ev: "error", Err: fmt.Sprintf("bad report line %.80q: %v", sc.Text(), err)}
		}
		if m.Ev == "mark" {
			s.setMark(i, m.Seq)
			continue
		}
		deliver(m)
	}
	deliver(workerMsg{Ev: "error", Err: "worker exited"})
}

func (s *workerSet) setMark(i, seq int) {
	s.marksMu.Lock()
	s.marks[i] = seq
	low := seq
	for _, m := range s.marks {
		low = min(low, m)
	}
	if s.mark.Swap(int64(low)) != int64(low) {
		s.movedAt.Store(time.Now().UnixNano())
	}
	s.marksMu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// watermark is the number of broadcasts every subscriber has received.
func (s *workerSet) watermark() int { return int(s.mark.Load()) }

// markMoved is when the watermark last moved (zero if never).
func (s *workerSet) markMoved() time.Time {
	if ns := s.movedAt.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// waitMark waits until the watermark reaches want. It gives up when the
// watermark has not moved for stall, when deadline passes, or ctx ends.
func (s *workerSet) waitMark(ctx context.Context, want int, stall time.Duration, deadline time.Time) bool {
	last := s.watermark()
	if last >= want {
		return true
	}
	stalled := time.NewTimer(stall)
	defer stalled.Stop()
	var dl <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		dl = t.C
	}
	for {
		wm := s.watermark()
		if wm >= want {
			return true
		}
		if wm != last {
			last = wm
			stalled.Reset(stall)
		}
		select {
		case <-s.kick:
		case <-stalled.C:
			return false
		case <-dl:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// send gives worker i an instruction.
func (s *workerSet) send(i int, m ctlMsg) error {
	p := s.procs[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.enc == nil {
		return errWorkerGone
	}
	return p.enc.Encode(m)
}

// sendAll gives every worker the same instruction.
func (s *workerSet) sendAll(m ctlMsg) error {
	for i := range s.procs {
		if err := s.send(i, m); err != nil {
			return fmt.Errorf("bench: worker %d: %w", i, err)
		}
	}
	return nil
}

// await collects one ev report from every worker, failing on an error
// report or when timeout passes.
func (s *workerSet) await(ctx context.Context, ev string, timeout time.Duration) ([]workerMsg, error) {
	return s.awaitNudging(ctx, ev, timeout, nil)
}

// awaitNudging is await that, while it waits, calls nudge first at once and
// then each time the pause nudge returned has passed: for reports that come
// only once something has been done often enough.
func (s *workerSet) awaitNudging(ctx context.Context, ev string, timeout time.Duration, nudge func() (time.Duration, error)) ([]workerMsg, error) {
	got := make([]workerMsg, len(s.procs))
	have := make([]bool, len(s.procs))
	t := time.NewTimer(timeout)
	defer t.Stop()
	var again <-chan time.Time
	next := func() error {
		if nudge == nil {
			return nil
		}
		pause, err := nudge()
		if err != nil {
			return err
		}
		again = time.After(pause)
		return nil
	}
	if err := next(); err != nil {
		return got, err
	}
	for n := 0; n < len(s.procs); {
		select {
		case <-again:
			if err := next(); err != nil {
				return got, err
			}
		case m := <-s.events:
			if m.msg.Ev == "error" {
				return got, fmt.Errorf("bench: worker %d: %s", m.worker, m.msg.Err)
			}
			if m.msg.Ev == ev && !have[m.worker] {
				have[m.worker], got[m.worker] = true, m.msg
				n++
			}
		case <-t.C:
			return got, awaitTimeout{ev, timeout}
		case <-ctx.Done():
			return got, ctx.Err()
		}
	}
	return got, nil
}

// awaitTimeout is an await that ran out of time.
type awaitTimeout struct {
	ev      string
	timeout time.Duration
}

func (e awaitTimeout) Error() string {
	return fmt.Sprintf("bench: workers gave no %q within %v", e.ev, e.timeout)
}

// close tells every worker to close its connections and waits for them.
func (s *workerSet) close() {
	close(s.done)
	for i, p := range s.procs {
		s.send(i, ctlMsg{Op: "close"})
		if p.in != nil {
			p.in.Close()
		}
	}
	for _, p := range s.procs {
		exited := make(chan struct{})
		go func() {
			defer close(exited)
			switch {
			case p.cmd != nil && p.cmd.Process != nil:
				p.cmd.Wait()
			case p.ran != nil:
				<-p.ran
			}
		}()
		select {
		case <-exited:
		case <-time.After(workerExitWait):
			if p.cmd != nil && p.cmd.Process != nil {
				p.cmd.Process.Kill()
				<-exited
			}
		}
	}
	s.wg.Wait()
}

// pids are the workers' process ids, 0 for a worker in this process.
func (s *workerSet) pids() []int {
	pids := make([]int, len(s.procs))
	for i, p := range s.procs {
		if p.cmd != nil && p.cmd.Process != nil {
			pids[i] = p.cmd.Process.Pid
		}
	}
	return pids
}

// childCPU sums the CPU the child worker processes reported.
func childCPU(results []workerMsg) time.Duration {
	var d time.Duration
	for _, m := range results {
		if m.Result != nil {
			d += time.Duration(m.Result.CPUNs)
		}
	}
	return d
}

// split divides n connections over k workers: the count and first number
// of worker i's share.
func split(n, k, i int) (count, first int) {
	base, extra := n/k, n%k
	first = i*base + min(i, extra)
	count = base
	if i < extra {
		count++
	}
	return count, first
}

// perProcessConns is how many client connections one process holds before
// the tool spreads them over worker processes: every process here is capped
// at 20,000 open files.
const perProcessConns = 18000

// setupWorkers starts the workers for n connections, gives each its share
// of tmpl, and waits until every connection is joined.
func setupWorkers(ctx context.Context, cfg *config, n int, tmpl job, stderr io.Writer) (*workerSet, error) {
	procs := cfg.procs
	if procs <= 0 {
		procs = (n + perProcessConns - 1) / perProcessConns
	}
	procs = max(1, min(procs, max(n, 1)))
	child := procs > 1 || cfg.procs > 1
	ws, err := startWorkers(ctx, procs, child, stderr)
	if err != nil {
		return nil, err
	}
	dialers := cfg.dialers
	if tmpl.Dialers > 0 {
		dialers = tmpl.Dialers
	}
	for i := range procs {
		j := tmpl
		j.Conns, j.First = split(n, procs, i)
		j.LocalIPs = cfg.localIPs
		j.Dialers = max(1, dialers/procs)
		j.Heartbeat = int64(cfg.heartbeat)
		j.Child = child
		if err := ws.send(i, ctlMsg{Op: "setup", Job: &j}); err != nil {
			ws.close()
			return nil, err
		}
	}
	if _, err := ws.await(ctx, "ready", cfg.setupTimeout); err != nil {
		ws.close()
		return nil, fmt.Errorf("%w (setting up %d connections)", err, n)
	}
	return ws, nil
}

// sumResults adds up the workers' results.
func sumResults(msgs []workerMsg) workerResult {
	var r workerResult
	for _, m := range msgs {
		if m.Result == nil {
			continue
		}
		r.Ops += m.Result.Ops
		r.Sent += m.Result.Sent
		r.Failed += m.Result.Failed
		r.Skipped += m.Result.Skipped
		r.Reordered += m.Result.Reordered
		r.Dead += m.Result.Dead
		r.Alive += m.Result.Alive
		r.Hist.merge(m.Result.Hist)
	}
	return r
}
