package luachan_test

// Hot reload measured against the real binary (issue 3, for BENCHMARKS.md):
//
//	go test -run '^$' -bench BenchmarkReloadSaveToServed -benchtime 200x .
//	go test -run '^$' -bench BenchmarkReloadReplyLatency -benchtime 50000x .
//
// BenchmarkReloadSaveToServed: the time from a save (a temp file renamed over the
// script) to the first event answered by the new code, per save.
// BenchmarkReloadReplyLatency: push round trips of many paced clients, with no reloads
// and with the script rewritten back to back the whole time.
//
// Clients stay under the server's per-connection message rate limit (100 a second
// sustained), as real ones do: the limit closes a client that floods.

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// percentile returns the p-th percentile (0 < p <= 100) of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func BenchmarkReloadSaveToServed(b *testing.B) {
	// pollers take turns asking, one event a millisecond in all, so the new version
	// is seen within about a millisecond while each connection sends 50 a second
	const pollers = 20
	dir := writeScripts(b, map[string]string{"reload.lua": counterLua("reload:*", 1)})
	path := filepath.Join(dir, "reload.lua")
	s := startServer(b, dir, append([]string{"-log-level", "info"}, noBudget...)...)
	ks := make([]*counter, pollers)
	for i := range ks {
		ks[i] = joinCounter(b, s.dial(b, "vsn=2.0.0"), "reload:a", "1", 1)
		ks[i].expectVersion(b, 1)
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		v := i + 2
		saveRenameOver(b, path, counterLua("reload:*", v))
		saved := time.Now()
		for j := 0; ks[j%pollers].next(b) != v; j++ {
			if time.Since(saved) > 5*time.Second {
				b.Fatalf("version %d not served 5 s after its save", v)
			}
			<-tick.C
		}
		lat = append(lat, time.Since(saved))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(0, "ns/op") // the wall time per save is p50-ms; ns/op would only repeat it
}

func BenchmarkReloadReplyLatency(b *testing.B) {
	const (
		clients   = 100
		pushEvery = 20 * time.Millisecond // per client: 5,000 pushes a second in all
	)
	for _, reloading := range []bool{false, true} {
		name := "reloads=off"
		if reloading {
			name = "reloads=on"
		}
		b.Run(name, func(b *testing.B) {
			dir := writeScripts(b, map[string]string{"reload.lua": counterLua("reload:*", 1)})
			path := filepath.Join(dir, "reload.lua")
			s := startServer(b, dir, append([]string{"-log-level", "info"}, noBudget...)...)
			conns := make([]*websocket.Conn, clients)
			for i := range conns {
				c := s.dial(b, "vsn=2.0.0")
				c.join("reload:b", "1", `{}`, `{"version":1}`)
				conns[i] = c.conn
			}

			var (
				left    atomic.Int64 // pushes still to send, over all clients
				mu      sync.Mutex   // guards all and errs
				all     []time.Duration
				firsts  []time.Duration // first replies from each new version
				errs    []error
				wg      sync.WaitGroup
				reloads int
			)
			left.Store(int64(b.N))
			stop := make(chan struct{})
			reloaderDone := make(chan struct{})
			b.ResetTimer()
			start := time.Now()
			if reloading {
				// rewrite the script back to back: each save as soon as the last one serves
				go func() {
					defer close(reloaderDone)
					for v := 2; ; v++ {
						select {
						case <-stop:
							return
						default:
						}
						want := v - 1
						err := renameOver(path, counterLua("reload:*", v))
						if err == nil {
							err = poll(5*time.Second, func() error {
								if n := s.log.count(logReloaded); n < want {
									return fmt.Errorf("%d reloads logged, want %d", n, want)
								}
								return nil
							})
						}
						if err != nil {
							mu.Lock()
							errs = append(errs, err)
							mu.Unlock()
							return
						}
						reloads = want
					}
				}()
			} else {
				close(reloaderDone)
			}
			for i, conn := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// spread the clients over the interval, so pushes arrive evenly
					// rather than a hundred at a time
					<-time.After(pushEvery * time.Duration(i) / clients)
					rtts, first, err := roundTrips(conn, "reload:b", pushEvery, &left)
					mu.Lock()
					all = append(all, rtts...)
					firsts = append(firsts, first...)
					if err != nil {
						errs = append(errs, err)
					}
					mu.Unlock()
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			close(stop)
			<-reloaderDone
			b.StopTimer()
			if len(errs) > 0 {
				b.Fatal(errs)
			}
			slices.Sort(all)
			b.ReportMetric(float64(percentile(all, 50).Microseconds()), "p50-µs")
			b.ReportMetric(float64(percentile(all, 99).Microseconds()), "p99-µs")
			b.ReportMetric(float64(percentile(all, 99.9).Microseconds()), "p99.9-µs")
			if reloading && len(firsts) > 0 {
				slices.Sort(firsts)
				b.ReportMetric(float64(percentile(firsts, 50).Microseconds()), "first-new-p50-µs")
				b.ReportMetric(float64(percentile(firsts, 99).Microseconds()), "first-new-p99-µs")
			}
			b.ReportMetric(float64(all[len(all)-1].Microseconds()), "max-µs")
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "replies/s")
			b.ReportMetric(float64(reloads)/elapsed.Seconds(), "reloads/s")
		})
	}
}

// roundTrips pushes "tick" on topic, one at a time and at most one every interval,
// while left stays positive, and returns each round trip. Every reply must be an ok
// reply to its ref.
// It also returns the round trips of the first reply from each new version of the
// script, which may have to build the new version's VM.
func roundTrips(conn *websocket.Conn, topic string, interval time.Duration, left *atomic.Int64) (rtts, firsts []time.Duration, err error) {
	version := int64(1)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for ref := 1; left.Add(-1) >= 0; ref++ {
		<-tick.C
		msg := fmt.Sprintf(`["1","%d",%q,"tick",{}]`, ref, topic)
		sent := time.Now()
		_ = conn.SetWriteDeadline(sent.Add(writeTimeout))
		if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			return rtts, firsts, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
		_, data, err := conn.ReadMessage()
		if err != nil {
			return rtts, firsts, fmt.Errorf("reply to push %d: %w", ref, err)
		}
		rtt := time.Since(sent)
		rtts = append(rtts, rtt)
		var f []any
		if err := decodeJSON(data, &f); err != nil || len(f) != 5 || f[1] != fmt.Sprint(ref) {
			return rtts, firsts, fmt.Errorf("got %s, want the reply to push %d", data, ref)
		}
		r, _ := f[4].(map[string]any)
		resp, _ := r["response"].(map[string]any)
		v, err := asInt(resp["version"])
		if r["status"] != "ok" || err != nil {
			return rtts, firsts, fmt.Errorf("got %s, want an ok reply with a version", data)
		}
		if v != version {
			version = v
			firsts = append(firsts, rtt)
		}
	}
	return rtts, firsts, nil
}
