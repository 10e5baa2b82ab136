package hub

import (
	"io"
	"os"
	"syscall"
)

// canRestRead: restRead works here.
const canRestRead = true

// restRead waits for the client's next bytes and reads them into the small buffer,
// through raw, whose callback reads the descriptor itself: the wait holds no buffer
// and few stack frames (see Conn.rest). Nothing may be buffered (b.r == b.w). It
// returns raw's error (a deadline, a closed socket) without keeping it: the next read
// meets it again.
func (b *sockReader) restRead(raw syscall.RawConn) error {
	if b.big != nil {
		b.releaseBig()
	}
	b.buf, b.r, b.w = b.small[:], 0, 0
	if b.restFn == nil {
		b.restFn = func(fd uintptr) bool {
			for {
				n, err := syscall.Read(int(fd), b.small[:])
				switch err {
				case syscall.EINTR:
					continue
				case syscall.EAGAIN:
					return false // raw waits for the descriptor to be readable, then calls again
				case nil:
					b.restN, b.restErrno = n, 0
				default:
					b.restN, b.restErrno = 0, err.(syscall.Errno)
				}
				return true
			}
		}
	}
	if err := raw.Read(b.restFn); err != nil {
		return err
	}
	switch {
	case b.restErrno != 0:
		b.err = os.NewSyscallError("read", b.restErrno)
		return b.err
	case b.restN == 0:
		b.err = io.EOF
		return b.err
	}
	b.w = b.restN
	b.lastFull = b.w == len(b.buf)
	return nil
}
