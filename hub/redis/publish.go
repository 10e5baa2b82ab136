package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/hub/internal/wire"
)

// The publishing half of PubSub: one goroutine sending the queue to Redis, in order.

// publishLoop sends the queue to Redis in order, a pipeline of up to redisMaxBatch
// broadcasts at a time. After a failure it waits (backoff) before the next attempt, and
// the queue absorbs what arrives meanwhile. It returns once Close has stopped it and the
// queue is flushed.
func (r *PubSub) publishLoop() {
	defer r.wg.Done()
	var (
		batch  []*hub.Broadcast
		buf    []byte
		bo     backoff
		failed bool
	)
	for {
		select {
		case b := <-r.queue:
			batch = append(batch[:0], b)
		case <-r.stop:
			r.flush(batch[:0], buf)
			return
		}
		batch = r.fill(batch)
		var err error
		buf, err = r.publishBatch(context.Background(), batch, buf)
		r.progress.advance(len(batch))
		clear(batch)
		switch {
		case err == nil && failed:
			failed = false
			bo.reset()
			r.pubLog.Reset()
			r.log.Info("publishing to Redis again")
		case err != nil:
			failed = true
			if ok, since := r.pubLog.Allow(1); ok {
				r.log.Warn("publishing to Redis failed; other nodes miss these broadcasts, local delivery carries on",
					"reason", err, "failures", since)
			}
			select {
			case <-time.After(bo.next()):
			case <-r.stop:
			}
		}
	}
}

// Flush returns once every broadcast queued before the call, by this PubSub and by its
// Histories, has been sent to Redis (its PUBLISH answered: Redis has queued it for the
// other nodes' subscriber connections) or dropped, or with ctx's error. TopicStates lets
// a lease go after it, so that the node's last broadcasts on the topic are in Redis
// before another node can take the topic.
func (r *PubSub) Flush(ctx context.Context) error {
	if err := r.progress.wait(ctx); err != nil {
		return fmt.Errorf("redis: broadcasts still queued for the other nodes: %w", err)
	}
	r.mu.Lock()
	histories := r.histories
	r.mu.Unlock()
	for _, h := range histories {
		if err := h.wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// fill adds queued broadcasts to batch, without waiting, up to redisMaxBatch of them or
// redisMaxBatchBytes of payload.
func (r *PubSub) fill(batch []*hub.Broadcast) []*hub.Broadcast {
	size := 0
	for _, b := range batch {
		size += len(b.Payload)
	}
	for len(batch) < redisMaxBatch && size < redisMaxBatchBytes {
		select {
		case b := <-r.queue:
			batch = append(batch, b)
			size += len(b.Payload)
		default:
			return batch
		}
	}
	return batch
}

// flush publishes what is left in the queue, for up to redisCloseFlush.
func (r *PubSub) flush(batch []*hub.Broadcast, buf []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), redisCloseFlush)
	defer cancel()
	for {
		batch = r.fill(batch[:0])
		if len(batch) == 0 {
			return
		}
		if ctx.Err() != nil {
			n := len(batch) + len(r.queue)
			r.dropped(n, "shutting down")
			r.progress.advance(n)
			return
		}
		var err error
		buf, err = r.publishBatch(ctx, batch, buf)
		r.progress.advance(len(batch))
		if err != nil {
			n := len(r.queue)
			r.dropped(n, "shutting down")
			r.progress.advance(n)
			return
		}
	}
}

// publishBatch sends batch as one pipeline, encoding every message into buf (returned for
// reuse). Broadcasts whose PUBLISH failed are counted as dropped.
func (r *PubSub) publishBatch(ctx context.Context, batch []*hub.Broadcast, buf []byte) ([]byte, error) {
	ends := make([]int, len(batch))
	buf = buf[:0]
	var bytes int64
	for i, b := range batch {
		buf = wire.AppendBroadcast(buf, r.node, b)
		ends[i] = len(buf)
		bytes += int64(len(b.Payload))
	}
	r.queueBytes.Add(-bytes)
	pipe := r.client.Pipeline()
	start := 0
	for i, b := range batch {
		r.publish(ctx, pipe, r.channel(b.Topic), buf[start:ends[i]])
		start = ends[i]
	}
	cmds, err := pipe.Exec(ctx)
	failed := 0
	for _, c := range cmds {
		if c.Err() != nil {
			failed++
		}
	}
	if err != nil && len(cmds) == 0 {
		failed = len(batch)
	}
	r.count.published.Add(uint64(len(batch) - failed))
	if failed > 0 {
		r.count.dropped.Add(uint64(failed))
	}
	if cap(buf) > 2*redisMaxBatchBytes {
		buf = nil // a batch of large payloads: do not keep its buffer
	}
	return buf, err
}
