package main

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/hub/nats"
	"github.com/luachan/luachan/hub/redis"
	"github.com/luachan/luachan/luabind"
	"github.com/luachan/luachan/presence"
)

// broker is what the node needs of a -pubsub other than memory: the hub's PubSub,
// luachan.store and presence across the nodes, and a lifecycle.
type broker interface {
	hub.PubSub
	// Start starts delivering the other nodes' broadcasts to d.
	Start(ctx context.Context, d *remoteDeliverer)
	Store() luabind.Store
	// Presence returns the replica, not started; broadcast carries dead nodes' leaves.
	Presence(ttl time.Duration, broadcast func(*hub.Broadcast) error) replica
	Close(ctx context.Context) error
	brokerStats() brokerStats
}

// replica is a broker's presence: presence.Replica with a lifecycle.
type replica interface {
	presence.Replica
	Start(ctx context.Context)
	Close(ctx context.Context) error
}

// dialBroker connects to the broker of a -pubsub URL, by its scheme; nil for memory. An
// unreachable broker is a usage error: the node would silently serve alone.
func dialBroker(ctx context.Context, pubsub string, log *slog.Logger) (broker, error) {
	if pubsub == "memory" {
		return nil, nil
	}
	switch brokerScheme(pubsub) {
	case "nats", "tls":
		ps, err := nats.Dial(ctx, nats.Config{URL: pubsub, Logger: log})
		if err != nil {
			return nil, usagef("luachan: -pubsub%s: %s", redactURL(pubsub), strings.TrimPrefix(err.Error(), "nats: "))
		}
		return natsBroker{ps}, nil
	default:
		ps, err := dialPubSub(ctx, pubsub, log)
		if err != nil {
			return nil, err
		}
		return redisBroker{ps}, nil
	}
}

// checkBroker reports whether a -pubsub URL is one dialBroker takes.
func checkBroker(pubsub string) error {
	switch brokerScheme(pubsub) {
	case "nats", "tls":
		if err := nats.CheckURL(pubsub); err != nil {
			return usagef("luachan: -pubsub%s: %s; want nats://host:port (tls:// for TLS)",
				redactURL(pubsub), strings.TrimPrefix(err.Error(), "nats: "))
		}
		return nil
	}
	if err := redis.CheckURL(pubsub); err != nil {
		return usagef("luachan: -pubsub%s: %s; want memory, redis://[user:password@]host:port/db (rediss:// for TLS), redis+cluster://host:port,..., redis+sentinel://mastername@host:port,.../db or nats://host:port",
			redactURL(pubsub), strings.TrimPrefix(err.Error(), "redis: "))
	}
	return nil
}

// brokerScheme is the URL's scheme, "" when it has none.
func brokerScheme(s string) string {
	u, err := url.Parse(strings.SplitN(s, ",", 2)[0])
	if err != nil {
		return ""
	}
	return u.Scheme
}

var (
	_ broker  = redisBroker{}
	_ broker  = natsBroker{}
	_ replica = (*redis.Presence)(nil)
	_ replica = (*nats.Presence)(nil)
)

// redisBroker is a broker on Redis.
type redisBroker struct{ *redis.PubSub }

func (b redisBroker) Start(ctx context.Context, d *remoteDeliverer) { b.PubSub.Start(ctx, d) }
func (b redisBroker) Store() luabind.Store                          { return b.PubSub.Store() }
func (b redisBroker) Presence(ttl time.Duration, broadcast func(*hub.Broadcast) error) replica {
	return b.PubSub.Presence(ttl, broadcast)
}

func (b redisBroker) brokerStats() brokerStats {
	s := b.Stats()
	return brokerStats{Connected: s.Connected, Reconnects: s.Reconnects, Published: s.Published,
		Dropped: s.Dropped, Received: s.Received, Queued: s.Queued, HasQueue: true}
}

// natsBroker is a broker on NATS.
type natsBroker struct{ *nats.PubSub }

func (b natsBroker) Start(ctx context.Context, d *remoteDeliverer) { b.PubSub.Start(ctx, d) }
func (b natsBroker) Store() luabind.Store                          { return b.PubSub.Store() }
func (b natsBroker) Presence(ttl time.Duration, broadcast func(*hub.Broadcast) error) replica {
	return b.PubSub.Presence(ttl, broadcast)
}

func (b natsBroker) brokerStats() brokerStats {
	s := b.Stats()
	return brokerStats{Connected: s.Connected, Reconnects: s.Reconnects, Published: s.Published,
		Dropped: s.Dropped, Received: s.Received}
}
