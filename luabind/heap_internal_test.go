package luabind

import (
	"testing"
	"time"
)

// quietHeapWatch waits for the heap sampler of earlier tests to exit, and restores the
// watchdog's state after the test.
func quietHeapWatch(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); heapWatch.running.Load(); time.Sleep(heapPollInterval) {
		if time.Now().After(deadline) {
			t.Fatal("the heap sampler is still running")
		}
	}
	t.Cleanup(func() {
		heapWatch.bytes.Store(0)
		heapWatch.live.Store(0)
		heapWatch.confirming.Store(false)
		select {
		case <-heapWatch.collect:
		default:
		}
	})
}

// TestHeapOverWhileCollecting: the live heap measured when a call was stopped may still
// count what that call kept; while the collection asked for after it runs (seconds, on a
// big heap under load), no call is stopped on that measure.
func TestHeapOverWhileCollecting(t *testing.T) {
	quietHeapWatch(t)
	const bound = 1 << 30
	heapWatch.bytes.Store(2 * bound)
	heapWatch.live.Store(2 * bound)
	heapWatch.confirming.Store(true)
	if heapOver(bound) {
		t.Error("a live heap measured before the collection under way stopped a call")
	}
	heapWatch.confirming.Store(false)
	if !heapOver(bound) {
		t.Error("a confirmed live heap over the bound stopped nothing")
	}
}

// TestHeapRecollect: once a stopped call's VM is dropped a collection is asked for, even
// while one is under way (it may have seen the VM's memory still held).
func TestHeapRecollect(t *testing.T) {
	quietHeapWatch(t)
	heapWatch.confirming.Store(true) // one under way
	heapRecollect()
	select {
	case <-heapWatch.collect:
	default:
		t.Fatal("no collection asked for")
	}
	if !heapWatch.confirming.Load() {
		t.Error("not marked as confirming")
	}
}
