package luachan_test

// socket:call round trips with the topic's state on another node (issue 16, for
// BENCHMARKS.md):
//
//	go test -run '^$' -bench BenchmarkTopicStateRedisCall -benchtime 5000x .
//
// Two nodes on one Redis. /owner: one client on the node that owns the topic calls
// one call after the other (run there, saved to Redis); /forwarded: likewise on the
// other node (sent to the owner and answered over Redis); /forwarded-1000rps: 100
// clients on the other node, 10 calls a second each, on the one topic. Each reports
// the median and p99 round trip, client to client.

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func BenchmarkTopicStateRedisCall(b *testing.B) {
	nodes := startNodes(b, 2, writeScripts(b, map[string]string{"sh.lua": sharedStateLua}), startRedis(b).url(),
		append([]string{"-log-level", "info", "-max-rate", "0"}, noBudget...)...)
	const topic = "sh:bench"
	clients := []*wsClient{nodes[0].dial(b, "vsn=2.0.0"), nodes[1].dial(b, "vsn=2.0.0")}
	for _, c := range clients {
		c.join(topic, "1", `{}`, `{}`)
	}
	own := owner(b, nodes, topic)
	for _, tc := range []struct {
		name string
		c    *wsClient
	}{{"owner", clients[own]}, {"forwarded", clients[1-own]}} {
		b.Run(tc.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				status, r, err := sharedCall(tc.c.conn, topic, fmt.Sprint(i), "add", `{"c":"b","s":1}`)
				if err != nil || status != "ok" {
					b.Fatalf("add: %s %v %v", status, r, err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			reportLatency(b, lat)
		})
	}
	b.Run("forwarded-1000rps", func(b *testing.B) {
		const clients, every = 100, 100 * time.Millisecond
		cs := make([]*wsClient, clients)
		for i := range cs {
			cs[i] = nodes[1-own].dial(b, "vsn=2.0.0")
			cs[i].join(topic, "1", `{}`, `{}`)
		}
		var mu sync.Mutex
		lat := make([]time.Duration, 0, b.N)
		var wg sync.WaitGroup
		b.ResetTimer()
		for i, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(every * time.Duration(i) / clients) // spread the clients over the period
				tick := time.NewTicker(every)
				defer tick.Stop()
				for j := i; j < b.N; j += clients {
					<-tick.C
					start := time.Now()
					status, r, err := sharedCall(c.conn, topic, fmt.Sprint(j), "add", `{"c":"b","s":1}`)
					if err != nil || status != "ok" {
						b.Errorf("add: %s %v %v", status, r, err)
						return
					}
					mu.Lock()
					lat = append(lat, time.Since(start))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		reportLatency(b, lat)
	})
}

// reportLatency reports the median and p99 of lat.
func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
}

// BenchmarkTopicStateCall is the same round trip on one node, without Redis, for
// comparison: one client calling one call after the other.
//
//	go test -run '^$' -bench 'BenchmarkTopicStateCall$' -benchtime 10000x .
func BenchmarkTopicStateCall(b *testing.B) {
	s := startServer(b, writeScripts(b, map[string]string{"sh.lua": sharedStateLua}),
		append([]string{"-log-level", "info", "-max-rate", "0"}, noBudget...)...)
	const topic = "sh:one"
	c := s.dial(b, "vsn=2.0.0")
	c.join(topic, "1", `{}`, `{}`)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		status, r, err := sharedCall(c.conn, topic, fmt.Sprint(i), "add", `{"c":"b","s":1}`)
		if err != nil || status != "ok" {
			b.Fatalf("add: %s %v %v", status, r, err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}
