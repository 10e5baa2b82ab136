package engine

import (
	"encoding/json"
	"fmt"

	"github.com/luachan/luachan/luabind"
)

// A forwarded call's handle_call gets a socket standing for the caller's channel on its
// node: the same topic, join_ref and id; what it pushes and broadcasts on it, and its
// luachan.broadcast and luachan.disconnect, travel back with the reply and are sent by
// the caller's channel, as they are for a call on the owner's own node. TopicOwners
// carries both envelopes as opaque JSON.

// forwardedCall is the envelope of a call sent to the owner.
type forwardedCall struct {
	Msg     json.RawMessage `json:"m,omitempty"`
	ID      string          `json:"id,omitempty"` // the caller's socket id
	JoinRef string          `json:"j,omitempty"`
}

// forwardedReply is the envelope of its reply.
type forwardedReply struct {
	Reply json.RawMessage `json:"r,omitempty"`
	Sends []forwardedSend `json:"s,omitempty"`
}

// Kinds of forwardedSend.
const (
	sendKindPush          = "push"
	sendKindBroadcast     = "broadcast"
	sendKindBroadcastFrom = "broadcast_from"
	sendKindTopic         = "topic"
	sendKindDisconnect    = "disconnect"
)

// forwardedSend is one send handle_call made on a forwarded call's socket.
type forwardedSend struct {
	Kind   string `json:"k"`
	Topic  string `json:"t,omitempty"` // topic: the topic; disconnect: the socket id
	Event  string `json:"e,omitempty"`
	Data   []byte `json:"d,omitempty"`
	Binary bool   `json:"b,omitempty"`
}

// forwardedSocket is handle_call's socket for a call from another node.
type forwardedSocket struct {
	topic, joinRef, id string
	sends              []forwardedSend
}

var (
	_ luabind.Socket      = (*forwardedSocket)(nil)
	_ luabind.SocketSends = (*forwardedSocket)(nil)
)

func (s *forwardedSocket) Topic() string   { return s.topic }
func (s *forwardedSocket) JoinRef() string { return s.joinRef }
func (s *forwardedSocket) ID() string      { return s.id }

func (s *forwardedSocket) Push(event string, p luabind.Payload) error {
	s.add(forwardedSend{Kind: sendKindPush, Event: event}, p)
	return nil
}

func (s *forwardedSocket) Broadcast(event string, p luabind.Payload, excludeSelf bool) error {
	kind := sendKindBroadcast
	if excludeSelf {
		kind = sendKindBroadcastFrom
	}
	s.add(forwardedSend{Kind: kind, Event: event}, p)
	return nil
}

func (s *forwardedSocket) BroadcastTopic(topic, event string, p luabind.Payload) error {
	s.add(forwardedSend{Kind: sendKindTopic, Topic: topic, Event: event}, p)
	return nil
}

func (s *forwardedSocket) DisconnectID(id string) error {
	s.sends = append(s.sends, forwardedSend{Kind: sendKindDisconnect, Topic: id})
	return nil
}

// add keeps a copy of p's data, and lets p go.
func (s *forwardedSocket) add(f forwardedSend, p luabind.Payload) {
	f.Data, f.Binary = append([]byte(nil), p.Data...), p.Binary
	p.Release()
	s.sends = append(s.sends, f)
}

// encodeCall is the envelope of msg, called from sock.
func encodeCall(sock luabind.Socket, msg []byte) ([]byte, error) {
	data, err := json.Marshal(forwardedCall{Msg: msg, ID: sock.ID(), JoinRef: sock.JoinRef()})
	if err != nil {
		return nil, fmt.Errorf("engine: encoding a call to forward: %w", err)
	}
	return data, nil
}

// decodeCall opens a forwarded call: its msg, and the socket handle_call gets.
func decodeCall(topic string, data []byte) ([]byte, *forwardedSocket, error) {
	var c forwardedCall
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, nil, fmt.Errorf("engine: a forwarded call that is not one (%w): are all nodes the same version?", err)
	}
	return c.Msg, &forwardedSocket{topic: topic, joinRef: c.JoinRef, id: c.ID}, nil
}

// encodeReply is the envelope of a forwarded call's reply and of its socket's sends.
func encodeReply(reply []byte, sock *forwardedSocket) ([]byte, error) {
	data, err := json.Marshal(forwardedReply{Reply: reply, Sends: sock.sends})
	if err != nil {
		return nil, fmt.Errorf("engine: encoding a forwarded call's reply: %w", err)
	}
	return data, nil
}

// openReply opens a forwarded call's reply: it makes its sends on sock, the calling
// channel (from its own goroutine, inside socket:call), and returns the reply.
func openReply(sock luabind.Socket, data []byte) ([]byte, error) {
	var r forwardedReply
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("engine: a forwarded call's reply that is not one (%w): are all nodes the same version?", err)
	}
	sends, _ := sock.(luabind.SocketSends)
	for _, f := range r.Sends {
		p := luabind.Payload{Data: f.Data, Binary: f.Binary}
		var err error
		switch {
		case f.Kind == sendKindPush:
			err = sock.Push(f.Event, p)
		case f.Kind == sendKindBroadcast, f.Kind == sendKindBroadcastFrom:
			err = sock.Broadcast(f.Event, p, f.Kind == sendKindBroadcastFrom)
		case f.Kind == sendKindTopic && sends != nil:
			err = sends.BroadcastTopic(f.Topic, f.Event, p)
		case f.Kind == sendKindDisconnect && sends != nil:
			err = sends.DisconnectID(f.Topic)
		}
		if err != nil {
			return nil, err
		}
	}
	return r.Reply, nil
}
