package hub

import "net"

// Test-only access to internals that the public API reaches only through a socket.

// EncodeReply exposes the reply encoder to the codec tests.
func EncodeReply(f Format, joinRef, ref, topic, status string, response []byte, binary bool) ([]byte, error) {
	wf, err := encodeReply(f, joinRef, ref, topic, status, response, binary)
	if err != nil {
		return nil, err
	}
	return wf.buf[wf.body:], nil
}

// NewWriterConn returns a Conn of h with a running writer that writes to nc and no
// reader, so benchmarks can fan out to thousands of subscribers without thousands of
// sockets. Close it with Conn.Close; h.Shutdown waits for its writer.
func NewWriterConn(h *Hub, f Format, nc net.Conn) *Conn {
	c := newConn(h, nil, nc, f, "", nil, "pipe")
	h.wg.Add(1)
	go c.writeLoop()
	return c
}
