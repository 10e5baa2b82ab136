//go:build linux

package hub

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// writerWait bounds every wait in the writer's tests.
const writerWait = 5 * time.Second

// sockKind is what a test writer writes to.
type sockKind int

const (
	packets  sockKind = iota // a SOCK_SEQPACKET pair: each write the peer reads is one system call
	stream                   // a SOCK_STREAM pair with a small send buffer, for filling it
	pipe                     // net.Pipe: no descriptor, so writes are writeLoop's
	noSocket                 // none: a LongPoll's queue
)

// rig is a writer and the peer reading what it writes.
type rig struct {
	w    writer
	wg   sync.WaitGroup
	kind sockKind
	nc   net.Conn
	peer net.Conn
}

// newRig returns a writer to a socket of kind, with a queue of limit bytes, closed and
// waited for when tb ends.
func newRig(tb testing.TB, kind sockKind, limit int) *rig {
	tb.Helper()
	r := &rig{kind: kind}
	switch kind {
	case packets:
		r.nc, r.peer = socketPair(tb, syscall.SOCK_SEQPACKET)
	case stream:
		r.nc, r.peer = socketPair(tb, syscall.SOCK_STREAM)
		if err := r.nc.(*net.UnixConn).SetWriteBuffer(4096); err != nil {
			tb.Fatal(err)
		}
	case pipe:
		r.nc, r.peer = net.Pipe()
	}
	r.w.init(r.nc, &r.wg, limit)
	tb.Cleanup(func() {
		if r.nc == nil {
			return
		}
		r.peer.Close() // a writer blocked on the peer fails at once
		r.w.close(0, "", ErrClosed, false)
		select {
		case <-r.w.done:
		case <-time.After(writerWait):
			tb.Errorf("writer did not finish; state %v", r.state())
		}
		done := make(chan struct{})
		go func() { r.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(writerWait):
			tb.Error("writer goroutines did not exit")
		}
		r.nc.Close()
	})
	return r
}

// socketPair returns both ends of a Unix socket pair of type typ.
func socketPair(tb testing.TB, typ int) (a, b net.Conn) {
	tb.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, typ|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			tb.Fatal(err)
		}
		return c
	}
	return conn(fds[0]), conn(fds[1])
}

func (r *rig) state() writerState {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	return r.w.state
}

func (r *rig) queued() int {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	return r.w.q.queued
}

// send sends frame, written now by the caller (or, without now, by the flushers), and
// expects want back.
func (r *rig) send(tb testing.TB, frame string, now bool, want error) {
	tb.Helper()
	if _, err := r.w.send([]byte(frame), now); err != want {
		tb.Fatalf("send %.10q: %v, want %v", frame, err, want)
	}
}

// hold takes the idle role as the flushers would before their turn comes: what is sent
// meanwhile only queues. The holder's turn is r.w.writeSome().
func (r *rig) hold(tb testing.TB) {
	tb.Helper()
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	if r.w.state != writerIdle {
		tb.Fatalf("hold: state %v", r.w.state)
	}
	r.w.state = writerFlushing
}

// expectState fails unless the writer is in state want now.
func (r *rig) expectState(tb testing.TB, want writerState) {
	tb.Helper()
	if got := r.state(); got != want {
		tb.Fatalf("state %v, want %v", got, want)
	}
}

// settle waits until the writer is in state want.
func (r *rig) settle(tb testing.TB, want writerState) {
	tb.Helper()
	deadline := time.Now().Add(writerWait)
	for r.state() != want {
		if time.Now().After(deadline) {
			tb.Fatalf("state %v, want %v", r.state(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// expectWire reads what the writer wrote: each of want as one write (packets), or
// their concatenation (a stream or a pipe).
func (r *rig) expectWire(tb testing.TB, want ...string) {
	tb.Helper()
	_ = r.peer.SetReadDeadline(time.Now().Add(writerWait))
	if r.kind == packets {
		buf := make([]byte, 1<<16)
		for i, p := range want {
			n, err := r.peer.Read(buf)
			if err != nil {
				tb.Fatalf("write %d: %v", i, err)
			}
			if got := string(buf[:n]); got != p {
				tb.Fatalf("write %d: %.40q, want %.40q", i, got, p)
			}
		}
		return
	}
	all := strings.Join(want, "")
	got := make([]byte, len(all))
	if _, err := io.ReadFull(r.peer, got); err != nil {
		tb.Fatalf("read %d bytes: %v", len(all), err)
	}
	if string(got) != all {
		tb.Fatalf("wire: %.40q..., want %.40q...", got, all)
	}
}

// expectClose fails unless the writer has recorded a close with code, text, a reason
// matching reason, and flush.
func (r *rig) expectClose(tb testing.TB, code int, text string, reason error, flush bool) {
	tb.Helper()
	w := &r.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closing || w.closeCode != code || w.closeText != text || !errors.Is(w.closeErr, reason) || w.closeFlush != flush {
		tb.Fatalf("close: closing %v, %d %q, reason %v, flush %v; want %d %q, %v, flush %v",
			w.closing, w.closeCode, w.closeText, w.closeErr, w.closeFlush, code, text, reason, flush)
	}
}

// expectDone waits for the close frame to be written (or abandoned).
func (r *rig) expectDone(tb testing.TB) {
	tb.Helper()
	select {
	case <-r.w.done:
	case <-time.After(writerWait):
		tb.Fatalf("close not finished; state %v", r.state())
	}
	r.expectState(tb, writerClosed)
}

// closeBytes is the close frame a writer writes for code and text.
func closeBytes(code int, text string) string { return string(closeFrame(code, text).buf) }

// big is a frame larger than a stream rig's kernel buffer.
var big = strings.Repeat("x", 1<<20)

// TestWriter runs each transition of writer's state machine (see writer) from the state
// it starts in, and checks the state it ends in and what reaches the socket.
func TestWriter(t *testing.T) {
	const limit = 1 << 22
	tests := []struct {
		name string
		sock sockKind
		run  func(t *testing.T, r *rig)
	}{
		{"idle→inline→idle: a send is written by its sender before it returns", packets, func(t *testing.T, r *rig) {
			r.send(t, "a", true, nil)
			r.expectState(t, writerIdle)
			r.expectWire(t, "a")
		}},
		{"idle→flushing→idle: a broadcast's send is written by a flusher", packets, func(t *testing.T, r *rig) {
			r.send(t, "a", false, nil)
			r.expectWire(t, "a")
			r.settle(t, writerIdle)
		}},
		{"flushing: sends while the role is held queue, and the holder writes them in one write", packets, func(t *testing.T, r *rig) {
			r.hold(t)
			r.send(t, "a", true, nil)
			r.send(t, "b", false, nil)
			r.expectState(t, writerFlushing)
			if q := r.queued(); q != 2 {
				t.Fatalf("queued %d bytes, want 2", q)
			}
			r.w.writeSome() // the holder's turn
			r.expectState(t, writerIdle)
			r.expectWire(t, "ab")
		}},
		{"corked: sends queue; the last uncork writes them in one write", packets, func(t *testing.T, r *rig) {
			r.w.cork()
			r.w.cork()
			r.send(t, "a", true, nil)
			r.send(t, "b", false, nil)
			r.send(t, "c", true, nil)
			r.w.uncork(false)
			r.expectState(t, writerIdle)
			if q := r.queued(); q != 3 {
				t.Fatalf("queued %d bytes before the last uncork, want 3", q)
			}
			r.w.uncork(false)
			r.expectState(t, writerIdle)
			r.expectWire(t, "abc")
		}},
		{"corked: uncorkLater hands the sends to a flusher, in one write", packets, func(t *testing.T, r *rig) {
			r.w.cork()
			r.send(t, "a", true, nil)
			r.send(t, "b", true, nil)
			r.w.uncork(true)
			r.expectWire(t, "ab")
			r.settle(t, writerIdle)
		}},
		{"corked while held: uncork leaves the frames to the holder", packets, func(t *testing.T, r *rig) {
			r.hold(t)
			r.w.cork()
			r.send(t, "a", true, nil)
			r.w.uncork(false)
			r.expectState(t, writerFlushing)
			r.w.writeSome()
			r.expectState(t, writerIdle)
			r.expectWire(t, "a")
		}},
		{"inline→looping→idle: a full kernel buffer hands the rest, and what follows, to writeLoop", stream, func(t *testing.T, r *rig) {
			r.send(t, big, true, nil)
			r.expectState(t, writerLooping)
			r.send(t, "tail", true, nil) // queues behind the blocked write
			r.expectWire(t, big, "tail")
			r.settle(t, writerIdle)
			r.send(t, "again", true, nil) // written inline again
			r.expectState(t, writerIdle)
			r.expectWire(t, "again")
		}},
		{"idle→looping: a socket with no descriptor gets a resident writeLoop", pipe, func(t *testing.T, r *rig) {
			r.send(t, "a", true, nil)
			r.expectState(t, writerLooping)
			r.expectWire(t, "a")
			r.send(t, "b", false, nil) // wakes the resident loop
			r.expectWire(t, "b")
			r.expectState(t, writerLooping)
			r.w.close(CloseNormal, "bye", ErrClosed, true)
			r.expectWire(t, closeBytes(CloseNormal, "bye"))
			r.expectDone(t)
		}},
		{"idle→looping→closed: a close writes what is queued, then the close frame, in one write", packets, func(t *testing.T, r *rig) {
			r.w.cork() // a close is not held back by a cork
			r.send(t, "a", true, nil)
			if !r.w.close(CloseNormal, "bye", ErrClosed, true) {
				t.Fatal("first close not first")
			}
			r.expectWire(t, "a"+closeBytes(CloseNormal, "bye"))
			r.expectDone(t)
			r.send(t, "b", true, ErrClosed)
		}},
		{"idle→looping→closed: a close without flush drops what is queued", packets, func(t *testing.T, r *rig) {
			r.w.cork()
			r.send(t, "a", true, nil)
			r.w.close(CloseGoingAway, "idle timeout", ErrIdle, false)
			r.expectWire(t, closeBytes(CloseGoingAway, "idle timeout"))
			r.expectDone(t)
		}},
		{"closing: the first close wins; later sends are refused", packets, func(t *testing.T, r *rig) {
			r.w.close(CloseNormal, "first", ErrClosed, true)
			if r.w.close(ClosePolicy, "second", ErrRateLimit, false) {
				t.Fatal("second close reported first")
			}
			r.send(t, "a", true, ErrClosed)
			r.expectClose(t, CloseNormal, "first", ErrClosed, true)
			r.expectWire(t, closeBytes(CloseNormal, "first"))
			r.expectDone(t)
		}},
		{"looping→closed: a close while writing finishes the frame begun, then the close frame", stream, func(t *testing.T, r *rig) {
			r.send(t, big, true, nil)
			r.expectState(t, writerLooping)
			r.w.close(CloseNormal, "bye", ErrClosed, false)
			r.expectWire(t, big, closeBytes(CloseNormal, "bye"))
			r.expectDone(t)
		}},
		{"looping→closed: a flushing close while writing writes everything queued first", stream, func(t *testing.T, r *rig) {
			r.send(t, big, true, nil)
			r.send(t, "tail", true, nil)
			r.w.close(CloseNormal, "bye", ErrClosed, true)
			r.expectWire(t, big, "tail", closeBytes(CloseNormal, "bye"))
			r.expectDone(t)
		}},
		{"held→looping→closed: a holder that finds a close hands it to writeLoop", packets, func(t *testing.T, r *rig) {
			r.hold(t)
			r.send(t, "a", true, nil)
			r.w.close(CloseNormal, "bye", ErrClosed, true)
			r.expectState(t, writerFlushing) // no second writer is started
			r.w.writeSome()
			r.expectWire(t, "a"+closeBytes(CloseNormal, "bye"))
			r.expectDone(t)
		}},
		{"inline→looping→closed: a failed write closes with ErrWrite and no close frame", packets, func(t *testing.T, r *rig) {
			r.peer.Close()
			r.send(t, "a", true, nil)
			r.expectDone(t)
			r.expectClose(t, 0, "", ErrWrite, false)
		}},
		{"no socket (LongPoll): sends queue and wake a poll; a close starts no writer", noSocket, func(t *testing.T, r *rig) {
			r.send(t, "a", true, nil)
			r.expectState(t, writerIdle)
			select {
			case <-r.w.wake:
			default:
				t.Fatal("no wake-up for the poll")
			}
			if q := r.queued(); q != 1 {
				t.Fatalf("queued %d bytes, want 1", q)
			}
			r.w.close(CloseNormal, "bye", ErrClosed, true)
			r.expectState(t, writerIdle)
			r.send(t, "b", true, ErrClosed)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newRig(t, tc.sock, limit))
		})
	}
}

// TestWriterSlowConsumer checks that a send taking the queue over its limit closes the
// writer as a slow consumer, with its reason, dropping what was queued.
func TestWriterSlowConsumer(t *testing.T) {
	tests := []struct {
		name   string
		sock   sockKind
		queued string // what is corked in the queue first
		frame  string // the send that does not fit
		want   error
	}{
		{"over the limit", packets, "aaa", "bb", ErrSlow},
		{"at the limit", packets, "aa", "bb", nil},
		{"larger than the limit, into an empty queue", packets, "", "bbbbbb", nil},
		{"over the limit, LongPoll", noSocket, "aaa", "bb", ErrSlow},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.sock, 4)
			r.w.cork()
			if tc.queued != "" {
				r.send(t, tc.queued, true, nil)
			}
			held, err := r.w.send([]byte(tc.frame), false)
			if err != tc.want {
				t.Fatalf("send: %v, want %v", err, tc.want)
			}
			if tc.want == nil {
				return
			}
			if held != len(tc.queued) {
				t.Errorf("held %d bytes, want %d", held, len(tc.queued))
			}
			r.expectClose(t, ClosePolicy, "slow consumer", ErrSlow, false)
			if err := r.w.reason(); err != ErrSlow {
				t.Errorf("reason %v, want ErrSlow", err)
			}
			if q := r.queued(); q != 0 {
				t.Errorf("queued %d bytes after the close, want 0", q)
			}
			r.send(t, "c", true, ErrClosed) // only the first overflow reports ErrSlow
			if tc.sock == noSocket {
				return
			}
			r.expectWire(t, closeBytes(ClosePolicy, "slow consumer"))
			r.expectDone(t)
		})
	}
}

// TestWriterConcurrentSenders sends from several goroutines at once, inline, through
// the flushers and under corks, to a socket the peer drains slowly enough for the
// kernel buffer to fill: every frame must arrive exactly once, each sender's in order,
// and the writer end idle, so no frame was left without a writer.
func TestWriterConcurrentSenders(t *testing.T) {
	const senders, frames = 4, 300
	r := newRig(t, stream, 1<<30)
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range frames {
				pad := "" // now and then, a frame the kernel buffer cannot take at once
				if i%50 == 0 {
					pad = big[:64<<10]
				}
				frame := fmt.Sprintf("%d:%d:%s;", s, i, pad)
				switch i % 3 {
				case 0:
					r.send(t, frame, true, nil)
				case 1:
					r.send(t, frame, false, nil)
				default:
					r.w.cork()
					r.send(t, frame, true, nil)
					r.w.uncork(i%2 == 0)
				}
			}
		}()
	}
	next := make([]int, senders)
	in := bufio.NewReader(r.peer)
	_ = r.peer.SetReadDeadline(time.Now().Add(writerWait))
	for range senders * frames {
		f, err := in.ReadString(';')
		if err != nil {
			t.Fatalf("after %v frames: %v", next, err)
		}
		var s, i int
		if _, err := fmt.Sscanf(f, "%d:%d:", &s, &i); err != nil || s >= senders || i != next[s] {
			t.Fatalf("frame %.20q, want %d:%d", f, s, next[s])
		}
		next[s]++
	}
	wg.Wait()
	r.settle(t, writerIdle)
	if q := r.queued(); q != 0 {
		t.Fatalf("%d bytes left queued", q)
	}
}
