package luabind

import (
	"context"
	"errors"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// waitDone fails unless b ends within a generous bound.
func waitDone(tb testing.TB, b *budget) {
	tb.Helper()
	select {
	case <-b.Done():
	case <-time.After(10 * time.Second):
		tb.Fatal("the budget never ended")
	}
}

func TestBudget(t *testing.T) {
	t.Run("runs out and is reusable", func(t *testing.T) {
		b := newBudget()
		for range 3 {
			if err := b.arm(context.Background(), 10*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			waitDone(t, b)
			if !errors.Is(b.Err(), context.DeadlineExceeded) {
				t.Errorf("Err() = %v", b.Err())
			}
			b.disarm()
		}
	})

	t.Run("disarmed in time", func(t *testing.T) {
		b := newBudget()
		if err := b.arm(context.Background(), 20*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		b.disarm()
		time.Sleep(40 * time.Millisecond) // past the first deadline: nothing may fire
		if err := b.arm(context.Background(), time.Hour); err != nil {
			t.Fatal(err)
		}
		defer b.disarm()
		select {
		case <-b.Done():
			t.Fatalf("a stale timer ended the next call: %v", b.Err())
		default:
		}
	})

	t.Run("stale timer after a late stop", func(t *testing.T) {
		b := newBudget()
		if err := b.arm(context.Background(), time.Hour); err != nil {
			t.Fatal(err)
		}
		b.expire() // as if the timer of an earlier call fired now
		select {
		case <-b.Done():
			t.Fatal("a timer ended a call before its deadline")
		default:
		}
		b.disarm()
	})

	t.Run("parent canceled", func(t *testing.T) {
		b := newBudget()
		ctx, cancel := context.WithCancel(context.Background())
		if err := b.arm(ctx, time.Hour); err != nil {
			t.Fatal(err)
		}
		cancel()
		waitDone(t, b)
		if !errors.Is(b.Err(), context.Canceled) {
			t.Errorf("Err() = %v", b.Err())
		}
		b.disarm()
		if err := b.arm(ctx, time.Hour); !errors.Is(err, context.Canceled) {
			t.Errorf("arm under a canceled parent: %v", err)
		}
	})

	t.Run("stale parent", func(t *testing.T) {
		b := newBudget()
		old, cancelOld := context.WithCancel(context.Background())
		if err := b.arm(old, time.Hour); err != nil {
			t.Fatal(err)
		}
		b.disarm()
		if err := b.arm(context.Background(), time.Hour); err != nil {
			t.Fatal(err)
		}
		defer b.disarm()
		cancelOld()
		b.parentDone(old) // as if its callback had started before the watch moved on
		select {
		case <-b.Done():
			t.Fatal("an earlier call's parent ended this call")
		default:
		}
	})

	t.Run("parent deadline sooner", func(t *testing.T) {
		b := newBudget()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		if err := b.arm(ctx, time.Hour); err != nil {
			t.Fatal(err)
		}
		if dl, ok := b.Deadline(); !ok || time.Until(dl) > time.Second {
			t.Errorf("Deadline() = %v, %v", dl, ok)
		}
		waitDone(t, b)
		b.disarm()
	})

	t.Run("same parent across calls", func(t *testing.T) {
		b := newBudget()
		defer b.close()
		ctx, cancel := context.WithCancel(context.Background())
		for range 3 {
			if err := b.arm(ctx, time.Hour); err != nil {
				t.Fatal(err)
			}
			b.disarm()
		}
		if err := b.arm(ctx, time.Hour); err != nil {
			t.Fatal(err)
		}
		cancel()
		waitDone(t, b)
		if !errors.Is(b.Err(), context.Canceled) {
			t.Errorf("Err() = %v", b.Err())
		}
		b.disarm()
	})

	t.Run("parent ends between calls", func(t *testing.T) {
		b := newBudget()
		defer b.close()
		ctx, cancel := context.WithCancel(context.Background())
		if err := b.arm(ctx, time.Hour); err != nil {
			t.Fatal(err)
		}
		b.disarm()
		cancel()
		if err := b.arm(context.Background(), time.Hour); err != nil {
			t.Fatal(err)
		}
		defer b.disarm()
		time.Sleep(10 * time.Millisecond) // let the old parent's callback run
		select {
		case <-b.Done():
			t.Fatal("the old parent ended a call under another parent")
		default:
		}
	})

	t.Run("values come from the parent", func(t *testing.T) {
		type key struct{}
		b := newBudget()
		if err := b.arm(context.WithValue(context.Background(), key{}, "v"), time.Hour); err != nil {
			t.Fatal(err)
		}
		defer b.disarm()
		if b.Value(key{}) != "v" {
			t.Error("value lost")
		}
	})
}

// TestBudgetLateButIdle: a call past its deadline that has done little work (it was
// waiting for a CPU, here in a Go function that sleeps) finishes; one that then spins,
// in Lua or in a Go loop that checks the budget, is stopped at once; and at hardFactor
// times its budget any call is stopped.
func TestBudgetLateButIdle(t *testing.T) {
	const d = 20 * time.Millisecond
	var checks int // budget checks made by steps()
	run := func(t *testing.T, stall time.Duration, code string) error {
		L := lua.NewState()
		defer L.Close()
		L.SetGlobal("stall", L.NewFunction(func(*lua.LState) int { time.Sleep(stall); return 0 }))
		L.SetGlobal("steps", L.NewFunction(func(L *lua.LState) int {
			for checks = 0; ; checks++ {
				checkBudget(L)
			}
		}))
		b := newBudget()
		defer b.close()
		if err := b.arm(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		L.SetContext(b)
		err := L.DoString(code)
		L.RemoveContext()
		stopped := b.Err()
		b.disarm()
		if err != nil && !errors.Is(stopped, context.DeadlineExceeded) {
			t.Fatalf("%s: %v, stopped by %v", code, err, stopped)
		}
		return err
	}
	t.Run("late, little work: finishes", func(t *testing.T) {
		if err := run(t, 2*d, "stall() local x = 1 for i = 1, 100 do x = x + i end"); err != nil {
			t.Fatalf("a call that waited past its deadline and then did 300 instructions was stopped: %v", err)
		}
	})
	t.Run("late, then spins: stopped", func(t *testing.T) {
		if err := run(t, 2*d, "stall() while true do end"); err == nil {
			t.Fatal("a spinning call was not stopped")
		}
	})
	t.Run("late, then a Go loop: stopped", func(t *testing.T) {
		if err := run(t, 2*d, "stall() steps()"); err == nil {
			t.Fatal("a Go loop checking the budget was not stopped")
		}
		// each check stands for budgetCheckEvery steps of work
		if want := minWork/budgetCheckEvery + 1; checks > want {
			t.Fatalf("stopped after %d budget checks, want at most %d", checks, want)
		}
	})
	t.Run("past the hard deadline: stopped", func(t *testing.T) {
		if err := run(t, (hardFactor+1)*d, "stall() local x = 1"); err == nil {
			t.Fatalf("a call past %d times its budget was not stopped", hardFactor)
		}
	})
}
