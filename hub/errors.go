package hub

import "errors"

// Close reasons and errors. The Err* values are passed to Session.Closed so the engine
// can tell why a connection ended (for the `leave` reason and for logs).
var (
	// ErrShutdown is the close reason when the Hub is shutting down (close code 1012).
	ErrShutdown = errors.New("hub: server shutting down")
	// ErrDisconnect is the close reason when Hub.Disconnect closed the socket (code 1001).
	ErrDisconnect = errors.New("hub: disconnected by id")
	// ErrIdle is the close reason for a socket that sent no frame for Config.IdleTimeout.
	ErrIdle = errors.New("hub: idle timeout")
	// ErrSlow is the close reason for a client whose outbound queue exceeded
	// Config.MaxQueueBytes; it is also what Send returns to the sender that overflowed it.
	ErrSlow = errors.New("hub: slow consumer")
	// ErrBadFrame is the close reason for a frame that is not valid JSON, not of the
	// Phoenix shape, has a non-object payload or nests too deep (close code 1003).
	ErrBadFrame = errors.New("hub: bad frame")
	// ErrBadUTF8 is the close reason for a text frame that is not valid UTF-8 (code 1007).
	// errors.Is(ErrBadUTF8, ErrBadFrame) holds, like every bad-frame reason.
	ErrBadUTF8 error = badFrameError{"hub: bad frame: invalid UTF-8"}
	// ErrTooBig is the close reason for a frame over Config.MaxFrameSize (code 1009).
	ErrTooBig = errors.New("hub: frame too big")
	// ErrClosed is returned by Send and Reply once the connection is closing or closed.
	ErrClosed = errors.New("hub: connection closed")
	// ErrPeerClosed is the close reason when the client closed the socket or the network
	// dropped it; the underlying error is wrapped with it.
	ErrPeerClosed = errors.New("hub: closed by peer")
	// ErrBinaryV1 is returned when a binary message is sent to a V1 connection, which
	// has no binary frames. The connection stays open.
	ErrBinaryV1 = errors.New("hub: binary message on a V1 connection")
	// ErrFieldTooLong is returned when a V2 binary frame would need a join_ref, ref,
	// topic, event or status longer than 255 bytes, which its u8 lengths cannot carry.
	ErrFieldTooLong = errors.New("hub: binary frame field longer than 255 bytes")
	// ErrProtocol is the close reason for a frame that breaks RFC 6455: an unmasked
	// frame, reserved bits, an unknown opcode, a control frame fragmented or over 125
	// bytes, a continuation without a message, a bad length or close code (code 1002).
	// The underlying *wireError says which.
	ErrProtocol = errors.New("hub: WebSocket protocol violation")
	// ErrRateLimit is the close reason for a client sending more messages than
	// Config.MaxMessageRate and MaxMessageBurst allow (code 1008).
	ErrRateLimit = errors.New("hub: rate limit exceeded")
	// ErrBinaryLongPoll is returned when a binary message is sent to a LongPoll
	// connection: Phoenix's LongPoll client has no way to receive one. The connection
	// stays open.
	ErrBinaryLongPoll = errors.New("hub: binary message on a LongPoll connection")
	// ErrWrite is the close reason when writing to the socket failed or timed out; the
	// underlying error is wrapped with it.
	ErrWrite = errors.New("hub: write failed")
)

// badFrameError is a bad-frame reason more specific than ErrBadFrame.
type badFrameError struct{ msg string }

func (e badFrameError) Error() string { return e.msg }

// Is makes every badFrameError match ErrBadFrame.
func (e badFrameError) Is(target error) bool { return target == ErrBadFrame }

// WebSocket close codes the hub sends (RFC 6455 section 7.4.1).
const (
	CloseNormal         = 1000 // normal closure; Phoenix clients do not reconnect after it
	CloseGoingAway      = 1001 // Disconnect(id), idle timeout
	CloseProtocol       = 1002 // RFC 6455 violation (see ErrProtocol)
	CloseUnsupported    = 1003 // frame that is not Phoenix JSON/binary of the right shape
	CloseNoStatus       = 1005 // peer's close frame carried no code (never sent on the wire)
	CloseInvalidUTF8    = 1007 // text frame that is not valid UTF-8
	ClosePolicy         = 1008 // slow consumer, rate limit
	CloseTooBig         = 1009 // frame over Config.MaxFrameSize
	CloseInternal       = 1011 // unexpected server-side failure
	CloseServiceRestart = 1012 // shutdown: clients reconnect, to another node if any
)
