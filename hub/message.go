package hub

import "net/url"

// Format is the wire format a connection speaks, chosen by ?vsn= at connect.
type Format uint8

const (
	// V1 is vsn=1.0.0 or no vsn: {"topic","event","payload","ref"} objects; the server
	// never sends join_ref, and there are no binary frames.
	V1 Format = 1
	// V2 is vsn=2.0.0: [join_ref, ref, topic, event, payload] arrays, plus V2 binary
	// frames for ArrayBuffer payloads.
	V2 Format = 2
)

// String returns the vsn value that selects f.
func (f Format) String() string {
	switch f {
	case V1:
		return "1.0.0"
	case V2:
		return "2.0.0"
	}
	return "unknown"
}

// formatFromQuery picks the wire format from the ?vsn= query parameter. No vsn means V1,
// as in Phoenix; any value other than 1.0.0 or 2.0.0 is refused (ok false).
func formatFromQuery(q url.Values) (f Format, ok bool) {
	switch q.Get("vsn") {
	case "", "1.0.0":
		return V1, true
	case "2.0.0":
		return V2, true
	}
	return 0, false
}

// Message is one decoded client frame, or one frame for the server to send.
// Refs are "" for JSON null (hub never distinguishes "" from null).
type Message struct {
	JoinRef string
	Ref     string
	Topic   string
	Event   string
	Payload []byte // JSON text of any value (usually an object); or raw bytes when Binary
	Binary  bool   // payload came/goes as a V2 binary frame (ArrayBuffer)
}

// Phoenix's reserved topic and events that the hub itself understands.
const (
	phoenixTopic   = "phoenix"   // topic of socket-level messages
	heartbeatEvent = "heartbeat" // client keep-alive, answered by the hub
	replyEvent     = "phx_reply" // the event of every reply
	joinEvent      = "phx_join"  // a client joins a topic
	leaveEvent     = "phx_leave" // a client leaves a topic
)

// nullPayloadIsEmpty makes a null payload of a heartbeat, join or leave the empty
// object: Phoenix clients send null there for "no params" (github.com/nshafer/phx does),
// and what reads those payloads expects an object. The payload of any other event is
// left as the client sent it.
func (m *Message) nullPayloadIsEmpty() {
	if string(m.Payload) != "null" {
		return
	}
	switch m.Event {
	case heartbeatEvent, joinEvent, leaveEvent:
		m.Payload = append(m.Payload[:0], "{}"...)
	}
}

// isHeartbeat reports whether m is a client heartbeat, which the hub answers itself.
func (m *Message) isHeartbeat() bool {
	return m.Topic == phoenixTopic && m.Event == heartbeatEvent
}
