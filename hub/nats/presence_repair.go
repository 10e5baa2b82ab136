package nats

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/luachan/luachan/presence"
)

// Presence's repairs, run by its heartbeat and janitor goroutine: writing this node's
// entries again after a lapse (resync), and removing a dead node's (sweep, reap).

// resync makes the bucket hold exactly this node's entries, after a write failed or the
// heartbeat lapsed (the other nodes may have removed them): it writes the missing ones
// and broadcasts them as joins, and removes those this node no longer has and broadcasts
// their leaves, since the other nodes' clients may have missed either.
func (p *Presence) resync() error {
	ctx, cancel := context.WithTimeout(p.ctx, presenceReapTimeout)
	defer cancel()
	if _, err := p.kv.Put(ctx, p.nodeKey(p.node), []byte("1")); err != nil {
		return err
	}
	stored, err := p.entries(ctx, "t."+p.node+".>")
	if err != nil {
		return err
	}
	joins, leaves := make(map[string]presence.State), make(map[string]presence.State)
	diff := func(m map[string]presence.State, topic string, e presence.Entry) {
		if m[topic] == nil {
			m[topic] = make(presence.State)
		}
		m[topic][e.Key] = append(m[topic][e.Key], e.Meta)
	}
	// Entries in the bucket this node no longer has. A Put adds to mine before it
	// writes, so one not in mine now is gone for good.
	names := sortedKeys(stored)
	for _, k := range names {
		topic, ref, ok := p.parseEntryKey(k)
		if !ok {
			continue
		}
		if _, ok := p.has(topic, ref); ok {
			continue
		}
		if err := p.kv.Delete(ctx, k, jetstream.LastRevision(stored[k].Revision())); err != nil {
			if isWrongSequence(err) {
				continue // written or removed meanwhile
			}
			return err
		}
		var e presence.Entry
		if json.Unmarshal(stored[k].Value(), &e) == nil && len(e.Meta) > 0 {
			diff(leaves, topic, e)
		}
	}
	// Entries this node has that the bucket lacks.
	type want struct{ topic, ref string }
	var missing []want
	p.mu.Lock()
	for topic, es := range p.mine {
		for ref := range es {
			if _, ok := stored[p.entryKey(p.node, topic, ref)]; !ok {
				missing = append(missing, want{topic, ref})
			}
		}
	}
	p.mu.Unlock()
	sort.Slice(missing, func(i, j int) bool {
		return missing[i].topic < missing[j].topic || missing[i].topic == missing[j].topic && missing[i].ref < missing[j].ref
	})
	for _, w := range missing {
		e, ok := p.has(w.topic, w.ref)
		if !ok {
			continue
		}
		added, err := p.write(ctx, w.topic, w.ref, e, true)
		if err != nil {
			return err
		}
		if _, still := p.has(w.topic, w.ref); !still {
			// Del ran meanwhile, perhaps before the write: remove it again.
			if err := p.kv.Delete(ctx, p.entryKey(p.node, w.topic, w.ref)); err != nil {
				return err
			}
			continue
		}
		if added {
			diff(joins, w.topic, e)
		}
	}
	topics := make(map[string]struct{})
	for t := range joins {
		topics[t] = struct{}{}
	}
	for t := range leaves {
		topics[t] = struct{}{}
	}
	for _, t := range sortedKeys(topics) {
		p.send(t, presence.EncodeDiff(joins[t], leaves[t]))
	}
	return nil
}

// sweep cleans up after every node whose heartbeat is gone.
func (p *Presence) sweep() {
	if p.nodesKV == nil {
		return
	}
	ctx, cancel := p.opCtx()
	nodes, err := p.keys(ctx, "n.*")
	cancel()
	if err != nil {
		if p.ctx.Err() == nil {
			p.log.Debug("presence sweep failed", "err", err)
		}
		return
	}
	for _, k := range nodes {
		n := strings.TrimPrefix(k, "n.")
		if n == p.node || p.ctx.Err() != nil {
			continue
		}
		if err := p.reap(n); err != nil && p.ctx.Err() == nil {
			p.log.Warn("presence cleanup of a dead node failed", "node", n, "err", err)
		}
	}
}

// alive reports whether node n's heartbeat exists.
func (p *Presence) alive(ctx context.Context, n string) (bool, error) {
	_, err := p.nodesKV.Get(ctx, n)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// reap removes node n's entries, broadcasting their leaves, if n's heartbeat is gone.
// Each delete is conditional on the revision read, so that of several survivors reaping
// at once, one removes each entry and broadcasts its leave.
func (p *Presence) reap(n string) error {
	ctx, cancel := context.WithTimeout(p.ctx, presenceReapTimeout)
	defer cancel()
	if ok, err := p.alive(ctx, n); err != nil || ok {
		return err
	}
	stored, err := p.entries(ctx, "t."+n+".>")
	if err != nil {
		return err
	}
	leaves := make(map[string]presence.State)
	removed := 0
	for _, k := range sortedKeys(stored) {
		if ok, err := p.alive(ctx, n); err != nil || ok {
			return err // the node is back: it keeps the rest
		}
		err := p.kv.Delete(ctx, k, jetstream.LastRevision(stored[k].Revision()))
		if isWrongSequence(err) {
			continue // another survivor (or the node itself) got there first
		}
		if err != nil {
			return err
		}
		removed++
		topic, _, ok := p.parseEntryKey(k)
		var e presence.Entry
		if ok && json.Unmarshal(stored[k].Value(), &e) == nil && len(e.Meta) > 0 {
			if leaves[topic] == nil {
				leaves[topic] = make(presence.State)
			}
			leaves[topic][e.Key] = append(leaves[topic][e.Key], e.Meta)
		}
	}
	for _, topic := range sortedKeys(leaves) {
		p.send(topic, presence.EncodeDiff(nil, leaves[topic]))
	}
	if ok, err := p.alive(ctx, n); err != nil || ok {
		return err
	}
	if err := p.kv.Delete(ctx, p.nodeKey(n)); err != nil {
		return err
	}
	if removed > 0 {
		p.log.Info("removed the presence entries of a node that is gone", "node", n, "entries", removed, "topics", len(leaves))
	}
	return nil
}
