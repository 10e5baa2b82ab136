package main

// fanout -idle: before the broadcasts, every connection is held joined and
// quiet (heartbeats only) for a while, and the nodes say what that costs:
// resident memory per connection, CPU per second, open files, and the same
// of the Redis the tool started. One command then answers both "what do N
// idle connections cost" and "how fast do they all get a broadcast".

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// idleReport is what the -idle hold measured, per node and summed over the
// nodes. Memory grown is resident memory at the end of the hold less the
// node's own before any client connected.
type idleReport struct {
	Seconds            float64   `json:"s"`
	Conns              int       `json:"conns"`         // summed over the nodes
	ConnsByNode        []int     `json:"conns_by_node"` // each node's own count (its /metrics), else the tool's
	RSSKiBByNode       []int64   `json:"rss_kib_by_node"`
	BaseKiBByNode      []int64   `json:"rss_base_kib_by_node"`
	KiBPerConnByNode   []float64 `json:"rss_kib_per_conn_by_node"` // memory grown / the node's connections
	RSSMiB             float64   `json:"rss_mib"`                  // summed over the nodes
	KiBPerConn         float64   `json:"rss_kib_per_conn"`         // memory grown, summed, / connections, summed
	CPUMsPerS          float64   `json:"server_cpu_ms_per_s"`      // summed over the nodes
	CPUMsPerSByNode    []float64 `json:"server_cpu_ms_per_s_by_node"`
	OpenFilesByNode    []int     `json:"open_files_by_node"`
	OpenFilesLimit     int       `json:"open_files_limit"` // the first node's soft limit
	ClientProcs        int       `json:"client_procs"`
	ClientOpenFilesMax int       `json:"client_open_files_max"` // the most one client process holds
	RedisRSSKiB        int64     `json:"redis_rss_kib,omitempty"`
	RedisCPUMsPerS     *float64  `json:"redis_cpu_ms_per_s,omitempty"`
}

// rssByNode reads every node's resident memory in bytes.
func rssByNode(srv *server) ([]int64, error) {
	var rss []int64
	for _, n := range srv.nodes() {
		b, err := procRSS(n.pid)
		if err != nil {
			return nil, fmt.Errorf("bench: -idle: the memory of %s: %w", n.name, err)
		}
		rss = append(rss, b)
	}
	return rss, nil
}

// idleBase waits for the started nodes to settle and reads their memory
// before any client connects.
func idleBase(ctx context.Context, srv *server) ([]int64, error) {
	select {
	case <-time.After(idleSettle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return rssByNode(srv)
}

// holdIdle holds every connection of ws quiet for cfg.idle and reports what
// the nodes (whose memory was base before the clients came) and the tool's
// Redis spent on them.
func holdIdle(ctx context.Context, cfg *config, srv *server, ws *workerSet, base []int64) (*idleReport, error) {
	nodes := srv.nodes()
	cpu, redisCPU := srv.startCPU(), startCPU(cfg.redisPID)
	select {
	case <-time.After(cfg.idle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	each, _, cpuOK := cpu.stop()
	redisUsed, redisOK := redisCPU.stop()
	rss, err := rssByNode(srv)
	if err != nil {
		return nil, err
	}
	secs := cfg.idle.Seconds()
	rep := &idleReport{Seconds: secs, ClientProcs: len(ws.procs), ConnsByNode: srv.connsByNode(ctx)}
	if len(rep.ConnsByNode) != len(nodes) {
		rep.ConnsByNode = expectedConns(cfg, len(nodes))
	}
	var grown int64
	for i, n := range nodes {
		conns := rep.ConnsByNode[i]
		rep.Conns += conns
		rep.RSSKiBByNode = append(rep.RSSKiBByNode, rss[i]>>10)
		rep.BaseKiBByNode = append(rep.BaseKiBByNode, base[i]>>10)
		rep.KiBPerConnByNode = append(rep.KiBPerConnByNode, perConnKiB(rss[i]-base[i], conns))
		rep.RSSMiB += float64(rss[i]) / (1 << 20)
		grown += rss[i] - base[i]
		if cpuOK {
			ms := float64(each[i]) / float64(time.Millisecond) / secs
			rep.CPUMsPerSByNode = append(rep.CPUMsPerSByNode, ms)
			rep.CPUMsPerS += ms
		}
		files, err := procOpenFiles(n.pid)
		if err != nil {
			return nil, fmt.Errorf("bench: -idle: the open files of %s: %w", n.name, err)
		}
		rep.OpenFilesByNode = append(rep.OpenFilesByNode, files)
	}
	if !cpuOK {
		rep.CPUMsPerS = -1
	}
	rep.KiBPerConn = perConnKiB(grown, rep.Conns)
	rep.OpenFilesLimit, _ = procFileLimit(nodes[0].pid)
	for _, pid := range ws.pids() {
		if files, err := procOpenFiles(pid); err == nil {
			rep.ClientOpenFilesMax = max(rep.ClientOpenFilesMax, files)
		}
	}
	if cfg.redisPID >= 0 {
		if b, err := procRSS(cfg.redisPID); err == nil {
			rep.RedisRSSKiB = b >> 10
		}
		if redisOK {
			ms := float64(redisUsed) / float64(time.Millisecond) / secs
			rep.RedisCPUMsPerS = &ms
		}
	}
	return rep, nil
}

// perConnKiB is bytes over conns connections, in KiB each.
func perConnKiB(bytes int64, conns int) float64 {
	if conns <= 0 {
		return 0
	}
	return float64(bytes) / 1024 / float64(conns)
}

// expectedConns is where the run put its connections, for a server with no
// /metrics (the ceiling): subscriber i on node i mod nodes, and a WebSocket
// publisher on the first.
func expectedConns(cfg *config, nodes int) []int {
	conns := make([]int, nodes)
	for i := range cfg.subs {
		conns[i%nodes]++
	}
	if cfg.publish == "ws" {
		conns[0]++
	}
	return conns
}

// idleLine is the -idle hold of a row in one line for the table, or "".
func idleLine(r row) string {
	rep, ok := r.Extra["idle"].(*idleReport)
	if !ok {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: held idle %gs: %d connections on %d node(s): RSS %.1f MiB summed, %.1f KiB/conn grown; server CPU %.1f ms/s summed; open files at most %d per node, %d per client process (limit %d)",
		r.Target, rep.Seconds, rep.Conns, len(rep.ConnsByNode), rep.RSSMiB, rep.KiBPerConn, rep.CPUMsPerS,
		maxInt(rep.OpenFilesByNode), rep.ClientOpenFilesMax, rep.OpenFilesLimit)
	if rep.RedisRSSKiB > 0 {
		fmt.Fprintf(&b, "; redis RSS %.1f MiB", float64(rep.RedisRSSKiB)/1024)
	}
	if rep.RedisCPUMsPerS != nil {
		fmt.Fprintf(&b, ", CPU %.2f ms/s", *rep.RedisCPUMsPerS)
	}
	return b.String()
}

func maxInt(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
