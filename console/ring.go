package console

import (
	"sync"
	"time"

	"github.com/luachan/luachan/hub"
)

// sampled is one broadcast seen on an opened topic, as the page shows it.
type sampled struct {
	At      int64  `json:"t"` // unix milliseconds
	Event   string `json:"event"`
	Payload any    `json:"payload"` // JSON with secrets masked, or a description
	Binary  int    `json:"binary,omitempty"`
	Cut     bool   `json:"cut,omitempty"` // the payload was longer than maxSampled
	raw     []byte // up to maxSampled bytes of the payload, decoded when shown
}

// ring keeps the last ringLen broadcasts on one topic. Its add runs on the
// broadcasting goroutine (hub.Hub.Tap), so it only copies.
type ring struct {
	mu    sync.Mutex // guards the fields below
	items [ringLen]sampled
	next  int // where the next one goes
	n     int // how many are held
}

// add copies what the page needs of b.
func (r *ring) add(b *hub.Broadcast) {
	s := sampled{At: time.Now().UnixMilli(), Event: b.Event}
	if b.Binary {
		s.Binary = len(b.Payload)
	} else {
		p := b.Payload
		if len(p) > maxSampled {
			p, s.Cut = p[:maxSampled], true
		}
		s.raw = append([]byte(nil), p...)
	}
	r.mu.Lock()
	r.items[r.next] = s
	r.next = (r.next + 1) % ringLen
	r.n = min(r.n+1, ringLen)
	r.mu.Unlock()
}

// list returns the broadcasts held, newest first, payloads decoded and masked.
func (r *ring) list() []sampled {
	r.mu.Lock()
	out := make([]sampled, 0, r.n)
	for i := 1; i <= r.n; i++ {
		out = append(out, r.items[(r.next-i+ringLen)%ringLen])
	}
	r.mu.Unlock()
	for i := range out {
		s := &out[i]
		switch {
		case s.Binary > 0 || s.raw == nil:
			s.Payload = "(binary)"
		case s.Cut:
			s.Payload = "(over 2 KiB, not shown)"
		default:
			s.Payload = maskedJSON(s.raw)
		}
	}
	return out
}
