package hub

import (
	"fmt"
	"sync"
)

// disconnectEvent, broadcast on a socket id, closes the sockets with that id.
const disconnectEvent = "disconnect"

// Broadcast is one event for every subscriber of Topic. It is encoded at most once per
// wire format (V1 text, V2 text or V2 binary, realtime-js's kind 4) however many subscribers receive it, and
// the same bytes are queued to every fast-laned subscriber. A Broadcast must not be
// copied once used, and its exported fields must not change once it has been passed to
// the Hub.
type Broadcast struct {
	Topic   string
	Event   string
	Payload []byte // JSON object text, or raw bytes when Binary
	Binary  bool
	From    uint64 // Conn.Key() of the sender for broadcast_from: that connection is skipped; 0 skips nobody
	Ref     string // the frame's ref ("" for null): a topic's history position, "<epoch>:<n>"

	frames [3]encodedFrame // index 0: V1, 1: V2 (binary when Binary), 2: kind 4 (see frameFor)
	memo   struct {
		once  sync.Once
		value any
	}
}

// encodedFrame is a Broadcast's frame for one wire format, built on first use.
type encodedFrame struct {
	once sync.Once
	wf   wireFrame
	err  error
}

// Memo returns the value computed by f the first time Memo is called on b; later calls
// (from any goroutine) return the same value. The engine uses it to convert an
// intercepted payload to Lua once per broadcast, not once per subscriber.
func (b *Broadcast) Memo(f func() any) any {
	b.memo.once.Do(func() { b.memo.value = f() })
	return b.memo.value
}

// Frame returns the encoded server frame [null, ref, topic, event, payload] for format
// f, without the WebSocket header, and whether it is a binary frame. It returns nil for
// a binary broadcast in V1 (which has no binary frames), or one whose topic or event is
// too long for a binary frame.
func (b *Broadcast) Frame(f Format) (data []byte, binary bool) {
	wf, err := b.frame(f)
	if err != nil {
		return nil, false
	}
	return wf.buf[wf.body:], b.Binary
}

// SendTo queues b's pre-encoded frame on c: the fast lane for one subscriber. Errors are
// those of Conn.Send.
func (b *Broadcast) SendTo(c *Conn) error {
	wf, err := b.frameFor(c)
	if err != nil {
		return err
	}
	c.hub.count.sent.Add(1)
	c.hub.count.bytesOut.Add(uint64(len(wf.buf)))
	return c.enqueue(wf.buf)
}

// frame returns b's complete WebSocket frame for f, encoding it on first use.
func (b *Broadcast) frame(f Format) (wireFrame, error) {
	i := 1
	if f == V1 {
		i = 0
	}
	ef := &b.frames[i]
	ef.once.Do(func() {
		ef.wf, ef.err = encodeBroadcast(f, b.Topic, b.Event, b.Ref, b.Payload, b.Binary)
	})
	return ef.wf, ef.err
}

// frameFor returns b's frame for c: a binary broadcast to realtime-js is its kind 4.
func (b *Broadcast) frameFor(c *Conn) (wireFrame, error) {
	if !b.Binary || !c.userBroadcasts {
		return b.frame(c.format)
	}
	ef := &b.frames[2]
	ef.once.Do(func() {
		ef.wf, ef.err = encodeUserBroadcast(b.Topic, b.Event, b.Payload)
	})
	return ef.wf, ef.err
}

// Broadcast delivers b to every local subscriber of b.Topic (fast lane or Deliver) and
// publishes it through the PubSub. It never blocks on a slow client. It returns an error
// only if publishing failed; local delivery has happened regardless.
func (h *Hub) Broadcast(b *Broadcast) error {
	h.DeliverLocal(b)
	if h.cfg.PubSub == nil {
		return nil
	}
	if err := h.cfg.PubSub.Publish(b); err != nil {
		return fmt.Errorf("hub: publish to %q: %w", b.Topic, err)
	}
	return nil
}

// DeliverLocal delivers b to local subscribers only: what a PubSub adapter calls for a
// broadcast from another node (with From 0: connection keys mean nothing across
// processes). The subscriber list is copied under the shard's read lock
// and written to after it is released; subscribers without an interest in b.Event get
// the shared pre-encoded frame, which costs no allocation per subscriber.
func (h *Hub) DeliverLocal(b *Broadcast) {
	h.count.broadcasts.Add(1)
	if b.Event == disconnectEvent {
		// Phoenix's way to log a user out everywhere: a "disconnect" broadcast on a
		// socket id closes every socket with that id (on every node, with a PubSub).
		if n := h.Disconnect(b.Topic); n > 0 {
			h.log.Info("sockets disconnected by broadcast", "id", b.Topic, "closed", n)
		}
	}
	sp := snapshotPool.Get().(*[]Subscriber)
	subs := h.reg.snapshot(b.Topic, (*sp)[:0])
	fast, bytes := 0, 0
	for _, s := range subs {
		c := s.Conn()
		if c == nil || (b.From != 0 && c.key == b.From) {
			continue
		}
		if s.Intercepts(b.Event) {
			s.Deliver(b)
			continue
		}
		wf, err := b.frameFor(c)
		if err != nil {
			continue // ErrBinaryV1 or ErrFieldTooLong: nothing this client can receive
		}
		_ = c.enqueue(wf.buf) // a full queue closes c; the others carry on
		fast++
		bytes += len(wf.buf)
	}
	h.count.delivered.Add(uint64(fast))
	h.count.bytesOut.Add(uint64(bytes))
	h.taps.notify(b)
	clear(subs)
	*sp = subs[:0]
	snapshotPool.Put(sp)
}
