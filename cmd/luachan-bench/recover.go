package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// recover mode: -clients clients join a topic with a history and leave, -msgs
// broadcasts go out, then every client rejoins at once with since (its
// position), over the nodes in turn. It measures the time until every client
// has had its replay, and counts what did not arrive (lost) and the rejoins not
// recovered (failed).

// recoverPoll is how often the mode looks at the history's position while the
// broadcasts are appended.
const recoverPoll = 5 * time.Millisecond

// runRecover measures one luachan target: see above.
func runRecover(ctx context.Context, cfg *config, target string, srv *server, stderr io.Writer) ([]row, error) {
	topic := topicFor(target, "recover") + strconv.FormatInt(time.Now().UnixNano(), 36)
	d, err := newDialer(srv.urls(), cfg.localIPs)
	if err != nil {
		return nil, err
	}
	// 1. Join and leave, keeping each client's position.
	positions := make([]string, cfg.clients)
	if err := forEach(ctx, cfg.clients, cfg.dialers, func(i int) error {
		c, pos, _, err := recoverJoin(ctx, d, i, topic, "")
		if err != nil {
			return err
		}
		positions[i] = pos
		c.abort()
		return nil
	}); err != nil {
		return nil, fmt.Errorf("bench: first joins: %w", err)
	}
	// 2. The broadcasts, through the first node's API, until its history has them.
	epoch, n0, ok := splitPosition(positions[0])
	if !ok {
		return nil, fmt.Errorf("bench: join position %q is not epoch:n; does bench.lua keep a history?", positions[0])
	}
	for k := range cfg.msgs {
		if err := apiBroadcast(ctx, cfg, srv.addr, topic, k); err != nil {
			return nil, err
		}
	}
	want := epoch + ":" + strconv.FormatUint(n0+uint64(cfg.msgs), 10)
	if err := waitPosition(ctx, cfg, srv.addr, topic, want); err != nil {
		return nil, err
	}
	// 3. Every client rejoins at once with since and reads its replay.
	var got, notRecovered atomic.Int64
	srvCPU, selfCPU := startCPU(srv.pid), startCPU(0)
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, cfg.clients)
	for i := range cfg.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, recovered, err := recoverJoin(ctx, d, i, topic, positions[i])
			if err != nil {
				errs <- err
				return
			}
			defer c.abort()
			if !recovered {
				notRecovered.Add(1)
				return
			}
			c.ws.SetReadDeadline(time.Now().Add(cfg.drain))
			_, from, _ := splitPosition(positions[i])
			for k := 0; k < cfg.msgs; {
				f, err := c.next()
				if err != nil {
					return // counted as lost
				}
				if string(f.event) != "msg" {
					continue
				}
				_, n, _ := splitPosition(strings.Trim(string(f.ref), `"`))
				if n != from+uint64(k)+1 {
					errs <- fmt.Errorf("client %d: position %d after %d", i, n, from+uint64(k))
					return
				}
				got.Add(1)
				k++
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	srvUsed, srvOK := srvCPU.stop()
	selfUsed, _ := selfCPU.stop()
	close(errs)
	failedJoins := int64(0)
	var firstErr error
	for err := range errs {
		failedJoins++
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		fmt.Fprintf(stderr, "luachan-bench: %s: %d rejoins failed, the first: %v\n", target, failedJoins, firstErr)
	}
	expected := int64(cfg.clients) * int64(cfg.msgs)
	out := row{
		Target:   target,
		Op:       "replayed",
		Ops:      got.Load(),
		Expected: expected,
		Lost:     expected - got.Load(),
		Failed:   failedJoins + notRecovered.Load(),
		Elapsed:  elapsed.Seconds(),
		Extra:    map[string]any{"not_recovered": notRecovered.Load(), "all_replayed_s": elapsed.Seconds()},
	}
	if out.Elapsed > 0 {
		out.OpsPerSec = float64(out.Ops) / out.Elapsed
	}
	srv.noteWarnings(out.Extra)
	if srvOK && out.Ops > 0 {
		out.ServerCPU = us(srvUsed) / float64(out.Ops)
		out.ClientCPU = us(selfUsed) / float64(out.Ops)
	}
	return []row{out}, nil
}

// recoverJoin connects client i and joins topic, with since unless it is "",
// returning the reply's position and recovered.
func recoverJoin(ctx context.Context, d *dialer, i int, topic, since string) (*client, string, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, joinWait)
	defer cancel()
	ws, err := d.dial(ctx, i)
	if err != nil {
		return nil, "", false, err
	}
	c := &client{id: i, ws: ws, topic: []byte(topic), joinRef: []byte("1")}
	payload := []byte("{}")
	if since != "" {
		payload = []byte(`{"since":` + strconv.Quote(since) + `}`)
	}
	if err := c.send(c.joinRef, c.joinRef, []byte("phx_join"), payload); err != nil {
		c.abort()
		return nil, "", false, err
	}
	deadline, _ := ctx.Deadline()
	c.ws.SetReadDeadline(deadline)
	for {
		f, err := c.next()
		if err != nil {
			c.abort()
			return nil, "", false, err
		}
		if string(f.event) != "phx_reply" || !bytes.Equal(f.ref, []byte(`"1"`)) && !bytes.Equal(f.ref, c.joinRef) {
			continue
		}
		if !replyOK(f.payload) {
			c.abort()
			return nil, "", false, fmt.Errorf("%w: %s", errJoinRefused, f.payload)
		}
		pos := jsonString(f.payload, "position")
		return c, pos, bytes.Contains(f.payload, []byte(`"recovered":true`)), nil
	}
}

// jsonString is the string value of key in p, a flat search good for the
// join reply luachan writes.
func jsonString(p []byte, key string) string {
	k := []byte(`"` + key + `":"`)
	i := bytes.Index(p, k)
	if i < 0 {
		return ""
	}
	rest := p[i+len(k):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// splitPosition reads "<epoch>:<n>".
func splitPosition(s string) (epoch string, n uint64, ok bool) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(s[i+1:], 10, 64)
	return s[:i], n, err == nil
}

// forEach runs f for 0..n-1, at most conc at a time, and returns the first error.
func forEach(ctx context.Context, n, conc int, f func(i int) error) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, max(conc, 1))
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(i); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

// apiBroadcast posts broadcast number k on topic to the node at addr.
func apiBroadcast(ctx context.Context, cfg *config, addr, topic string, k int) error {
	body := fmt.Sprintf(`{"topic":%q,"event":"msg","payload":{"k":%d}}`, topic, k)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/broadcast", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("bench: POST /api/broadcast: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("bench: POST /api/broadcast: status %d", resp.StatusCode)
	}
	return nil
}

// waitPosition waits, up to cfg.drain, until topic's history at addr is at want.
func waitPosition(ctx context.Context, cfg *config, addr, topic, want string) error {
	deadline := time.Now().Add(cfg.drain)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/history?limit=1&topic="+topic, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+cfg.apiKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("bench: GET /api/history: %w", err)
		}
		resp.Body.Close()
		got := resp.Header.Get("X-History-Position")
		if got == want {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("bench: the history is at " + got + ", not " + want + ", after -drain")
		}
		select {
		case <-time.After(recoverPoll):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
