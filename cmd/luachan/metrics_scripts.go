package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/luachan/luachan/engine"
	"github.com/luachan/luachan/luabind"
)

// The per-script series: labelled by script file name and callback only, never by topic
// or socket, so their number grows with the files in the folder, not with the traffic.
var (
	scriptCallsDesc = prometheus.NewDesc("luachan_script_calls_total",
		"Callbacks run, by script file and callback.", []string{"script", "callback"}, nil)
	scriptErrorsDesc = prometheus.NewDesc("luachan_script_errors_total",
		"Callbacks that raised an error, ran out of time or returned a value they may not.", []string{"script", "callback"}, nil)
	scriptDurationDesc = prometheus.NewDesc("luachan_script_duration_seconds",
		"How long callbacks ran, by script file and callback.", []string{"script", "callback"}, nil)
	scriptReloadsDesc = prometheus.NewDesc("luachan_script_file_reloads_total",
		"Versions of a script file loaded after the first.", []string{"script"}, nil)
	scriptLoadErrorsDesc = prometheus.NewDesc("luachan_script_file_load_errors_total",
		"Versions of a script file that failed to load or route.", []string{"script"}, nil)
)

// durationBounds are luabind.DurationBuckets in seconds.
var durationBounds = func() []float64 {
	b := make([]float64, len(luabind.DurationBuckets))
	for i, d := range luabind.DurationBuckets {
		b[i] = d.Seconds()
	}
	return b
}()

// scriptsCollector turns engine.ScriptMetrics into series at scrape time.
type scriptsCollector struct{ e *engine.Engine }

func (c scriptsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{scriptCallsDesc, scriptErrorsDesc, scriptDurationDesc, scriptReloadsDesc, scriptLoadErrorsDesc} {
		ch <- d
	}
}

func (c scriptsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.e.ScriptMetrics() {
		ch <- prometheus.MustNewConstMetric(scriptReloadsDesc, prometheus.CounterValue, float64(m.Reloads), m.Script)
		ch <- prometheus.MustNewConstMetric(scriptLoadErrorsDesc, prometheus.CounterValue, float64(m.LoadErrors), m.Script)
		for _, cb := range m.Calls {
			if cb.Calls == 0 {
				continue // a callback never run, or not defined: no series
			}
			ch <- prometheus.MustNewConstMetric(scriptCallsDesc, prometheus.CounterValue, float64(cb.Calls), m.Script, cb.Callback)
			ch <- prometheus.MustNewConstMetric(scriptErrorsDesc, prometheus.CounterValue, float64(cb.Errors), m.Script, cb.Callback)
			buckets := make(map[float64]uint64, len(durationBounds))
			var cum, count uint64
			for i, n := range cb.Buckets {
				count += n
				if i < len(durationBounds) {
					cum += n
					buckets[durationBounds[i]] = cum
				}
			}
			ch <- prometheus.MustNewConstHistogram(scriptDurationDesc, count, cb.Sum.Seconds(), buckets, m.Script, cb.Callback)
		}
	}
}

// The broker's series, with -pubsub redis:// only.
var (
	brokerConnectedDesc = prometheus.NewDesc("luachan_broker_connected",
		"1 while the subscriber connection to the broker is up and subscribed, else 0.", nil, nil)
	brokerReconnectsDesc = prometheus.NewDesc("luachan_broker_reconnects_total",
		"Times the subscriber connection came back after a loss.", nil, nil)
	brokerQueuedDesc = prometheus.NewDesc("luachan_broker_publish_queue",
		"Broadcasts waiting in the publish queue.", nil, nil)
	brokerPublishedDesc = prometheus.NewDesc("luachan_broker_published_total",
		"Broadcasts published to the broker.", nil, nil)
	brokerDroppedDesc = prometheus.NewDesc("luachan_broker_dropped_total",
		"Broadcasts the other nodes did not get: publish queue full, or the broker failed.", nil, nil)
	brokerReceivedDesc = prometheus.NewDesc("luachan_broker_received_total",
		"Broadcasts from other nodes delivered here.", nil, nil)
)

// brokerStats is what /metrics shows of a broker, Redis or NATS.
type brokerStats struct {
	Connected                      bool
	Reconnects, Published, Dropped uint64
	Received                       uint64
	Queued                         int  // broadcasts waiting to be published
	HasQueue                       bool // Queued means something (NATS keeps its own buffer)
}

// brokerCollector reads the broker's stats at scrape time.
type brokerCollector struct{ b broker }

func (c brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{brokerConnectedDesc, brokerReconnectsDesc, brokerQueuedDesc, brokerPublishedDesc, brokerDroppedDesc, brokerReceivedDesc} {
		ch <- d
	}
}

func (c brokerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.b.brokerStats()
	up := 0.0
	if s.Connected {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(brokerConnectedDesc, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(brokerReconnectsDesc, prometheus.CounterValue, float64(s.Reconnects))
	if s.HasQueue {
		ch <- prometheus.MustNewConstMetric(brokerQueuedDesc, prometheus.GaugeValue, float64(s.Queued))
	}
	ch <- prometheus.MustNewConstMetric(brokerPublishedDesc, prometheus.CounterValue, float64(s.Published))
	ch <- prometheus.MustNewConstMetric(brokerDroppedDesc, prometheus.CounterValue, float64(s.Dropped))
	ch <- prometheus.MustNewConstMetric(brokerReceivedDesc, prometheus.CounterValue, float64(s.Received))
}
