package luabind

import (
	"context"
	"errors"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// waitDone asks b for Done as a running call does before each instruction (a call past
// its deadline ends once it has gone on running), failing unless it ends within a generous
// bound.
func waitDone(tb testing.TB, b *budget) {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		select {
		case <-b.Done():
			return
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatal("the budget never ended")
		}
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

// TestBudgetLateButIdle: a call past its deadline that did not run meanwhile (it was
// waiting for a CPU, here in a Go function that sleeps) finishes; one that goes on
// running, in Lua, in a Go loop that checks the budget, or in slow builtins, is stopped.
func TestBudgetLateButIdle(t *testing.T) {
	const d = 20 * time.Millisecond
	run := func(t *testing.T, code string) (time.Duration, error) {
		L := lua.NewState()
		defer L.Close()
		L.SetGlobal("stall", L.NewFunction(func(*lua.LState) int { time.Sleep(3 * d); return 0 }))
		L.SetGlobal("nap", L.NewFunction(func(*lua.LState) int { time.Sleep(time.Millisecond); return 0 }))
		L.SetGlobal("steps", L.NewFunction(func(L *lua.LState) int {
			for {
				checkBudget(L)
			}
		}))
		b := newBudget()
		defer b.close()
		if err := b.arm(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		L.SetContext(b)
		err := L.DoString(code)
		L.RemoveContext()
		took := time.Since(start)
		stopped := b.Err()
		b.disarm()
		if err != nil && !errors.Is(stopped, context.DeadlineExceeded) {
			t.Fatalf("%s: %v, stopped by %v", code, err, stopped)
		}
		return took, err
	}
	t.Run("late, then a few instructions: finishes", func(t *testing.T) {
		if _, err := run(t, "stall() local x = 1 for i = 1, 100 do x = x + i end"); err != nil {
			t.Fatalf("a call that waited past its deadline and then ran 300 instructions was stopped: %v", err)
		}
	})
	for _, tc := range []struct{ name, code string }{
		{"late, then spins", "stall() while true do end"},
		{"late, then a Go loop", "stall() steps()"},
		{"spins from the start", "while true do end"},
		// 1000 naps are a second: stopped, it ends long before
		{"slow builtins", "for i = 1, 1000 do nap() end"},
	} {
		t.Run(tc.name+": stopped", func(t *testing.T) {
			took, err := run(t, tc.code)
			if err == nil {
				t.Fatalf("not stopped; it ran %v", took)
			}
			t.Logf("stopped after %v (budget %v)", took, d)
		})
	}
}
