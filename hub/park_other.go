//go:build !linux

package hub

// canPark: no poller here; a quiet reader moves to a fresh goroutine instead.
const canPark = false

type parker struct{}

func (*parker) add(*Conn) bool { return false }
func (*parker) remove(*Conn)   {}
func (*parker) len() int       { return 0 }
func (*parker) polling() bool  { return false }
