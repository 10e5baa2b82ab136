// Package console serves luachan's dev console: a page at /console that shows, live,
// the scripts (loaded or failed, warnings, channels, callback rates), the topics with
// their subscribers, presence and last broadcasts, the traffic as charts, and a
// playground that speaks the Phoenix protocol to /socket/websocket like any client.
//
// The page is plain HTML, CSS and JavaScript modules embedded in the binary (static/),
// with no build step and nothing loaded from another host. Its data comes from one
// server-sent-event stream of snapshots (GET /console/api/stream) and the same snapshot
// once (GET /console/api/snapshot).
//
// The console reads the hub's and the engine's atomic counters, twice a second per
// open page; the only thing it adds to the delivery path is a tap on the one topic a
// page has opened (hub.Hub.Tap), which keeps the last broadcasts on that topic.
package console
