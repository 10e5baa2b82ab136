package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// luachanBin is the luachan binary TestMain builds for the tests.
var luachanBin string

// TestMain builds luachan once, and doubles as the tool's child processes:
// the tool starts its own executable (this test binary) as `worker` and
// `ceiling-server`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "worker" || os.Args[1] == "ceiling-server") {
		main()
		return
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "luachan-bench-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// LUACHAN_BENCH_SERVER names a luachan binary to use instead of building one.
	luachanBin = os.Getenv("LUACHAN_BENCH_SERVER")
	if luachanBin == "" {
		luachanBin = filepath.Join(dir, "luachan")
		build := exec.Command("go", "build", "-o", luachanBin, "github.com/luachan/luachan/cmd/luachan")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building luachan: %v\n%s", err, out)
			return 1
		}
	}
	code := m.Run()
	if code == 0 {
		if err := checkGoroutines(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return code
}

// checkGoroutines fails when goroutines of this package outlive the tests
// (the runtime's and the testing package's own are not counted).
func checkGoroutines() error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 4<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "luachan-bench.") && !strings.Contains(g, "luachan-bench.checkGoroutines") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d leaked goroutines:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bench runs the tool with args and returns its parsed JSON report.
func bench(tb testing.TB, args ...string) report {
	tb.Helper()
	rep, out, err := benchErr(tb, args...)
	if err != nil {
		tb.Fatalf("luachan-bench %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return rep
}

func benchErr(tb testing.TB, args ...string) (report, string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, args, nil, &stdout, &stderr)
	out := stdout.String() + stderr.String()
	var rep report
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if last := lines[len(lines)-1]; strings.HasPrefix(last, "{") {
		if jerr := json.Unmarshal([]byte(last), &rep); jerr != nil {
			tb.Fatalf("report line is not JSON: %v\n%s", jerr, last)
		}
	}
	if testing.Verbose() {
		tb.Log("\n" + stdout.String())
	}
	return rep, out, err
}

// checkRows asserts one row per target in order, each complete.
func checkRows(tb testing.TB, rep report, targets []string, wantOps int64) {
	tb.Helper()
	if len(rep.Rows) != len(targets) {
		tb.Fatalf("got %d rows, want %d (%v): %+v", len(rep.Rows), len(targets), targets, rep.Rows)
	}
	for i, r := range rep.Rows {
		if r.Target != targets[i] {
			tb.Errorf("row %d is %q, want %q", i, r.Target, targets[i])
		}
		if r.Err != "" {
			tb.Errorf("%s: %s", r.Target, r.Err)
		}
		if r.Ops != wantOps || r.Expected != wantOps || r.Lost != 0 {
			tb.Errorf("%s: ops %d expected %d lost %d, want %d, %d, 0", r.Target, r.Ops, r.Expected, r.Lost, wantOps, wantOps)
		}
		if r.Elapsed <= 0 || r.ServerCPU < 0 {
			tb.Errorf("%s: elapsed %v s, server CPU %v µs/op: want both measured", r.Target, r.Elapsed, r.ServerCPU)
		}
	}
}

func TestModes(t *testing.T) {
	srv := "-server=" + luachanBin
	tests := []struct {
		name    string
		args    []string
		targets []string
		ops     int64
		check   func(t *testing.T, rep report)
	}{{
		name:    "fanout",
		args:    []string{"fanout", srv, "-subs", "20", "-msgs", "50", "-intercept"},
		targets: []string{"ceiling", "luachan", "intercept"},
		ops:     20 * 50,
		check: func(t *testing.T, rep report) {
			for _, r := range rep.Rows {
				if r.P50 <= 0 || r.P99 < r.P50 || r.Max < r.P99 {
					t.Errorf("%s: latencies p50 %v p99 %v max %v µs", r.Target, r.P50, r.P99, r.Max)
				}
				if r.Target != "ceiling" && r.VsCeiling == nil {
					t.Errorf("%s: no ratio to the ceiling", r.Target)
				}
			}
			if rep.Rows[2].VsLuachan == nil {
				t.Error("intercept: no ratio to luachan")
			}
		},
	}, {
		name:    "fanout published through the HTTP API",
		args:    []string{"fanout", srv, "-subs", "20", "-msgs", "30", "-publish", "api", "-intercept"},
		targets: []string{"ceiling", "luachan", "intercept"},
		ops:     20 * 30,
	}, {
		name:    "fanout over two worker processes",
		args:    []string{"fanout", srv, "-subs", "30", "-msgs", "20", "-procs", "2", "-rate", "200"},
		targets: []string{"ceiling", "luachan"},
		ops:     30 * 20,
	}, {
		name:    "rpc",
		args:    []string{"rpc", srv, "-clients", "10", "-rate", "200", "-duration", "1s"},
		targets: []string{"ceiling", "luachan"},
		ops:     200,
		check: func(t *testing.T, rep report) {
			for _, r := range rep.Rows {
				if r.Rate != 200 || r.P50 <= 0 || r.Skipped != 0 {
					t.Errorf("%s: rate %v p50 %v µs skipped %d", r.Target, r.Rate, r.P50, r.Skipped)
				}
			}
		},
	}, {
		name:    "idle",
		args:    []string{"idle", srv, "-conns", "30", "-hold", "300ms"},
		targets: []string{"ceiling", "luachan"},
		ops:     30,
		check: func(t *testing.T, rep report) {
			for _, r := range rep.Rows {
				if _, ok := r.Extra["server_rss_held_kib"]; !ok {
					t.Errorf("%s: no server memory in %v", r.Target, r.Extra)
				}
			}
		},
	}, {
		name:    "recover",
		args:    []string{"recover", srv, "-clients", "30", "-msgs", "10"},
		targets: []string{"luachan"},
		ops:     30 * 10,
		check: func(t *testing.T, rep report) {
			if r := rep.Rows[0]; r.Lost != 0 || r.Failed != 0 || r.Extra["all_replayed_s"] == nil {
				t.Errorf("recover: lost %d, failed %d, extra %v", r.Lost, r.Failed, r.Extra)
			}
		},
	}, {
		name:    "joins",
		args:    []string{"joins", srv, "-joins", "100", "-concurrency", "10"},
		targets: []string{"ceiling", "luachan"},
		ops:     100,
		check: func(t *testing.T, rep report) {
			for _, r := range rep.Rows {
				if r.OpsPerSec <= 0 || r.P99 <= 0 {
					t.Errorf("%s: %v joins/s, p99 %v µs", r.Target, r.OpsPerSec, r.P99)
				}
			}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := bench(t, tc.args...)
			if rep.Mode != tc.args[0] {
				t.Fatalf("report mode %q, want %q", rep.Mode, tc.args[0])
			}
			checkRows(t, rep, tc.targets, tc.ops)
			if tc.check != nil {
				tc.check(t, rep)
			}
		})
	}
}

// TestRPCSearch steps the rate; every step is a complete measurement.
func TestRPCSearch(t *testing.T) {
	rep := bench(t, "rpc", "-server="+luachanBin, "-targets", "luachan", "-clients", "5",
		"-rate", "100", "-duration", "300ms", "-search", "-steps", "2", "-p99", "1s")
	if len(rep.Rows) != 2 || rep.Rows[1].Rate != 125 {
		t.Fatalf("want two steps, 100/s then 125/s: %+v", rep.Rows)
	}
	for _, r := range rep.Rows {
		if r.Ops == 0 || r.Lost != 0 {
			t.Errorf("rate %v: ops %d lost %d", r.Rate, r.Ops, r.Lost)
		}
	}
	if rep.MaxRate["luachan"] != 125 {
		t.Errorf("max_ok_rate %v, want luachan 125", rep.MaxRate)
	}
}

// TestRunningServer measures a luachan the tool did not start, serving the
// bench scripts from this folder, as the usage documents.
func TestRunningServer(t *testing.T) {
	cmd := exec.Command(luachanBin, "-addr", "127.0.0.1:0", "-scripts", "scripts")
	srv, err := startServerCmd(t, cmd)
	if err != nil {
		t.Fatal(err)
	}
	rep := bench(t, "fanout", "-targets", "luachan", "-addr", srv.addr,
		"-pid", fmt.Sprint(srv.pid), "-subs", "10", "-msgs", "30")
	checkRows(t, rep, []string{"luachan"}, 300)
}

func startServerCmd(tb testing.TB, cmd *exec.Cmd) (*server, error) {
	tb.Helper()
	srv, err := startServer(context.Background(), "luachan", cmd.Args)
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() {
		if err := srv.stop(); err != nil {
			tb.Error(err)
		}
	})
	return srv, nil
}

// TestFanoutTwoNodes spreads the subscribers over two luachans joined by a
// redis-server the tool starts, with the clients in two worker processes
// (so the nodes' URLs go through the worker protocol).
func TestFanoutTwoNodes(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not on PATH")
	}
	const subs, msgs = 40, 20
	rep, out, err := benchErr(t, "fanout", "-server="+luachanBin, "-nodes", "2", "-procs", "2",
		"-subs", fmt.Sprint(subs), "-msgs", fmt.Sprint(msgs))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "the ceiling is one in-tool server, so it is left out") {
		t.Errorf("no note that the default targets lost the ceiling:\n%s", out)
	}
	checkRows(t, rep, []string{"luachan"}, subs*msgs)
	if rep.Params["nodes"] != 2.0 || rep.Params["pubsub"] != "redis" {
		t.Errorf("params %v: want nodes 2, pubsub redis", rep.Params)
	}
	r := rep.Rows[0]
	if r.Extra["nodes"] != 2.0 {
		t.Errorf("extra nodes %v, want 2", r.Extra["nodes"])
	}
	byNode, _ := r.Extra["server_cpu_ms_by_node"].([]any)
	if len(byNode) != 2 {
		t.Errorf("server_cpu_ms_by_node %v: want both nodes' CPU", r.Extra["server_cpu_ms_by_node"])
	}
	sum := 0.0
	for _, ms := range byNode {
		sum += ms.(float64)
	}
	if got := r.ServerCPU * float64(r.Ops) / 1000; math.Abs(got-sum) > 0.001 {
		t.Errorf("server CPU %v ms in all is not the nodes' %v ms summed", got, sum)
	}
	// The nodes' own count: half the subscribers each, and the publisher on the first.
	if got := fmt.Sprint(r.Extra["conns_by_node"]); got != fmt.Sprintf("[%d %d]", subs/2+1, subs/2) {
		t.Errorf("conns_by_node %s, want [%d %d]", got, subs/2+1, subs/2)
	}
	if _, ok := r.Extra["redis_cpu_us_per_op"]; !ok {
		t.Errorf("no CPU of the tool's redis-server in %v", r.Extra)
	}
}

// TestFanoutIdle holds two nodes' connections quiet before publishing and
// checks what -idle reports: memory, CPU and open files per node and summed,
// and the tool's Redis.
func TestFanoutIdle(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not on PATH")
	}
	const subs, msgs = 200, 5
	rep, out, err := benchErr(t, "fanout", "-server="+luachanBin, "-nodes", "2", "-procs", "2",
		"-subs", fmt.Sprint(subs), "-msgs", fmt.Sprint(msgs), "-idle", "1s", "-heartbeat", "300ms")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	checkRows(t, rep, []string{"luachan"}, subs*msgs)
	if rep.Params["idle"] != "1s" {
		t.Errorf("params %v: want idle 1s", rep.Params)
	}
	if !strings.Contains(out, "luachan: held idle 1s: 201 connections on 2 node(s)") {
		t.Errorf("no idle line in the table:\n%s", out)
	}
	r := rep.Rows[0]
	idle, ok := r.Extra["idle"].(map[string]any)
	if !ok {
		t.Fatalf("no idle report in %v", r.Extra)
	}
	nums := func(key string) []float64 {
		t.Helper()
		vs, _ := idle[key].([]any)
		if len(vs) != 2 {
			t.Fatalf("idle %s %v: want one figure per node", key, idle[key])
		}
		return []float64{vs[0].(float64), vs[1].(float64)}
	}
	if idle["s"] != 1.0 || idle["conns"] != float64(subs+1) || fmt.Sprint(idle["conns_by_node"]) != "[101 100]" {
		t.Errorf("idle s %v conns %v by node %v: want 1 s, %d, [101 100]", idle["s"], idle["conns"], idle["conns_by_node"], subs+1)
	}
	held, base, perConn := nums("rss_kib_by_node"), nums("rss_base_kib_by_node"), nums("rss_kib_per_conn_by_node")
	grown := 0.0
	for i := range 2 {
		if base[i] <= 0 || held[i] <= base[i] || perConn[i] <= 0 || perConn[i] > 4096 {
			t.Errorf("node %d: RSS base %v KiB, held %v KiB, %v KiB/conn", i+1, base[i], held[i], perConn[i])
		}
		grown += held[i] - base[i]
	}
	// Summed over the nodes: what they grew by together, over every connection.
	sum, _ := idle["rss_kib_per_conn"].(float64)
	if want := grown / float64(subs+1); math.Abs(sum-want) > 1 || r.RSSPerConn != sum {
		t.Errorf("rss_kib_per_conn %v, row %v: want %v", sum, r.RSSPerConn, want)
	}
	if mib, _ := idle["rss_mib"].(float64); math.Abs(mib-(held[0]+held[1])/1024) > 0.01 {
		t.Errorf("rss_mib %v: want the nodes' %v KiB summed", mib, held)
	}
	cpu := nums("server_cpu_ms_per_s_by_node")
	if got, _ := idle["server_cpu_ms_per_s"].(float64); got < 0 || math.Abs(got-cpu[0]-cpu[1]) > 0.001 {
		t.Errorf("server_cpu_ms_per_s %v: want the nodes' %v summed", got, cpu)
	}
	limit, _ := idle["open_files_limit"].(float64)
	for i, files := range nums("open_files_by_node") {
		if files < subs/2 || limit <= 0 || files >= limit {
			t.Errorf("node %d: %v open files, limit %v", i+1, files, limit)
		}
	}
	if idle["client_procs"] != 2.0 || idle["client_open_files_max"].(float64) < subs/2 {
		t.Errorf("client_procs %v, client_open_files_max %v: want 2 processes, at least %d files", idle["client_procs"], idle["client_open_files_max"], subs/2)
	}
	if rss, _ := idle["redis_rss_kib"].(float64); rss <= 0 || idle["redis_cpu_ms_per_s"] == nil {
		t.Errorf("redis_rss_kib %v, redis_cpu_ms_per_s %v: want the tool's redis-server measured", idle["redis_rss_kib"], idle["redis_cpu_ms_per_s"])
	}
	// The publisher heartbeats through the hold too; its heartbeats' replies
	// are not taken for broadcasts.
	if r.Extra["acked"] != float64(msgs) {
		t.Errorf("acked %v, want %d", r.Extra["acked"], msgs)
	}
	if s, _ := r.Extra["setup_s"].(float64); s <= 0 || r.Extra["warm_up_s"] == nil {
		t.Errorf("setup_s %v, warm_up_s %v: want how long setup and warm-up took", r.Extra["setup_s"], r.Extra["warm_up_s"])
	}
	if _, ok := r.Extra["redis_cpu_us_per_broadcast"]; !ok {
		t.Errorf("no redis_cpu_us_per_broadcast in %v", r.Extra)
	}
}

// TestBeaterSpread: clients that join together get their first heartbeats
// spread over one interval, none later.
func TestBeaterSpread(t *testing.T) {
	const n, interval = 1000, time.Second
	b := newBeater(interval)
	t0 := time.Now()
	for range n {
		b.add(&client{})
	}
	var tenths [10]int
	for _, d := range b.due {
		off := d.at.Sub(t0)
		if off < 0 || off > interval+100*time.Millisecond {
			t.Fatalf("first heartbeat %v after joining, want within %v", off, interval)
		}
		tenths[min(int(off*10/interval), 9)]++
	}
	for i, k := range tenths {
		if k < n/10*8/10 || k > n/10*12/10 {
			t.Errorf("tenth %d of the interval has %d of %d first heartbeats: %v", i, k, n, tenths)
		}
	}
}

// TestURLFor spreads connections round-robin over the nodes.
func TestURLFor(t *testing.T) {
	two := []string{"ws://127.0.0.1:1/socket", "ws://127.0.0.1:2/socket"}
	for i, want := range []string{two[0], two[1], two[0], two[1], two[0]} {
		if got := urlFor(two, i); got != want {
			t.Errorf("connection %d: %s, want %s", i, got, want)
		}
	}
	one := (&job{URL: "ws://127.0.0.1:3/socket"}).urls()
	for i := range 3 {
		if got := urlFor(one, i); got != one[0] {
			t.Errorf("one URL, connection %d: %s, want %s", i, got, one[0])
		}
	}
	if got := (&job{URL: "unused", URLs: two}).urls(); !slices.Equal(got, two) {
		t.Errorf("job urls %v, want %v", got, two)
	}
}

// TestAwaitNudging publishes again, later each time, until the workers
// report: a warm-up that is lost at first.
func TestAwaitNudging(t *testing.T) {
	s := &workerSet{procs: make([]*workerProc, 2), events: make(chan indexedMsg, 4)}
	var pauses []time.Duration
	nudge := func() (time.Duration, error) {
		pauses = append(pauses, time.Duration(len(pauses)+1)*time.Millisecond)
		if len(pauses) == 3 { // the third gets through
			s.events <- indexedMsg{0, workerMsg{Ev: "warm"}}
			s.events <- indexedMsg{1, workerMsg{Ev: "warm"}}
		}
		return pauses[len(pauses)-1], nil
	}
	got, err := s.awaitNudging(context.Background(), "warm", 5*time.Second, nudge)
	if err != nil || len(got) != 2 || got[1].Ev != "warm" {
		t.Fatalf("got %v, %v", got, err)
	}
	if len(pauses) != 3 {
		t.Errorf("nudged %d times, want 3", len(pauses))
	}
	_, err = s.awaitNudging(context.Background(), "warm", 30*time.Millisecond, func() (time.Duration, error) { return time.Millisecond, nil })
	if !errors.As(err, new(awaitTimeout)) || !strings.Contains(err.Error(), `no "warm"`) {
		t.Errorf("no report: error %v, want a timeout", err)
	}
}

func TestBadCommandLines(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no mode", nil, "no mode"},
		{"unknown mode", []string{"flood"}, "unknown mode"},
		{"unknown flag", []string{"fanout", "-subz", "1"}, "flag provided but not defined"},
		{"not loopback", []string{"fanout", "-targets", "luachan", "-addr", "10.0.0.1:4000"}, "127.0.0.0/8"},
		{"unbounded", []string{"fanout", "-server", "x", "-msgs", "0"}, "-msgs"},
		{"intercept outside fanout", []string{"rpc", "-server", "x", "-targets", "intercept"}, "fanout target"},
		{"unknown target", []string{"idle", "-targets", "redis"}, "unknown target"},
		{"unknown publisher", []string{"fanout", "-server", "x", "-publish", "carrier-pigeon"}, "-publish"},
		{"no nodes", []string{"fanout", "-server", "x", "-nodes", "0"}, "-nodes must be"},
		{"nodes of a running server", []string{"fanout", "-targets", "luachan", "-addr", "127.0.0.1:4000", "-nodes", "2"}, "drop -addr"},
		{"ceiling on nodes", []string{"fanout", "-server", "x", "-targets", "ceiling,luachan", "-nodes", "2"}, "leave it out"},
		{"redis not loopback", []string{"fanout", "-server", "x", "-nodes", "2", "-redis", "redis://10.0.0.1:6379"}, "127.0.0.0/8"},
		{"redis not a URL", []string{"fanout", "-server", "x", "-nodes", "2", "-redis", "127.0.0.1:6379"}, "redis://"},
		{"idle hold unbounded", []string{"fanout", "-server", "x", "-idle", "11m"}, "-idle must be"},
		{"idle without the server's pid", []string{"fanout", "-targets", "luachan", "-addr", "127.0.0.1:4000", "-idle", "1s"}, "-pid"},
		{"nodes outside fanout", []string{"idle", "-server", "x", "-nodes", "2"}, "flag provided but not defined"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tc.args, nil, &out, &out)
			if code := exitCode(err, &out); code != 2 {
				t.Fatalf("exit %d, want 2 (err %v)", code, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// TestRPCCall: with -call each push goes through socket:call to its topic's handle_call
// (bench_call.lua), the clients spread over -topics; an error reply would count as failed.
func TestRPCCall(t *testing.T) {
	rep := bench(t, "rpc", "-server="+luachanBin, "-targets", "luachan", "-call", "-clients", "6",
		"-topics", "3", "-rate", "200", "-duration", "300ms")
	if len(rep.Rows) != 1 {
		t.Fatalf("rows %+v, want one", rep.Rows)
	}
	if r := rep.Rows[0]; r.Ops != 60 || r.Lost != 0 || r.Failed != 0 {
		t.Errorf("ops %d lost %d failed %d, want 60 replies, none lost or failed", r.Ops, r.Lost, r.Failed)
	}
	if rep.Params["call"] != true || rep.Params["topics"] != 3.0 {
		t.Errorf("params %v, want call=true topics=3", rep.Params)
	}
}

func TestTopicOf(t *testing.T) {
	j := job{Topic: "bench_call:rpc", Topics: 3}
	for i, want := range []string{"bench_call:rpc:0", "bench_call:rpc:1", "bench_call:rpc:2", "bench_call:rpc:0"} {
		if got := j.topicOf(i); got != want {
			t.Errorf("topicOf(%d) = %q, want %q", i, got, want)
		}
	}
	if got := (&job{Topic: "bench:rpc"}).topicOf(5); got != "bench:rpc" {
		t.Errorf("one topic: %q", got)
	}
}

// TestIdleTick: idle -tick joins bench_tick.lua's ticking topics, spread over -topics,
// and reports the server's CPU per second while they sit.
func TestIdleTick(t *testing.T) {
	rep := bench(t, "idle", "-server="+luachanBin, "-targets", "luachan", "-tick", "-conns", "10",
		"-topics", "5", "-hold", "300ms")
	if len(rep.Rows) != 1 || rep.Rows[0].Lost != 0 || rep.Rows[0].Ops != 10 {
		t.Fatalf("rows %+v, want 10 connections held, none lost", rep.Rows)
	}
	if _, ok := rep.Rows[0].Extra["server_cpu_ms_per_s"]; !ok {
		t.Errorf("extra %v: no server_cpu_ms_per_s", rep.Rows[0].Extra)
	}
	if rep.Params["tick"] != true || rep.Params["topics"] != 5.0 {
		t.Errorf("params %v, want tick=true topics=5", rep.Params)
	}
}
