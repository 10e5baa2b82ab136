package main

// One Phoenix client connection, as every mode's clients use it: dialled
// from a rotating loopback source address, joined to one topic, with one
// reader goroutine and writes serialised by a mutex.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// writeWait bounds every frame a client writes.
	writeWait = 10 * time.Second
	// joinWait bounds a connect-and-join.
	joinWait = 30 * time.Second
	// clientReadBuffer is each client's read buffer: several small frames
	// fit, so a batch written by the server is read in one system call.
	clientReadBuffer = 4096
	// maxLocalAddrs is the most 127.0.0.x source addresses to rotate over.
	maxLocalAddrs = 250
)

// errJoinRefused is a join answered with status "error".
var errJoinRefused = errors.New("bench: join refused")

// dialer opens client connections to a server (or to the nodes of one, in
// turn), rotating the source address over 127.0.0.1..127.0.0.n so that tens
// of thousands of connections fit in the ephemeral port range (about 28,000
// per source address).
type dialer struct {
	urls   []string
	nAddrs int
	ws     websocket.Dialer
}

// wsURL is the Phoenix V2 WebSocket endpoint of a server at host:port.
func wsURL(addr string) string {
	return "ws://" + addr + "/socket/websocket?vsn=2.0.0"
}

// checkLoopback refuses any server outside 127.0.0.0/8: the tool is a load
// generator and only ever points at this machine.
func checkLoopback(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	ip := net.ParseIP(u.Hostname())
	if u.Hostname() == "localhost" || ip != nil && ip.IsLoopback() && ip.To4() != nil {
		return nil
	}
	return fmt.Errorf("bench: %s is not in 127.0.0.0/8; the tool only loads this machine", u.Host)
}

// newDialer dials the endpoints urls, connection i the one urlFor picks.
func newDialer(urls []string, nAddrs int) (*dialer, error) {
	if len(urls) == 0 {
		return nil, errors.New("bench: no server URL to dial")
	}
	for _, u := range urls {
		if err := checkLoopback(u); err != nil {
			return nil, err
		}
	}
	d := &dialer{urls: urls, nAddrs: min(max(nAddrs, 1), maxLocalAddrs)}
	d.ws = websocket.Dialer{
		HandshakeTimeout: joinWait,
		ReadBufferSize:   clientReadBuffer,
		WriteBufferPool:  &sync.Pool{},
	}
	return d, nil
}

// urlFor is the endpoint of connection i: round-robin over the nodes, so
// each gets an even share of any run's connections.
func urlFor(urls []string, i int) string {
	return urls[i%len(urls)]
}

// localAddr is the source address of connection i.
func (d *dialer) localAddr(i int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%d.nAddrs))}
}

// dial connects connection number i (its number picks the source address).
func (d *dialer) dial(ctx context.Context, i int) (*websocket.Conn, error) {
	nd := net.Dialer{
		LocalAddr: d.localAddr(i),
		Control:   func(_, _ string, c syscall.RawConn) error { return bindNoPort(c) },
	}
	ws := d.ws
	ws.NetDialContext = nd.DialContext
	conn, resp, err := ws.DialContext(ctx, urlFor(d.urls, i), nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(64 << 20)
	return conn, nil
}

// client is one connection joined to one topic.
type client struct {
	id      int
	ws      *websocket.Conn
	topic   []byte
	joinRef []byte

	wmu  sync.Mutex // guards writes on ws and wbuf
	wbuf []byte

	rbuf bytes.Buffer // owned by the reader
}

// dialJoin connects connection i and joins topic with an empty payload,
// returning once the join is answered ok.
func (d *dialer) dialJoin(ctx context.Context, i int, topic string) (*client, error) {
	ctx, cancel := context.WithTimeout(ctx, joinWait)
	defer cancel()
	ws, err := d.dial(ctx, i)
	if err != nil {
		return nil, err
	}
	c := &client{id: i, ws: ws, topic: []byte(topic), joinRef: []byte("1")}
	if err := c.join(ctx); err != nil {
		c.abort()
		return nil, err
	}
	return c, nil
}

// join sends phx_join and reads until its reply.
func (c *client) join(ctx context.Context) error {
	if err := c.send(c.joinRef, c.joinRef, []byte("phx_join"), []byte("{}")); err != nil {
		return err
	}
	deadline, _ := ctx.Deadline()
	c.ws.SetReadDeadline(deadline)
	defer c.ws.SetReadDeadline(time.Time{})
	for {
		f, err := c.next()
		if err != nil {
			return err
		}
		if string(f.event) == "phx_reply" && bytes.Equal(f.ref, c.joinRef) {
			if !replyOK(f.payload) {
				return fmt.Errorf("%w: %s", errJoinRefused, f.payload)
			}
			return nil
		}
	}
}

// send writes the frame [joinRef, ref, topic, event, payload] on c's topic.
func (c *client) send(joinRef, ref, event, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = appendFrame(c.wbuf[:0], joinRef, ref, c.topic, event, payload)
	c.ws.SetWriteDeadline(time.Now().Add(writeWait))
	return c.ws.WriteMessage(websocket.TextMessage, c.wbuf)
}

// push sends event with payload on the joined topic under ref.
func (c *client) push(ref int64, event string, payload []byte) error {
	var r [20]byte
	return c.send(c.joinRef, strconv.AppendInt(r[:0], ref, 10), []byte(event), payload)
}

// heartbeat sends Phoenix's keep-alive on the "phoenix" topic.
func (c *client) heartbeat() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ws.SetWriteDeadline(time.Now().Add(writeWait))
	return c.ws.WriteMessage(websocket.TextMessage, []byte(`[null,"hb","phoenix","heartbeat",{}]`))
}

// next reads one frame; it is valid until the next call. Reader only.
func (c *client) next() (frame, error) {
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			return frame{}, err
		}
		c.rbuf.Reset()
		if _, err := c.rbuf.ReadFrom(r); err != nil {
			return frame{}, err
		}
		if f, err := parseFrame(c.rbuf.Bytes()); err == nil {
			return f, nil
		}
	}
}

// readLoop hands every frame to handle until the connection fails.
func (c *client) readLoop(handle func(c *client, f frame, now time.Time)) error {
	for {
		f, err := c.next()
		if err != nil {
			return err
		}
		handle(c, f, time.Now())
	}
}

// abort closes the connection at once with a TCP reset, so neither side
// keeps the port in TIME_WAIT: a run closes thousands of connections.
func (c *client) abort() {
	if tc, ok := c.ws.UnderlyingConn().(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.ws.Close()
}
