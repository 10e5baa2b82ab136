package redis

import (
	"context"
	"strconv"
	"strings"

	"github.com/luachan/luachan/history"
)

// A node's subscriber connection can be lost and come back (see subscribeLoop): the
// history broadcasts appended meanwhile never reached the node. The reader sees the
// gap in the positions of the next one that arrives, and delivers the missing ones from
// the topic's stream first, so that this node's subscribers still get every position
// once, in order.

// historyMaxFill is the most broadcasts one gap fill delivers.
const historyMaxFill = 10000

// historySeen is the reader goroutine's own record of the last position delivered per
// topic subscribed to (a topic unsubscribed from is forgotten: forgetSeen).
type historySeen struct {
	last   map[string]history.Position
	filled uint64 // broadcasts delivered from the stream
}

// checkGap delivers the broadcasts of topic between the last one this node delivered
// and pos, when some are missing, from the stream. Reader goroutine only.
func (r *PubSub) checkGap(topic string, pos history.Position) {
	seen := &r.histSeen
	if seen.last == nil {
		seen.last = make(map[string]history.Position)
	}
	last, ok := seen.last[topic]
	seen.last[topic] = pos
	if !ok || last.Epoch != pos.Epoch || pos.N <= last.N+1 {
		return
	}
	missing := pos.N - last.N - 1
	from, to := last.N+1, pos.N-1
	if missing > historyMaxFill {
		from = to - historyMaxFill + 1
	}
	ctx, cancel := context.WithTimeout(r.ctx, redisIOTimeout)
	defer cancel()
	base := r.cfg.Prefix + "h:{" + topic + "}:"
	list, err := r.client.XRangeN(ctx, base+"s", strconv.FormatUint(from, 10)+"-0", strconv.FormatUint(to, 10)+"-0", int64(historyMaxFill)).Result()
	filled := uint64(0)
	for _, m := range list {
		head, _ := m.Values["h"].(string)
		payload, _ := m.Values["p"].(string)
		n, perr := strconv.ParseUint(strings.TrimSuffix(m.ID, "-0"), 10, 64)
		b, node, sender, rest, herr := parseHistoryHead(head)
		if perr != nil || herr != nil || rest != "" {
			continue
		}
		b.Topic, b.Payload = topic, []byte(payload)
		b.Ref = history.Position{Epoch: pos.Epoch, N: n}.String()
		if node == r.node {
			b.From = sender
		}
		r.deliver(b)
		filled++
	}
	seen.filled += filled
	if filled < missing {
		r.log.Warn("history broadcasts missed while the subscription was down, and no longer kept",
			"topic", topic, "missed", missing-filled, "err", err)
	} else {
		r.log.Info("history broadcasts missed while the subscription was down delivered from the stream",
			"topic", topic, "delivered", filled)
	}
}

// forgetSeen forgets the last position of the topic of channel, once unsubscribed
// from it: broadcasts appended meanwhile are no gap. Reader goroutine only.
func (r *PubSub) forgetSeen(channel string) {
	if topic, ok := r.topicOf(channel); ok {
		delete(r.histSeen.last, topic)
	}
}
