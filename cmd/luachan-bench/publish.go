package main

// The fan-out publisher, two ways: a WebSocket client pushing "pub" on the
// topic, which the channel broadcasts to everyone else (a script call per
// broadcast on luachan), or POST /api/broadcast (no script call, an HTTP
// request per broadcast). The ceiling serves both the same way.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// apiKey is the bearer key of the luachan the tool starts, for -publish api.
const apiKey = "luachan-bench"

// publisher sends the broadcasts of a fan-out.
type publisher struct {
	ctx     context.Context // ends when the publisher can publish no more
	stop    context.CancelFunc
	acked   atomic.Int64
	refused atomic.Int64
	first   atomic.Value // string: the first refusal
	send    func(seq int64, payload []byte) error
	close   func()
}

// accepted counts a broadcast the server took. Warm-ups are not among the
// broadcasts measured.
func (p *publisher) accepted(warm bool) {
	if !warm {
		p.acked.Add(1)
	}
}

// refuse counts a broadcast the server refused; a warm-up's refusal is not
// counted but still says why the warm-up never arrives.
func (p *publisher) refuse(warm bool, why string) {
	if !warm {
		p.refused.Add(1)
	}
	p.first.CompareAndSwap(nil, why)
}

// newPublisher connects the publisher of -publish to srv.
func newPublisher(ctx context.Context, cfg *config, srv *server, topic string) (*publisher, error) {
	p := &publisher{}
	p.ctx, p.stop = context.WithCancel(ctx)
	if cfg.publish == "api" {
		p.apiPublisher(cfg, srv, topic)
		return p, nil
	}
	d, err := newDialer([]string{wsURL(srv.addr)}, cfg.localIPs)
	if err != nil {
		p.stop()
		return nil, err
	}
	c, err := d.dialJoin(ctx, cfg.subs, topic)
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("bench: publisher: %w", err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		c.readLoop(p.handle)
	}()
	// The publisher heartbeats like the subscribers: a long setup or an
	// -idle hold outlasts luachan's idle timeout.
	beats, beating := newBeater(cfg.heartbeat), make(chan struct{})
	beats.add(c)
	go func() {
		defer close(beating)
		beats.run(p.ctx)
	}()
	p.send = func(seq int64, payload []byte) error { return c.push(seq+rpcRefBase, "pub", payload) }
	p.close = func() {
		p.stop()
		<-beating
		c.abort()
		<-read
	}
	return p, nil
}

// handle counts the publisher's replies and notices its channel's end.
func (p *publisher) handle(_ *client, f frame, _ time.Time) {
	if string(f.topic) == "phoenix" {
		return // a heartbeat's reply
	}
	switch string(f.event) {
	case "phx_reply":
		warm := string(f.ref) == warmRef
		if replyOK(f.payload) {
			p.accepted(warm)
		} else {
			p.refuse(warm, "phx_reply "+string(f.payload))
		}
	case "phx_error", "phx_close":
		// The channel is gone: what it would publish next could not arrive.
		p.first.CompareAndSwap(nil, string(f.event)+" "+string(f.payload))
		p.stop()
	}
}

// apiPublisher publishes with POST /api/broadcast, one request at a time.
func (p *publisher) apiPublisher(cfg *config, srv *server, topic string) {
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	hc := &http.Client{Transport: tr, Timeout: writeWait}
	url := "http://" + srv.addr + "/api/broadcast"
	key := "Bearer " + cfg.apiKey
	var body []byte
	p.send = func(seq int64, payload []byte) error {
		body = append(append(append(body[:0], `{"topic":"`+topic+`","event":"msg","payload":`...), payload...), '}')
		req, err := http.NewRequestWithContext(p.ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted {
			p.accepted(seq == warmSeq)
			return nil
		}
		p.refuse(seq == warmSeq, fmt.Sprintf("HTTP %d %s", resp.StatusCode, bytes.TrimSpace(msg)))
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusNotFound {
			p.stop() // the API is off or the key is wrong: nothing will get through
		}
		return nil
	}
	p.close = func() { p.stop(); tr.CloseIdleConnections() }
}
