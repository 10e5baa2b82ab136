package hub

import (
	"sync"
	"syscall"
	"unsafe"
)

// maxInlineIovecs is the most frames one write without blocking hands the kernel
// (Linux's IOV_MAX); the rest of a longer queue waits for the connection's next turn.
const maxInlineIovecs = 1024

// inlineWrite is the state of one writev without blocking. raw.Write takes a callback,
// which would escape to the heap with what it uses at every call; a pooled inlineWrite
// holds both, so a write allocates nothing, and its 16 KiB of iovecs are on no stack.
type inlineWrite struct {
	iov [maxInlineIovecs]syscall.Iovec
	k   int   // iovecs in use
	n   int   // bytes written
	err error // the socket's error, if any
	do  func(fd uintptr) bool
}

var inlineWrites = sync.Pool{New: func() any {
	w := new(inlineWrite)
	w.do = w.writev
	return w
}}

// writev is the callback of raw.Write: one writev that never waits for the socket.
func (w *inlineWrite) writev(fd uintptr) bool {
	for {
		r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iov[0])), uintptr(w.k))
		switch e {
		case 0:
			w.n = int(r)
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
		default:
			w.err = e
		}
		return true // never wait for the socket to drain
	}
}

// writeNow writes frames to the socket behind raw with one writev that does not wait
// for the socket (of the first maxInlineIovecs frames at most). It returns how many
// bytes the kernel took, whether it refused some (blocked: the socket buffer is full),
// and an error only if the socket failed. Go's sockets are in non-blocking mode, so the
// call returns at once; raw serialises it with the descriptor's other writes and keeps
// the descriptor open during it.
func writeNow(raw syscall.RawConn, frames [][]byte) (n int, blocked bool, err error) {
	w := inlineWrites.Get().(*inlineWrite)
	w.k, w.n, w.err = 0, 0, nil
	offered := 0
	for _, f := range frames {
		if w.k == len(w.iov) {
			break
		}
		if len(f) == 0 {
			continue
		}
		w.iov[w.k].Base = &f[0]
		w.iov[w.k].SetLen(len(f))
		w.k++
		offered += len(f)
	}
	if w.k > 0 {
		err = raw.Write(w.do)
	}
	n = w.n
	if w.err != nil {
		err = w.err
	}
	clear(w.iov[:w.k]) // let the frames be collected
	w.k, w.err = 0, nil
	inlineWrites.Put(w)
	return n, n < offered, err
}
