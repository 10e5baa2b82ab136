package hub

import (
	"sync"
	"syscall"
)

// canPark: the hub's poller works here.
const canPark = true

// parkPollTimeout is how long (ms) the poller waits between checks that something is still
// parked: with nothing parked it exits, and the next park starts another.
const parkPollTimeout = 1000

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
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return false
		}
		p.running, p.epfd = true, fd
		if p.conns == nil {
			p.conns = make(map[uint64]*Conn)
		}
		go p.poll(fd)
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

// poll resumes the connections whose sockets become readable, until nothing is parked.
func (p *parker) poll(epfd int) {
	var events [128]syscall.EpollEvent
	var ready []*Conn
	for {
		n, err := syscall.EpollWait(epfd, events[:], parkPollTimeout)
		if err == syscall.EINTR {
			continue
		}
		ready = ready[:0]
		p.mu.Lock()
		for _, ev := range events[:max(n, 0)] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if c := p.conns[id]; c != nil {
				ready = append(ready, c)
			}
		}
		stop := err != nil || n == 0 && len(p.conns) == 0
		if err != nil { // not expected: resume everything parked, and stop
			for id, c := range p.conns {
				ready = append(ready, c)
				c.parkID = 0
				delete(p.conns, id)
			}
		}
		if stop {
			p.running = false
		}
		p.mu.Unlock()
		for _, c := range ready {
			c.unpark()
		}
		if stop {
			_ = syscall.Close(epfd)
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
