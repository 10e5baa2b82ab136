//go:build !linux

package hub

import "syscall"

// canRestRead: restRead does not work here; the reader blocks in its ordinary read.
const canRestRead = false

func (b *sockReader) restRead(syscall.RawConn) error { panic("hub: restRead without canRestRead") }
