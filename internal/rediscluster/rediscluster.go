// Package rediscluster starts, for tests, a real Redis Cluster (three masters) or a
// Sentinel-managed Redis (a master, a replica and three Sentinels) on loopback ports, and
// stops it when the test ends. It needs redis-server and redis-cli on PATH.
package rediscluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Wait bounds every wait on the processes: to answer, to form the cluster, to fail over.
const Wait = 30 * time.Second

// Proc is one redis-server process (a data node or a Sentinel).
type Proc struct {
	Port int
	cmd  *exec.Cmd
	done chan struct{}

	mu  sync.Mutex
	out bytes.Buffer
}

// Addr is the process's 127.0.0.1:port.
func (p *Proc) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.Port) }

func (p *Proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// Output is what the process printed.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Kill stops the process with SIGKILL, as a crash would, and waits for it.
func (p *Proc) Kill(tb testing.TB) {
	tb.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(Wait):
		tb.Errorf("redis-server :%d did not exit after SIGKILL", p.Port)
	}
}

// freePort returns a loopback port that is free, and whose cluster bus port (+10000) is
// free too.
func freePort(tb testing.TB) int {
	tb.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if port+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		if err != nil {
			continue
		}
		bus.Close()
		return port
	}
	tb.Fatal("no free loopback port pair")
	return 0
}

// start runs redis-server with args (a config file first, or flags) and waits until it
// answers PING; it is killed when the test ends.
func start(tb testing.TB, port int, args ...string) *Proc {
	tb.Helper()
	return startAuth(tb, port, "", args...)
}

// startAuth is start for a server that wants password (none if empty).
func startAuth(tb testing.TB, port int, password string, args ...string) *Proc {
	tb.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			tb.Fatalf("%s is not installed: these tests need a real one (apt-get install redis-server redis-tools)", bin)
		}
	}
	p := &Proc{Port: port, done: make(chan struct{})}
	p.cmd = exec.Command("redis-server", args...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("redis-server: %v", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() {
		p.Kill(tb)
		if tb.Failed() {
			tb.Logf("redis-server :%d output:\n%s", port, p.Output())
		}
	})
	c := goredis.NewClient(&goredis.Options{Addr: p.Addr(), Password: password, MaxRetries: -1, DisableIdentity: true, Protocol: 2})
	defer c.Close()
	err := Poll(Wait, func() error {
		select {
		case <-p.done:
			return fmt.Errorf("exited")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Ping(ctx).Err()
	})
	if err != nil {
		tb.Fatalf("redis-server :%d does not answer: %v\n%s", port, err, p.Output())
	}
	return p
}

// Poll calls f until it returns nil, or returns its last error once timeout has passed.
func Poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Cluster is a Redis Cluster of three masters, no replicas.
type Cluster struct {
	Nodes    []*Proc
	Password string // requirepass of every node, or none
}

// StartCluster starts three cluster-enabled redis-servers, creates the cluster with
// redis-cli --cluster create, and waits until every node reports cluster_state:ok.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	return StartClusterAuth(tb, "")
}

// StartClusterAuth is StartCluster with password as every node's requirepass (none if
// empty).
func StartClusterAuth(tb testing.TB, password string) *Cluster {
	tb.Helper()
	cl := &Cluster{Password: password}
	addrs := []string{}
	for range 3 {
		port := freePort(tb)
		dir := tb.TempDir()
		args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no", "--dir", dir}
		if password != "" {
			args = append(args, "--requirepass", password, "--masterauth", password)
		}
		p := startAuth(tb, port, password, args...)
		cl.Nodes = append(cl.Nodes, p)
		addrs = append(addrs, p.Addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cli := exec.Command("redis-cli", args...)
	if password != "" {
		cli.Env = append(os.Environ(), "REDISCLI_AUTH="+password)
	}
	if out, err := cli.CombinedOutput(); err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, p := range cl.Nodes {
		c := goredis.NewClient(&goredis.Options{Addr: p.Addr(), Password: password, MaxRetries: -1, DisableIdentity: true, Protocol: 2})
		err := Poll(Wait, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
				return fmt.Errorf("cluster info of %s:\n%s", p.Addr(), info)
			}
			return nil
		})
		c.Close()
		if err != nil {
			tb.Fatalf("the cluster does not form: %v", err)
		}
	}
	return cl
}

// URL is the cluster's redis+cluster:// URL, with every node as a seed.
func (cl *Cluster) URL() string {
	addrs := make([]string, len(cl.Nodes))
	for i, p := range cl.Nodes {
		addrs[i] = p.Addr()
	}
	auth := ""
	if cl.Password != "" {
		auth = ":" + url.QueryEscape(cl.Password) + "@"
	}
	return "redis+cluster://" + auth + strings.Join(addrs, ",")
}

// Client returns a client of the cluster, closed when the test ends.
func (cl *Cluster) Client(tb testing.TB) *goredis.ClusterClient {
	addrs := make([]string, len(cl.Nodes))
	for i, p := range cl.Nodes {
		addrs[i] = p.Addr()
	}
	c := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs, Password: cl.Password, DisableIdentity: true, Protocol: 2})
	tb.Cleanup(func() { c.Close() })
	return c
}

// MasterOf returns the address of the master that owns key's slot.
func (cl *Cluster) MasterOf(tb testing.TB, key string) string {
	tb.Helper()
	n, err := cl.Client(tb).MasterForKey(context.Background(), key)
	if err != nil {
		tb.Fatal(err)
	}
	return n.Options().Addr
}

// MasterName is the name the Sentinels monitor the master under.
const MasterName = "luachan-test"

// Sentinel is a master, its replica and three Sentinels watching them.
type Sentinel struct {
	Master, Replica  *Proc
	Sentinels        []*Proc
	Password         string // requirepass of the master and the replica, or none
	SentinelPassword string // requirepass of the Sentinels, or none
}

// StartSentinel starts a master, a replica of it and three Sentinels (quorum 2, the
// master taken for down after 1 s of silence), and waits until the replica is in sync
// and every Sentinel knows the replica and the other two Sentinels.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	return StartSentinelAuth(tb, "", "")
}

// StartSentinelAuth is StartSentinel with password as the master's and the replica's
// requirepass, and sentinelPassword as the Sentinels' (none if empty).
func StartSentinelAuth(tb testing.TB, password, sentinelPassword string) *Sentinel {
	tb.Helper()
	s := &Sentinel{Password: password, SentinelPassword: sentinelPassword}
	data := func(extra ...string) *Proc {
		port := freePort(tb)
		args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", tb.TempDir()}, extra...)
		if password != "" {
			args = append(args, "--requirepass", password, "--masterauth", password)
		}
		return startAuth(tb, port, password, args...)
	}
	s.Master = data("--repl-diskless-sync-delay", "0")
	s.Replica = data("--replicaof", "127.0.0.1", strconv.Itoa(s.Master.Port))
	for range 3 {
		port := freePort(tb)
		dir := tb.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %s 1000\n"+
			"sentinel failover-timeout %s 10000\n"+
			"sentinel parallel-syncs %s 1\n",
			port, dir, MasterName, s.Master.Port, MasterName, MasterName, MasterName)
		if password != "" {
			text += fmt.Sprintf("sentinel auth-pass %s %s\n", MasterName, password)
		}
		if sentinelPassword != "" {
			text += fmt.Sprintf("requirepass %s\n", sentinelPassword)
		}
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			tb.Fatal(err)
		}
		s.Sentinels = append(s.Sentinels, startAuth(tb, port, sentinelPassword, conf, "--sentinel"))
	}
	rc := goredis.NewClient(&goredis.Options{Addr: s.Replica.Addr(), Password: password, MaxRetries: -1, DisableIdentity: true, Protocol: 2})
	defer rc.Close()
	err := Poll(Wait, func() error {
		info, err := rc.Info(context.Background(), "replication").Result()
		if err != nil || !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replica not in sync: %v %s", err, info)
		}
		for _, sp := range s.Sentinels {
			sc := goredis.NewSentinelClient(&goredis.Options{Addr: sp.Addr(), Password: s.SentinelPassword, MaxRetries: -1, DisableIdentity: true, Protocol: 2})
			m, err := sc.Master(context.Background(), MasterName).Result()
			sc.Close()
			if err != nil {
				return err
			}
			if m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" {
				return fmt.Errorf("sentinel %s: %v", sp.Addr(), m)
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("the Sentinel set does not form: %v", err)
	}
	return s
}

// URL is the redis+sentinel:// URL of the master, database 0.
func (s *Sentinel) URL() string {
	addrs := make([]string, len(s.Sentinels))
	for i, p := range s.Sentinels {
		addrs[i] = p.Addr()
	}
	auth, query := "", ""
	if s.Password != "" {
		auth = ":" + url.QueryEscape(s.Password) + "@"
	}
	if s.SentinelPassword != "" {
		query = "?sentinel_password=" + url.QueryEscape(s.SentinelPassword)
	}
	return "redis+sentinel://" + auth + MasterName + "@" + strings.Join(addrs, ",") + "/0" + query
}

// KillMaster kills the master (SIGKILL) and waits until every Sentinel names the replica
// as the master.
func (s *Sentinel) KillMaster(tb testing.TB) {
	tb.Helper()
	s.Master.Kill(tb)
	err := Poll(Wait, func() error {
		for _, sp := range s.Sentinels {
			sc := goredis.NewSentinelClient(&goredis.Options{Addr: sp.Addr(), Password: s.SentinelPassword, MaxRetries: -1, DisableIdentity: true, Protocol: 2})
			addr, err := sc.GetMasterAddrByName(context.Background(), MasterName).Result()
			sc.Close()
			if err != nil {
				return err
			}
			if len(addr) != 2 || addr[1] != strconv.Itoa(s.Replica.Port) {
				return fmt.Errorf("sentinel %s names %v as the master", sp.Addr(), addr)
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("no failover: %v", err)
	}
}
