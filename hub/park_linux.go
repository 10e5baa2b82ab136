package hub

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"time"
)

// parkPollIdle is how long the poller waits between checks that something is still
// parked: with nothing parked it exits, and the next park starts another.
const parkPollIdle = time.Second

// parker waits for the quiet connections' next bytes in one epoll set, so that a
// connection whose client is quiet has no goroutine at all (see Conn.park): one poller
// goroutine resumes each as its socket becomes readable. A socket is registered one-shot,
// under an id of its parking (not its descriptor, whose number a closed socket frees
// for another). It stays in the set, disarmed, while its connection runs, and is armed
// again (one epoll_ctl) when it parks again; a closed socket leaves the set by itself.
type parker struct {
	mu      sync.Mutex
	running bool             // a poller runs, on epfd
	epfd    int              // the epoll set
	conns   map[uint64]*Conn // parked connections by id
	next    uint64           // the last id given
}

// add registers c's socket, readable, and reports whether it could: false when the socket
// is gone or epoll fails, and c must be read on a goroutine instead.
func (p *parker) add(c *Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running {
		set, fd, err := newEpollFile()
		if err != nil {
			return false
		}
		p.running, p.epfd = true, fd
		if p.conns == nil {
			p.conns = make(map[uint64]*Conn)
		}
		go p.poll(set)
	}
	p.next++
	id := p.next
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd:     int32(uint32(id)),
		Pad:    int32(uint32(id >> 32)),
	}
	var cerr error
	err := c.w.raw.Control(func(fd uintptr) {
		cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
		if cerr == syscall.ENOENT { // parked for the first time on this set
			cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
		}
	})
	if err != nil || cerr != nil {
		return false
	}
	c.parkID = id
	p.conns[id] = c
	return true
}

// remove forgets c's parking: an event for it is ignored (and disarms its socket).
func (p *parker) remove(c *Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.parkID != 0 {
		delete(p.conns, c.parkID)
		c.parkID = 0
	}
}

// newEpollFile returns a new epoll set as a file the runtime's poller waits on: the set
// is readable while it holds events. So the poller goroutine waits like any network
// read, holding no thread; a thread blocked in epoll_wait cost, under load, a hand-off of
// its P and back at every wake. It also returns the set's descriptor, for epoll_ctl
// (File.Fd would make the file blocking, which stops its deadlines).
func newEpollFile() (*os.File, int, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, 0, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return nil, 0, err
	}
	return os.NewFile(uintptr(fd), "luachan-park"), fd, nil
}

// poll resumes the connections whose sockets become readable, until nothing is parked.
func (p *parker) poll(set *os.File) {
	defer set.Close()
	var events [128]syscall.EpollEvent
	var ready []*Conn
	raw, err := set.SyscallConn()
	for {
		n := 0
		var werr error
		if err == nil {
			_ = set.SetReadDeadline(time.Now().Add(parkPollIdle))
			err = raw.Read(func(fd uintptr) bool {
				n, werr = syscall.EpollWait(int(fd), events[:], 0)
				return n > 0 || werr != nil && werr != syscall.EINTR // else wait until readable
			})
		}
		quiet := errors.Is(err, os.ErrDeadlineExceeded)
		failed := err != nil && !quiet || werr != nil
		if quiet {
			err = nil
		}
		ready = ready[:0]
		p.mu.Lock()
		for _, ev := range events[:max(n, 0)] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if c := p.conns[id]; c != nil {
				ready = append(ready, c)
			}
		}
		if failed { // not expected: resume everything parked, and stop
			for id, c := range p.conns {
				ready = append(ready, c)
				c.parkID = 0
				delete(p.conns, id)
			}
		}
		stop := failed || quiet && len(p.conns) == 0
		if stop {
			p.running = false
		}
		p.mu.Unlock()
		for _, c := range ready {
			c.unpark()
		}
		if stop {
			return
		}
	}
}

// len is how many connections are parked.
func (p *parker) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// polling reports whether a poller runs.
func (p *parker) polling() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}
