package luabind

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// pool keeps the VMs of one chunk generation (a Script or a ConnectScript). At most max VMs
// exist at once (idle or in use); a caller that finds none idle builds one while under the
// limit, else waits for one to come back. VMs whose call was stopped (budget, heap, caller) or
// panicked are closed, not reused; the others go back with their globals reset.
type pool struct {
	build func(context.Context) (*vm, error) // makes a VM ready to run callbacks
	idle  chan *vm                           // VMs ready for use; capacity max
	slots chan struct{}                      // one token per VM alive; capacity max

	mu     sync.Mutex // guards closed, and orders put against close
	closed bool       // Close was called: returned VMs are closed, not kept
}

func newPool(max int, build func(context.Context) (*vm, error)) *pool {
	return &pool{
		build: build,
		idle:  make(chan *vm, max),
		slots: make(chan struct{}, max),
	}
}

// get returns an idle VM, or a new one while under the limit, else waits for one or for ctx.
func (p *pool) get(ctx context.Context) (*vm, error) {
	select {
	case v := <-p.idle:
		return v, nil
	default:
	}
	select {
	case v := <-p.idle:
		return v, nil
	case p.slots <- struct{}{}:
		v, err := p.build(ctx)
		if err != nil {
			<-p.slots
			return nil, err
		}
		return v, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("luabind: waiting for a VM: %w", ctx.Err())
	}
}

// tryGet is get without waiting: an idle VM, or a new one while under the limit; false when
// every VM is in use.
func (p *pool) tryGet(ctx context.Context) (*vm, bool) {
	select {
	case v := <-p.idle:
		return v, true
	case p.slots <- struct{}{}:
		v, err := p.build(ctx)
		if err != nil {
			<-p.slots
			return nil, false
		}
		return v, true
	default:
		return nil, false
	}
}

// adopt takes in a VM built outside get (the one Load validated the script with).
func (p *pool) adopt(v *vm) {
	p.slots <- struct{}{}
	p.put(v)
}

// put gives a VM back: kept for reuse, or closed when it is broken or the pool is closed.
func (p *pool) put(v *vm) {
	if !v.broken {
		v.reset()
		v.forgetLent()
		p.mu.Lock()
		if !p.closed {
			p.idle <- v // never blocks: at most cap(slots) VMs exist
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
	overHeap := errors.Is(v.budget.Err(), ErrHeapLimit) // the last call's, until the next arm
	v.close()
	<-p.slots
	if overHeap {
		heapRecollect() // what it kept is garbage now
	}
}

// close closes the idle VMs; the ones in use are closed as they come back. get keeps working,
// building VMs that are closed after one use, so a channel on an old generation is not stranded.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	for {
		select {
		case v := <-p.idle:
			v.close()
			<-p.slots
		default:
			return
		}
	}
}

// reset readies v for its next call: an empty stack and fresh globals.
func (v *vm) reset() {
	v.L.SetTop(0)
	v.resetEnv()
}
