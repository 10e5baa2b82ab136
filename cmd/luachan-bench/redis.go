package main

// The Redis that joins -nodes luachans when -redis names none: a
// redis-server child on a free loopback port with persistence off, so that
// it does nothing but pass the broadcasts between the nodes. The tool talks
// to it only to see that it is up (PING), in plain RESP: no client library.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

const (
	// redisPingWait bounds one PING: connect, write and read.
	redisPingWait = time.Second
	// redisPingEvery is how often a starting redis-server is asked again.
	redisPingEvery = 20 * time.Millisecond
)

// noRedisServer says what to do when a run needs redis-server and cannot find it.
const noRedisServer = "-nodes needs a Redis and redis-server is not on PATH: install it (apt-get install redis-server) or pass -redis redis://127.0.0.1:PORT of a running one"

// startRedis starts redis-server on a free port of 127.0.0.1 and waits until
// it answers PING. Stop it with stopProcess.
func startRedis(ctx context.Context) (*server, error) {
	exe, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("bench: " + noRedisServer)
	}
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("bench: finding a free port for redis-server: %w", err)
	}
	s, _, err := spawn("redis-server", []string{exe, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no"}, true)
	if err != nil {
		return nil, err
	}
	s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.NewTimer(startWait)
	defer deadline.Stop()
	for {
		err := pingRedis(ctx, s.addr)
		if err == nil {
			return s, nil
		}
		select {
		case <-s.exited:
			s.cmd.Wait()
			return nil, fmt.Errorf("bench: redis-server exited at start (port %d):\n%s", port, s.logTail())
		case <-deadline.C:
			s.stopProcess()
			return nil, fmt.Errorf("bench: redis-server on %s did not answer PING within %v (%v):\n%s", s.addr, startWait, err, s.logTail())
		case <-ctx.Done():
			s.stopProcess()
			return nil, ctx.Err()
		case <-time.After(redisPingEvery):
		}
	}
}

// freePort is a loopback port nobody listens on. Another process could take
// it before redis-server does; redis-server then exits and says so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pingRedis sends an inline PING to the Redis at addr and expects +PONG.
func pingRedis(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: redisPingWait}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(redisPingWait))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}
