package nats

import (
	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/hub/internal/wire"
)

// The publishing half of PubSub: a bounded queue, and one goroutine handing it in order
// to the connection's buffer, which nats.go's flusher sends.

// Publish queues b for the other nodes and returns at once. It never fails: when the
// queue is full (NATS slow or gone) b is dropped for the other nodes, counted and logged;
// local subscribers have it already.
func (r *PubSub) Publish(b *hub.Broadcast) error {
	if r.closing.Load() {
		r.dropped("shutting down", nil)
		return nil
	}
	n := int64(len(b.Payload))
	if r.queueBytes.Add(n) > r.cfg.QueueBytes {
		r.queueBytes.Add(-n)
		r.dropped("publish queue full", nil)
		return nil
	}
	select {
	case r.queue <- b:
	default:
		r.queueBytes.Add(-n)
		r.dropped("publish queue full", nil)
	}
	return nil
}

// publishLoop hands the queue to the connection in order until Close, then what is
// left in the queue, and returns.
func (r *PubSub) publishLoop() {
	defer r.wg.Done()
	var buf []byte
	for {
		select {
		case b := <-r.queue:
			buf = r.send(b, buf)
		case <-r.stop:
			for {
				select {
				case b := <-r.queue:
					buf = r.send(b, buf)
				default:
					return
				}
			}
		}
	}
}

// send publishes b on its topic's subject, encoding it into buf (returned for reuse:
// nats.go copies what it is given). What NATS refuses (a payload over its max_payload,
// the reconnect buffer full while NATS is away, a subject too long) is counted and logged.
func (r *PubSub) send(b *hub.Broadcast, buf []byte) []byte {
	r.queueBytes.Add(-int64(len(b.Payload)))
	subject := r.subject(b.Topic)
	if len(subject) > natsMaxSubject {
		r.dropped("topic too long for a NATS subject", nil)
		return buf
	}
	buf = wire.AppendBroadcast(buf[:0], r.node, b)
	if err := r.nc.Publish(subject, buf); err != nil {
		r.dropped("NATS refused the broadcast", err)
	} else {
		r.count.published.Add(1)
	}
	if cap(buf) > natsMaxKeptBuf {
		buf = nil // a large payload: do not keep its buffer
	}
	return buf
}

// dropped counts a broadcast lost for the other nodes and logs it, rate-limited.
func (r *PubSub) dropped(why string, err error) {
	r.count.dropped.Add(1)
	if ok, since := r.dropLog.Allow(1); ok {
		r.log.Warn("broadcasts not sent to other nodes", "reason", why, "err", err, "dropped", since)
	}
}

// subject returns topic's NATS subject.
func (r *PubSub) subject(topic string) string { return DefaultSubjectPrefix + escapeToken(topic) }
