package luachan_test

// /metrics: the per-script series, the hub's messages and bytes, and the broker's
// state, read from the real binary's Prometheus text.

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
)

// metricsLua joins any "m:*" topic; handle_in answers "ok", or raises on "boom".
const metricsLua = `
local m = { topic = "m:*" }
function m.join(topic, payload, socket) return true end
function m.handle_in(event, payload, socket)
  if event == "boom" then error("boom") end
  return "ok", {}
end
return m
`

// scrapeMetrics returns /metrics as series (name and labels, as printed) to value,
// comments left out.
func scrapeMetrics(tb testing.TB, s *server) map[string]float64 {
	tb.Helper()
	resp, err := httpClient.Get(s.url("/metrics"))
	if err != nil {
		tb.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		tb.Fatalf("GET /metrics: %d\n%s", resp.StatusCode, body)
	}
	out := map[string]float64{}
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		line := lines.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			tb.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// luachanSeries returns the names of m's luachan_ series.
func luachanSeries(m map[string]float64) []string {
	var out []string
	for k := range m {
		if strings.HasPrefix(k, "luachan_") {
			out = append(out, k)
		}
	}
	return out
}

// TestMetricsBoundedByScripts joins 1,000 distinct topics and pushes on each: the
// per-script series count the calls, and their number does not grow with the topics.
func TestMetricsBoundedByScripts(t *testing.T) {
	t.Parallel()
	const topics = 1000
	s := startServer(t, writeScripts(t, map[string]string{"m.lua": metricsLua}),
		"-max-channels", strconv.Itoa(topics+1), "-max-rate", "0", "-log-level", "info")
	c := s.dial(t, "vsn=2.0.0")
	c.join("m:0", "j0", `{}`, `{}`)
	c.send(`["j0","p0","m:0","hi",{}]`)
	c.expect(`["j0","p0","m:0","phx_reply",{"status":"ok","response":{}}]`)
	c.send(`["j0","b0","m:0","boom",{}]`)
	c.expect(`["j0","j0","m:0","phx_error",{"reason":"channel_crash"}]`)
	before := scrapeMetrics(t, s)

	for i := 1; i < topics; i++ { // m:0 crashed; the 999 others stay joined
		topic, ref := fmt.Sprintf("m:%d", i), fmt.Sprintf("j%d", i)
		c.join(topic, ref, `{}`, `{}`)
		c.send(fmt.Sprintf(`[%q,"p%d",%q,"hi",{}]`, ref, i, topic))
		c.expect(fmt.Sprintf(`[%q,"p%d",%q,"phx_reply",{"status":"ok","response":{}}]`, ref, i, topic))
	}
	after := scrapeMetrics(t, s)

	if b, a := len(luachanSeries(before)), len(luachanSeries(after)); a != b {
		var added []string
		for _, k := range luachanSeries(after) {
			if _, ok := before[k]; !ok {
				added = append(added, k)
			}
		}
		t.Fatalf("luachan_ series: %d after %d topics, %d after one; new: %q", a, topics, b, added)
	}
	for _, k := range luachanSeries(after) {
		if strings.Contains(k, "m:") {
			t.Fatalf("a series is labelled with a topic: %s", k)
		}
	}
	want := map[string]float64{
		`luachan_script_calls_total{callback="join",script="m.lua"}`:                            topics,
		`luachan_script_calls_total{callback="handle_in",script="m.lua"}`:                       topics + 1,
		`luachan_script_errors_total{callback="handle_in",script="m.lua"}`:                      1,
		`luachan_script_errors_total{callback="join",script="m.lua"}`:                           0,
		`luachan_script_duration_seconds_count{callback="handle_in",script="m.lua"}`:            topics + 1,
		`luachan_script_duration_seconds_bucket{callback="handle_in",script="m.lua",le="+Inf"}`: topics + 1,
	}
	for k, v := range want {
		if got, ok := after[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	for _, k := range []string{"luachan_frames_received_total", "luachan_received_bytes_total", "luachan_sent_bytes_total", "luachan_messages_sent_total"} {
		if after[k] <= before[k] {
			t.Errorf("%s did not grow with the traffic: %v, then %v", k, before[k], after[k])
		}
	}
	if after["luachan_sent_bytes_total"] < after["luachan_messages_sent_total"] {
		t.Errorf("luachan_sent_bytes_total %v is below the frames sent, %v", after["luachan_sent_bytes_total"], after["luachan_messages_sent_total"])
	}
}

// metricWithin polls /metrics until name's value satisfies ok, or fails.
func metricWithin(tb testing.TB, s *server, name, want string, ok func(float64) bool) map[string]float64 {
	tb.Helper()
	var last map[string]float64
	err := poll(readTimeout, func() error {
		last = scrapeMetrics(tb, s)
		v, present := last[name]
		if !present || !ok(v) {
			return fmt.Errorf("%s = %v (present %v), want %s", name, v, present, want)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return last
}

// TestMetricsBroker follows the broker's series through a Redis, and a NATS, that dies
// and comes back.
func TestMetricsBroker(t *testing.T) {
	t.Parallel()
	forEachBroker(t, func(t *testing.T, br testBroker) {
		s := startServer(t, writeScripts(t, map[string]string{"m.lua": metricsLua}), "-pubsub", br.url(), "-api-key", apiKey)
		m := metricWithin(t, s, "luachan_broker_connected", "1", func(v float64) bool { return v == 1 })
		zero := []string{"luachan_broker_reconnects_total", "luachan_broker_dropped_total"}
		if _, isRedis := br.(*redisServer); isRedis {
			zero = append(zero, "luachan_broker_publish_queue") // NATS buffers in nats.go: no gauge
		} else if _, ok := m["luachan_broker_publish_queue"]; ok {
			t.Error("luachan_broker_publish_queue with NATS, which has no publish queue of ours")
		}
		for _, k := range zero {
			if v, ok := m[k]; !ok || v != 0 {
				t.Errorf("%s = %v (present %v), want 0 on a fresh node", k, v, ok)
			}
		}
		if code := s.post(t, "/api/broadcast", apiKey, `{"topic":"m:1","event":"e","payload":{}}`); code != 202 {
			t.Fatalf("POST /api/broadcast: %d, want 202", code)
		}
		metricWithin(t, s, "luachan_broker_published_total", "1", func(v float64) bool { return v == 1 })

		br.kill(t)
		metricWithin(t, s, "luachan_broker_connected", "0 with the broker gone", func(v float64) bool { return v == 0 })
		br.start(t)
		metricWithin(t, s, "luachan_broker_connected", "1 with the broker back", func(v float64) bool { return v == 1 })
		metricWithin(t, s, "luachan_broker_reconnects_total", "1", func(v float64) bool { return v == 1 })
	})
}

// TestMetricsWithoutBroker: with -pubsub memory there is no broker, and no broker series
// pretending one is down.
func TestMetricsWithoutBroker(t *testing.T) {
	t.Parallel()
	s := startServer(t, writeScripts(t, map[string]string{"m.lua": metricsLua}))
	m := scrapeMetrics(t, s)
	if _, ok := m["luachan_connections"]; !ok {
		t.Fatal("no luachan_connections in /metrics")
	}
	for k := range m {
		if strings.HasPrefix(k, "luachan_broker_") {
			t.Errorf("series %s without a broker", k)
		}
	}
}
