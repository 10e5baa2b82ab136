package main

// A worker holds a share of a run's client connections. It runs in the
// tool's own process, or as a child process (`luachan-bench worker`) when
// the connections do not fit in one process's 20,000 open files. Either way
// it speaks the same protocol: JSON lines of ctlMsg in, workerMsg out.
//
//	parent                     worker
//	setup{job}          ->     dial and join job.Conns clients
//	                    <-     ready{conns}
//	                    <-     warm{conns} (fanout: each subscriber has had a warm-up broadcast)
//	start{...}          ->     begin measuring (rpc, joins: run the phase)
//	                    <-     mark{seq} (fanout), result (rpc, joins)
//	finish{...}         ->     wait for the deliveries (fanout, idle)
//	                    <-     result
//	close / end of input ->    close every connection and return

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
)

// job is what one worker is asked to do.
type job struct {
	Mode      string   `json:"mode"`
	URL       string   `json:"url"`
	URLs      []string `json:"urls,omitempty"` // several nodes: connection i goes to URLs[i % len]; empty: URL
	Topic     string   `json:"topic"`
	Topics    int      `json:"topics,omitempty"` // above 1: connection i joins Topic:<i % Topics>
	Conns     int      `json:"conns"`            // connections this worker opens
	First     int      `json:"first"`            // global number of its first connection
	LocalIPs  int      `json:"local_ips"`        // source addresses to rotate over
	Dialers   int      `json:"dialers"`          // concurrent connects
	Msgs      int      `json:"msgs"`             // fanout: broadcasts that may arrive
	Heartbeat int64    `json:"heartbeat_ns"`
	Child     bool     `json:"child"` // measure this process's CPU
}

// topicOf is the topic connection i joins.
func (j *job) topicOf(i int) string {
	if j.Topics > 1 {
		return j.Topic + ":" + strconv.Itoa(i%j.Topics)
	}
	return j.Topic
}

// urls are the endpoints the job's connections are spread over.
func (j *job) urls() []string {
	if len(j.URLs) > 0 {
		return j.URLs
	}
	return []string{j.URL}
}

// ctlMsg is one instruction from the parent.
type ctlMsg struct {
	Op        string  `json:"op"` // setup, start, finish, close
	Job       *job    `json:"job,omitempty"`
	StartNs   int64   `json:"start_ns,omitempty"` // rpc: wall-clock start
	Duration  int64   `json:"duration_ns,omitempty"`
	Drain     int64   `json:"drain_ns,omitempty"`  // longest wait for stragglers
	Rate      float64 `json:"rate,omitempty"`      // rpc: pushes/s of this worker
	Size      int     `json:"size,omitempty"`      // rpc: payload bytes
	Count     int     `json:"count,omitempty"`     // joins: connections to open
	Published int     `json:"published,omitempty"` // fanout: broadcasts sent
}

// workerMsg is one report to the parent.
type workerMsg struct {
	Ev     string        `json:"ev"` // ready, mark, warm, result, error
	Conns  int           `json:"conns,omitempty"`
	Seq    int           `json:"seq,omitempty"` // mark: every sub has 0..Seq-1
	Err    string        `json:"err,omitempty"`
	Result *workerResult `json:"result,omitempty"`
}

// workerResult is a worker's share of a measurement.
type workerResult struct {
	Ops       int64    `json:"ops"`                 // deliveries, replies, joins
	Sent      int64    `json:"sent,omitempty"`      // rpc pushes sent
	Failed    int64    `json:"failed,omitempty"`    // error replies, failed joins
	Skipped   int64    `json:"skipped,omitempty"`   // rpc sends skipped: too many in flight
	Reordered int64    `json:"reordered,omitempty"` // deliveries out of sequence
	Dead      int      `json:"dead,omitempty"`      // connections lost
	Alive     int      `json:"alive,omitempty"`
	Hist      histSnap `json:"hist"`
	CPUNs     int64    `json:"cpu_ns,omitempty"` // child process CPU in the phase
}

// modeWorker is a mode's worker side. Methods are called one at a time.
type modeWorker interface {
	setup(ctx context.Context) (conns int, err error)
	start(ctx context.Context, m ctlMsg) *workerResult
	finish(ctx context.Context, m ctlMsg) *workerResult
	close()
}

// workerEnv is what a mode's worker gets besides its job.
type workerEnv struct {
	job  job
	d    *dialer
	emit func(workerMsg)
}

func newModeWorker(env workerEnv) (modeWorker, error) {
	switch env.job.Mode {
	case "fanout":
		return &fanoutWorker{env: env}, nil
	case "rpc":
		return &rpcWorker{env: env}, nil
	case "idle":
		return &idleWorker{env: env}, nil
	case "joins":
		return &joinsWorker{env: env}, nil
	}
	return nil, fmt.Errorf("bench: worker: unknown mode %q", env.job.Mode)
}

// serveWorker runs one worker over a line protocol until in ends or a close.
func serveWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var outMu sync.Mutex
	enc := json.NewEncoder(out)
	emit := func(m workerMsg) {
		outMu.Lock()
		defer outMu.Unlock()
		enc.Encode(m)
	}

	// Reading in a goroutine lets the end of input cancel a phase at once:
	// a parent that dies takes its workers with it.
	msgs := make(chan ctlMsg)
	go func() {
		defer cancel()
		defer close(msgs)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m ctlMsg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				emit(workerMsg{Ev: "error", Err: "bad control line: " + err.Error()})
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()

	var w modeWorker
	var child bool // measure this process's CPU: it is a child of the tool
	var cpu cpuMeter
	defer func() {
		if w != nil {
			w.close()
		}
	}()
	for {
		var m ctlMsg
		var ok bool
		select {
		case m, ok = <-msgs:
		case <-ctx.Done():
		}
		if !ok || m.Op == "close" {
			return nil
		}
		var res *workerResult
		switch m.Op {
		case "setup":
			if w != nil || m.Job == nil {
				emit(workerMsg{Ev: "error", Err: "setup: twice, or without a job"})
				continue
			}
			d, err := newDialer(m.Job.urls(), m.Job.LocalIPs)
			if err == nil {
				w, err = newModeWorker(workerEnv{job: *m.Job, d: d, emit: emit})
			}
			if err != nil {
				emit(workerMsg{Ev: "error", Err: err.Error()})
				continue
			}
			n, err := w.setup(ctx)
			if err != nil {
				emit(workerMsg{Ev: "error", Conns: n, Err: err.Error()})
				continue
			}
			child = m.Job.Child
			emit(workerMsg{Ev: "ready", Conns: n})
			continue
		case "start":
			if w == nil {
				emit(workerMsg{Ev: "error", Err: "start before setup"})
				continue
			}
			cpu = startCPU(0)
			res = w.start(ctx, m)
		case "finish":
			if w == nil {
				emit(workerMsg{Ev: "error", Err: "finish before setup"})
				continue
			}
			res = w.finish(ctx, m)
		default:
			emit(workerMsg{Ev: "error", Err: "unknown op " + m.Op})
			continue
		}
		if res != nil {
			if used, ok := cpu.stop(); ok && child {
				res.CPUNs = int64(used)
			}
			emit(workerMsg{Ev: "result", Result: res})
		}
	}
}

// dialAll connects and joins n clients numbered first.. with up to par
// connects at a time, giving each to onJoined; it stops at the first error.
func dialAll(ctx context.Context, d *dialer, first, n, par int, topic func(i int) string, onJoined func(*client)) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		next     int
		joined   int
		firstErr error
		wg       sync.WaitGroup
	)
	for range max(1, min(par, n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n || ctx.Err() != nil {
					return
				}
				c, err := d.dialJoin(ctx, first+i, topic(first+i))
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", first+i, err)
						cancel()
					}
					mu.Unlock()
					return
				}
				joined++
				mu.Unlock()
				onJoined(c)
			}
		}()
	}
	wg.Wait()
	return joined, firstErr
}
