package scripttest

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/luachan/luachan/engine"
	"github.com/luachan/luachan/hub"
)

// recorder is the hub as the engine sees it, noting every broadcast on its way through,
// for t.assert_broadcast: from socket:broadcast, luachan.broadcast, presence and outside.
type recorder struct {
	*hub.Hub

	mu      sync.Mutex // guards the fields below
	sent    []broadcast
	changed chan struct{} // closed and replaced when sent grows
}

var _ engine.Broadcaster = (*recorder)(nil)

// broadcast is a recorded broadcast.
type broadcast struct {
	topic, event string
	payload      []byte
}

func newRecorder(h *hub.Hub) *recorder {
	return &recorder{Hub: h, changed: make(chan struct{})}
}

// Broadcast notes b and delivers it.
func (r *recorder) Broadcast(b *hub.Broadcast) error {
	r.mu.Lock()
	r.sent = append(r.sent, broadcast{topic: b.Topic, event: b.Event, payload: bytes.Clone(b.Payload)})
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return r.Hub.Broadcast(b)
}

// take removes and returns the first broadcast on topic of event whose payload holds want,
// waiting up to assertWait for it; otherwise it lists what topic did get.
func (r *recorder) take(ctx context.Context, topic, event string, want []byte) ([]byte, []frame, bool) {
	deadline := time.NewTimer(assertWait)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		var seen []frame
		for i, b := range r.sent {
			if b.topic != topic {
				continue
			}
			if b.event == event && contains(b.payload, want) {
				r.sent = append(r.sent[:i:i], r.sent[i+1:]...)
				r.mu.Unlock()
				return b.payload, nil, true
			}
			seen = append(seen, frame{topic: b.topic, event: b.event, payload: b.payload})
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return nil, seen, false
		case <-ctx.Done():
			return nil, seen, false
		}
	}
}
