package hub

import "time"

// A quiet connection's reader parks (see Conn.park): its goroutine ends, and the hub's
// poller (parker, park_linux.go) starts a fresh one when the client sends, the idle
// deadline comes, or the writer finishes a close. Only a reader that rests parks, so
// where restRead does not work (rest_other.go) none does. At 15,000 quiet connections that is
// 15,000 goroutines and their stacks (2 KiB and more each) fewer.

// The states of Conn.parkState.
const (
	parkRunning uint32 = iota // a goroutine reads
	parkParking               // park is registering; an unpark now is left to park
	parkParked                // no goroutine reads; the first unpark starts one
	parkWoken                 // unparked while parking: park resumes reading itself
)

// park hands the wait for the client's next bytes, until deadline (the idle timeout), to
// the hub's poller, and reports whether it did; when it did, the reader's goroutine must
// end, and a fresh one is started by unpark. It does not park when the socket is gone,
// epoll fails, or a close has begun (the writer's deadline is for a goroutine to meet).
// Only a connection that can rest (canRest) parks.
func (c *Conn) park(deadline time.Time) bool {
	if c.parkTimer == nil { // before parkState first leaves parkRunning: unpark reads it after
		c.parkTimer = time.AfterFunc(time.Hour, c.unpark)
		c.parkTimer.Stop()
	}
	c.parkState.Store(parkParking)
	c.parkTimer.Reset(time.Until(deadline))
	if c.hub.park.add(c) && !c.isClosing() && c.parkState.CompareAndSwap(parkParking, parkParked) {
		return true
	}
	c.parkTimer.Stop()
	c.hub.park.remove(c)
	c.parkState.Store(parkRunning)
	return false
}

// unpark resumes a parked reader on a fresh goroutine: when its socket is readable (the
// poller), its idle deadline has come (its timer), or its writer has finished a close.
// Only the first of these resumes it; one that comes while park is registering leaves it
// to park.
func (c *Conn) unpark() {
	for {
		switch c.parkState.Load() {
		case parkParked:
			if c.parkState.CompareAndSwap(parkParked, parkRunning) {
				c.parkTimer.Stop()
				c.hub.park.remove(c)
				go c.read(true)
				return
			}
		case parkParking:
			if c.parkState.CompareAndSwap(parkParking, parkWoken) {
				return
			}
		default:
			return
		}
	}
}
