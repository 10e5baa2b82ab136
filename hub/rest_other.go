//go:build !linux

package hub

import "syscall"

// canRestRead: restRead does not work here; the reader blocks in its ordinary read.
const canRestRead = false

func (b *sockReader) restRead(syscall.RawConn) error { panic("hub: restRead without canRestRead") }

// parker has nothing to do here: without restRead no reader rests, so none parks.
type parker struct{}

func (*parker) add(*Conn) bool { return false }
func (*parker) remove(*Conn)   {}
func (*parker) len() int       { return 0 }
func (*parker) polling() bool  { return false }
