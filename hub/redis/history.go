package redis

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/luachan/luachan/history"
	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/hub/internal/wire"
	"github.com/luachan/luachan/internal/ratelog"
)

// Sizes of the Redis history.
const (
	historyMsgVersion = 2    // first byte of a broadcast published with its position
	historyMaxBatch   = 256  // appends per pipeline
	historyQueueLen   = 8192 // appends waiting for the appender
	// historyMetaKeep is how long a topic's epoch and counter outlive its last append or
	// read, at least: longer than its entries (ttl), so that a client that missed
	// nothing recovers after a quiet spell.
	historyMetaKeep = 24 * time.Hour
)

// metaKeep is how long a topic's meta hash is kept, in ms.
func metaKeep(lim history.Limits) int64 { return max(lim.TTL, historyMetaKeep).Milliseconds() }

// History keeps the broadcasts of topics with a history in Redis (SPEC section 10), so
// that every node gives them the same positions, in the same order, and the history
// outlives a node. It shares the PubSub's client and subscriber connection.
//
// Publish queues a broadcast; the appender goroutine runs appendScript for it, which
// gives it its position, keeps it in the topic's stream and publishes it on the topic's
// channel, in one step. No node delivers a history broadcast before Redis has
// positioned it, the sending node included: every node delivers it when it arrives on
// the channel, so the order is Redis's everywhere. While Redis is down such broadcasts
// are not delivered at all: they are counted and logged.
//
// Lifecycle: PubSub.History builds it (no I/O), Start starts the appender, Close
// (before PubSub.Close) appends what is queued, for up to redisCloseFlush, and stops it.
type History struct {
	ps       *PubSub
	queue    chan historyAppend
	progress queueProgress // the appender's, for PubSub.Flush

	closing atomic.Bool
	dropped atomic.Uint64
	dropLog ratelog.Limiter
	subLog  ratelog.Limiter

	stop      chan struct{}
	wg        sync.WaitGroup
	startOnce sync.Once
	stopOnce  sync.Once
}

// historyAppend is one broadcast waiting for the appender, with its topic's limits.
type historyAppend struct {
	b   *hub.Broadcast
	lim history.Limits
}

// History returns the Redis history of the topics, sharing r's client and subscriber.
func (r *PubSub) History() *History {
	h := &History{ps: r, queue: make(chan historyAppend, historyQueueLen), stop: make(chan struct{})}
	r.mu.Lock()
	r.histories = append(r.histories, h)
	r.mu.Unlock()
	return h
}

// Shared reports that positions are given by Redis, for every node (see Received).
func (h *History) Shared() bool { return true }

// Start starts the appender.
func (h *History) Start(ctx context.Context) {
	h.startOnce.Do(func() {
		h.wg.Add(1)
		go h.appendLoop()
	})
}

// Close appends what is queued (for up to redisCloseFlush) and stops the appender,
// giving up when ctx ends.
func (h *History) Close(ctx context.Context) error {
	h.stopOnce.Do(func() {
		h.closing.Store(true)
		close(h.stop)
	})
	return waitFor(ctx, h.wg.Wait)
}

// Dropped is how many history broadcasts were not delivered: queue full, Redis down,
// or shutting down.
func (h *History) Dropped() uint64 { return h.dropped.Load() }

// Publish queues b, a broadcast on a topic with history lim, for the appender. It
// never blocks; a full queue drops b, counted and logged.
func (h *History) Publish(b *hub.Broadcast, lim history.Limits) error {
	if h.closing.Load() {
		h.drop(1, "shutting down")
		return nil
	}
	h.progress.in()
	select {
	case h.queue <- historyAppend{b: b, lim: lim}:
	default:
		h.progress.undo()
		h.drop(1, "history append queue full")
	}
	return nil
}

// wait returns once every broadcast queued before the call has been appended and
// published (or dropped), or with ctx's error: see PubSub.Flush.
func (h *History) wait(ctx context.Context) error {
	if err := h.progress.wait(ctx); err != nil {
		return fmt.Errorf("redis: history broadcasts still queued: %w", err)
	}
	return nil
}

// Received delivers a broadcast from Redis as it is: Redis positioned it.
func (h *History) Received(b *hub.Broadcast, _ history.Limits, deliver func(*hub.Broadcast)) {
	deliver(b)
}

// drop counts n broadcasts not delivered and logs it, rate-limited.
func (h *History) drop(n int, why string) {
	h.dropped.Add(uint64(n))
	h.ps.count.dropped.Add(uint64(n))
	if ok, since := h.dropLog.Allow(n); ok {
		h.ps.log.Warn("history broadcasts not delivered", "reason", why, "dropped", since)
	}
}

// appendLoop runs appendScript for the queue, in order, a pipeline at a time, until
// Close.
func (h *History) appendLoop() {
	defer h.wg.Done()
	batch := make([]historyAppend, 0, historyMaxBatch)
	for {
		select {
		case a := <-h.queue:
			batch = append(batch[:0], a)
		case <-h.stop:
			h.flush(batch[:0])
			return
		}
		batch = h.fill(batch)
		_ = h.appendBatch(context.Background(), batch) // failures are counted and logged
		h.progress.advance(len(batch))
		clear(batch)
	}
}

// fill adds what is queued to batch, without waiting, up to historyMaxBatch.
func (h *History) fill(batch []historyAppend) []historyAppend {
	for len(batch) < historyMaxBatch {
		select {
		case a := <-h.queue:
			batch = append(batch, a)
		default:
			return batch
		}
	}
	return batch
}

// flush appends what is left in the queue, for up to redisCloseFlush.
func (h *History) flush(batch []historyAppend) {
	ctx, cancel := context.WithTimeout(context.Background(), redisCloseFlush)
	defer cancel()
	for {
		batch = h.fill(batch[:0])
		if len(batch) == 0 {
			return
		}
		if ctx.Err() != nil {
			n := len(batch) + len(h.queue)
			h.drop(n, "shutting down")
			h.progress.advance(n)
			return
		}
		err := h.appendBatch(ctx, batch)
		h.progress.advance(len(batch))
		if err != nil {
			n := len(h.queue)
			h.drop(n, "shutting down")
			h.progress.advance(n)
			return
		}
	}
}

// appendBatch runs appendScript for every broadcast of batch in one pipeline. When
// Redis has forgotten the script (a restart), nothing of the pipeline ran: the script
// is loaded and the pipeline sent again. Failed appends are dropped, counted.
func (h *History) appendBatch(ctx context.Context, batch []historyAppend) error {
	var head []byte
	for attempt := 0; ; attempt++ {
		pipe := h.ps.client.Pipeline()
		for _, a := range batch {
			head = appendHistoryHead(head[:0], h.ps.node, a.b)
			appendScript.EvalSha(ctx, pipe, h.keys(a.b.Topic),
				newEpoch(), a.lim.Size, max(a.lim.TTL.Milliseconds(), 1),
				h.ps.channel(a.b.Topic), string(head), a.b.Payload, metaKeep(a.lim),
				h.ps.publishCommand())
		}
		cmds, err := pipe.Exec(ctx)
		if err != nil && attempt == 0 && len(cmds) > 0 && isNoScript(cmds[0].Err()) {
			if err := appendScript.Load(ctx, h.ps.client).Err(); err != nil {
				h.drop(len(batch), "loading the history script failed")
				return err
			}
			continue
		}
		failed := 0
		for _, c := range cmds {
			if c.Err() != nil {
				failed++
			}
		}
		if err != nil && len(cmds) == 0 {
			failed = len(batch)
		}
		if failed > 0 {
			why := "Redis did not append"
			if err != nil {
				why += ": " + err.Error()
			}
			h.drop(failed, why)
			h.ps.count.published.Add(uint64(len(batch) - failed))
			return err
		}
		h.ps.count.published.Add(uint64(len(batch)))
		return nil
	}
}

// isNoScript reports whether err is Redis's NOSCRIPT: the script is not loaded.
func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// keys returns topic's meta hash and stream, one Redis Cluster slot: the topic is
// their hash tag.
func (h *History) keys(topic string) []string {
	base := h.ps.cfg.Prefix + "h:{" + topic + "}:"
	return []string{base + "meta", base + "s"}
}

// newEpoch returns a random epoch, for a topic that has none yet.
func newEpoch() string {
	var b [6]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ErrHistoryRead wraps the failure of a history read.
var ErrHistoryRead = errors.New("redis: reading the history failed")

// Read returns topic's entries after since (""; the latest), at most limit of them
// (0: all; -1: none, only the current position), and the current position. recovered
// is false, with no entries, when since is malformed, of another epoch, ahead, or
// older than what Redis keeps; and when Redis cannot be read (err then says why).
func (h *History) Read(ctx context.Context, topic string, lim history.Limits, since string, limit int) ([]history.Entry[*hub.Broadcast], history.Position, bool, error) {
	sinceEpoch, sinceN := "", uint64(0)
	malformed := false
	if since != "" {
		p, ok := history.ParsePosition(since)
		if ok && p.Epoch != "" {
			sinceEpoch, sinceN = p.Epoch, p.N
		} else {
			malformed, limit = true, -1
		}
	}
	if limit == 0 && since == "" {
		limit = max(lim.Size, 1)
	}
	ctx, cancel := context.WithTimeout(ctx, redisIOTimeout)
	defer cancel()
	v, err := readScript.Run(ctx, h.ps.client, h.keys(topic),
		newEpoch(), max(lim.TTL.Milliseconds(), 1), sinceEpoch, sinceN, limit, metaKeep(lim)).Slice()
	if err != nil {
		return nil, history.Position{}, false, fmt.Errorf("%w for %q: %w", ErrHistoryRead, topic, err)
	}
	entries, cur, recovered, err := parseRead(topic, h.ps.node, v)
	if err != nil {
		return nil, history.Position{}, false, err
	}
	return entries, cur, recovered && !malformed, nil
}

// parseRead reads readScript's answer.
func parseRead(topic string, node uint64, v []any) ([]history.Entry[*hub.Broadcast], history.Position, bool, error) {
	bad := fmt.Errorf("%w for %q: unexpected answer from Redis", ErrHistoryRead, topic)
	if len(v) < 3 || (len(v)-3)%3 != 0 {
		return nil, history.Position{}, false, bad
	}
	epoch, _ := v[0].(string)
	nStr, _ := v[1].(string)
	n, err := strconv.ParseUint(nStr, 10, 64)
	flag, _ := v[2].(int64)
	if epoch == "" || err != nil {
		return nil, history.Position{}, false, bad
	}
	cur := history.Position{Epoch: epoch, N: n}
	entries := make([]history.Entry[*hub.Broadcast], 0, (len(v)-3)/3)
	for i := 3; i < len(v); i += 3 {
		id, _ := v[i].(string)
		head, _ := v[i+1].(string)
		payload, _ := v[i+2].(string)
		en, err := strconv.ParseUint(strings.TrimSuffix(id, "-0"), 10, 64)
		if err != nil {
			return nil, history.Position{}, false, bad
		}
		b, sender, from, rest, err := parseHistoryHead(head)
		if err != nil || rest != "" {
			return nil, history.Position{}, false, bad
		}
		if sender == node {
			b.From = from // a connection key means something on its node only
		}
		b.Topic, b.Payload = topic, []byte(payload)
		pos := history.Position{Epoch: epoch, N: en}
		b.Ref = pos.String()
		entries = append(entries, history.Entry[*hub.Broadcast]{Position: pos, Value: b})
	}
	return entries, cur, flag == 1, nil
}

// Subscribed waits, for up to redisSubscribeWait, until Redis has confirmed this
// node's subscription to topic on the subscriber connection that is up: from then on,
// every broadcast appended reaches this node. A join's replay reads the history only
// then; false means it cannot be sure to leave no gap. It is logged, rate-limited.
func (h *History) Subscribed(topic string) bool {
	r := h.ps
	r.mu.Lock()
	_, wanted := r.want[topic]
	ticket := r.taken
	if _, pending := r.changed[topic]; pending {
		ticket++
	}
	r.mu.Unlock()
	ok := wanted && r.waitState(context.Background(), redisSubscribeWait, func() bool { return r.up && r.confirmed >= ticket })
	if !ok {
		if log, n := h.subLog.Allow(1); log {
			r.log.Warn("history join not recovered: subscription to the topic not confirmed by Redis", "topic", topic, "joins", n)
		}
	}
	return ok
}

// appendHistoryHead appends the head of b's message: the version byte, the node id
// (8 bytes), a flags byte (1: binary payload), b.From (8 bytes; a connection key of
// that node), the event's length as a uvarint and the event. The published message is
// the head, the position, "\n", the payload; the stream keeps the head and the payload.
func appendHistoryHead(dst []byte, node uint64, b *hub.Broadcast) []byte {
	dst = append(dst, historyMsgVersion)
	dst = binary.BigEndian.AppendUint64(dst, node)
	var flags byte
	if b.Binary {
		flags |= 1
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint64(dst, b.From)
	dst = binary.AppendUvarint(dst, uint64(len(b.Event)))
	return append(dst, b.Event...)
}

// parseHistoryHead reverses appendHistoryHead, returning what follows the head.
func parseHistoryHead(data string) (b *hub.Broadcast, node, from uint64, rest string, err error) {
	if len(data) < 18 || data[0] != historyMsgVersion {
		return nil, 0, 0, "", wire.ErrMalformed
	}
	node = binary.BigEndian.Uint64([]byte(data[1:9]))
	flags := data[9]
	from = binary.BigEndian.Uint64([]byte(data[10:18]))
	rest = data[18:]
	n, k := binary.Uvarint([]byte(rest[:min(len(rest), binary.MaxVarintLen64)]))
	if k <= 0 || n > uint64(len(rest)-k) {
		return nil, 0, 0, "", wire.ErrMalformed
	}
	rest = rest[k:]
	return &hub.Broadcast{Event: rest[:n], Binary: flags&1 != 0}, node, from, rest[n:], nil
}

// isHistoryMessage reports whether a message on a topic's channel is a history
// broadcast (appendScript's), which every node delivers, its sender included.
func isHistoryMessage(data string) bool { return len(data) > 0 && data[0] == historyMsgVersion }

// receiveHistory delivers a history broadcast from the topic's channel with its
// position as its ref; this node's own keep their sender, for broadcast_from.
func (r *PubSub) receiveHistory(topic, data string) {
	b, node, from, rest, err := parseHistoryHead(data)
	pos, payload, found := strings.Cut(rest, "\n")
	if err != nil || !found {
		if ok, n := r.junkLog.Allow(1); ok {
			r.log.Warn("ignoring messages luachan did not write", "channel", r.channel(topic), "ignored", n)
		}
		return
	}
	b.Topic, b.Ref, b.Payload = topic, pos, []byte(payload)
	if p, ok := history.ParsePosition(pos); ok {
		r.checkGap(topic, p)
	}
	if node == r.node {
		b.From = from
		r.count.own.Add(1)
	} else {
		r.count.received.Add(1)
	}
	r.deliver(b)
}
