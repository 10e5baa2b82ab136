package luabind

import "testing"

// BenchmarkObserve is exactly what the per-script metrics add to a callback: the clock
// read at its start, and observe at its end (a clock read, three atomic adds and the
// bucket search), uncontended.
func BenchmarkObserve(b *testing.B) {
	var c CallStats
	v := &vm{}
	for b.Loop() {
		v.cb, v.started = cbHandleIn, monoNow()
		c.observe(v, false)
	}
}
