package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/luachan/luachan/engine"
	"github.com/luachan/luachan/hub"
)

// metricsHandler serves /metrics. The hub and the engine keep plain atomic
// counters; this collector reads them only when scraped, so the fast path
// pays nothing for Prometheus.
func metricsHandler(h *hub.Hub, e *engine.Engine, b broker) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		statsCollector{h: h, e: e},
		scriptsCollector{e: e},
	)
	if b != nil {
		reg.MustRegister(brokerCollector{b: b})
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// statsCollector turns hub.Stats and engine.Stats into metrics at scrape time.
type statsCollector struct {
	h *hub.Hub
	e *engine.Engine
}

type metric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(hub.Stats, engine.Stats) float64
}

func newMetric(name, help string, kind prometheus.ValueType, value func(hub.Stats, engine.Stats) float64) metric {
	return metric{prometheus.NewDesc("luachan_"+name, help, nil, nil), kind, value}
}

var metrics = []metric{
	newMetric("connections", "Open WebSocket connections.", prometheus.GaugeValue,
		func(h hub.Stats, _ engine.Stats) float64 { return float64(h.Conns) }),
	newMetric("topics", "Topics with at least one local subscriber.", prometheus.GaugeValue,
		func(h hub.Stats, _ engine.Stats) float64 { return float64(h.Topics) }),
	newMetric("subscriptions", "Local topic subscriptions.", prometheus.GaugeValue,
		func(h hub.Stats, _ engine.Stats) float64 { return float64(h.Subscriptions) }),
	newMetric("connections_accepted_total", "WebSocket connections upgraded.", prometheus.CounterValue,
		func(h hub.Stats, _ engine.Stats) float64 { return float64(h.Accepted) }),
	newMetric("frames_received_total", "Valid client frames read, heartbeats included.", prometheus.CounterValue,
		func(h hub.Stats, _ engine.Stats) float64 { return float64(h.FramesIn) }),
	newMetric("messages_sent_total", "Frames queued to clients: broadcasts by the fast lane, replies, pushes, intercepted broadcasts.", prometheus.CounterValue,
		func(h hub.Stats, _ engine.Stats) float64 { return float64(h.Delivered + h.Sent) }),
	newMetric("received_bytes_total", "Payload bytes of the valid WebSocket frames read.", prometheus.CounterValue,
		func(h hub.Stats, _ engine.Stats) float64 { return float64(h.BytesIn) }),
	newMetric("sent_bytes_total", "Bytes of the frames queued to WebSocket clients, headers included.", prometheus.CounterValue,
		func(h hub.Stats, _ engine.Stats) float64 { return float64(h.BytesOut) }),
	newMetric("slow_consumer_closes_total", "Connections closed because their send queue went over -max-queue.", prometheus.CounterValue,
		func(h hub.Stats, _ engine.Stats) float64 { return float64(h.SlowClosed) }),
	newMetric("broadcasts_total", "Broadcasts delivered to local subscribers.", prometheus.CounterValue,
		func(h hub.Stats, _ engine.Stats) float64 { return float64(h.Broadcasts) }),
	newMetric("longpoll_sessions_total", "LongPoll sessions opened.", prometheus.CounterValue,
		func(h hub.Stats, _ engine.Stats) float64 { return float64(h.LongPolls) }),
	newMetric("longpoll_sessions_refused_total", "LongPoll sessions refused over the per-address or total session limit.", prometheus.CounterValue,
		func(h hub.Stats, _ engine.Stats) float64 { return float64(h.PollsRefused) }),
	newMetric("scripts", "Channel scripts routing topics.", prometheus.GaugeValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.Scripts) }),
	newMetric("channels", "Channels joined.", prometheus.GaugeValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.Channels) }),
	newMetric("joins_total", "Joins accepted.", prometheus.CounterValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.Joins) }),
	newMetric("joins_refused_total", "Joins refused by a script or by the channel limit.", prometheus.CounterValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.JoinsRefused) }),
	newMetric("joins_crashed_total", "Joins whose script raised an error or ran out of time.", prometheus.CounterValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.JoinsCrashed) }),
	newMetric("channel_crashes_total", "Channels ended by a script error (phx_error).", prometheus.CounterValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.Crashes) }),
	newMetric("unmatched_total", "Joins and events answered \"unmatched topic\".", prometheus.CounterValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.Unmatched) }),
	newMetric("stale_dropped_total", "Events for an earlier join of a topic, dropped.", prometheus.CounterValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.Stale) }),
	newMetric("no_handle_in_total", "Events answered \"no handle_in\": their script defines none.", prometheus.CounterValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.NoHandleIn) }),
	newMetric("no_handle_info_dropped_total", "socket:after messages dropped: their script defines no handle_info.", prometheus.CounterValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.NoHandleInfo) }),
	newMetric("channel_overflows_total", "Sockets closed because a channel's events piled up.", prometheus.CounterValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.Overflows) }),
	newMetric("connects_refused_total", "Sockets socket.lua's connect refused (HTTP 403).", prometheus.CounterValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.ConnectsRefused) }),
	newMetric("connect_errors_total", "Sockets refused because connect raised an error or ran out of time.", prometheus.CounterValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.ConnectErrors) }),
	newMetric("topic_states", "Topics whose state (handle_call, handle_tick) this node keeps.", prometheus.GaugeValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.TopicStates) }),
	newMetric("topic_states_owned", "Topic states whose lease this node holds (with Redis; 0 otherwise).", prometheus.GaugeValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.TopicsOwned) }),
	newMetric("calls_total", "socket:call calls made on this node.", prometheus.CounterValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.Calls) }),
	newMetric("call_errors_total", "socket:call calls answered with an error (handle_call failed, timed out, not saved).", prometheus.CounterValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.CallErrors) }),
	newMetric("calls_forwarded_total", "socket:call calls sent to the topic's owner on another node, each try.", prometheus.CounterValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.CallsForwarded) }),
	newMetric("topic_state_save_failures_total", "Topic states not saved to Redis (Redis failed, or the lease was gone): the change not applied.", prometheus.CounterValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.SaveFailures) }),
	newMetric("script_reloads_total", "Script versions loaded after the first.", prometheus.CounterValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.Reloads) }),
	newMetric("script_load_errors_total", "Script versions that failed to load.", prometheus.CounterValue,
		func(_ hub.Stats, e engine.Stats) float64 { return float64(e.LoadErrors) }),
}

// closedDesc counts ended connections by why they ended: peer, idle, slow,
// rate_limit, bad_frame, protocol, too_big, disconnect, shutdown, ...
var closedDesc = prometheus.NewDesc("luachan_connections_closed_total",
	"Connections ended, by reason.", []string{"reason"}, nil)

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range metrics {
		ch <- m.desc
	}
	ch <- closedDesc
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	hs, es := c.h.Stats(), c.e.Stats()
	for _, m := range metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(hs, es))
	}
	for _, reason := range hub.CloseReasons() {
		ch <- prometheus.MustNewConstMetric(closedDesc, prometheus.CounterValue, float64(hs.Closed[reason]), reason)
	}
}
