package luachan_test

// -gc-min-heap: the real binary's GOGC, as its /metrics reports it, once it has collected.

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestGCMinHeap runs a server with the heap floor on (the default), off, under a memory
// limit, and with the collector off, pushes 64 KiB messages until it has collected, and reads
// the GOGC it runs at: raised over 100 by the floor; 100 without it; raised less under a
// limit; still off with GOGC=off (where a memory limit makes it collect), for a floor must not
// turn on what the operator turned off.
func TestGCMinHeap(t *testing.T) {
	t.Parallel()
	dir := writeScripts(t, map[string]string{"m.lua": metricsLua})
	defaults := []string{"GOGC=100", "GOMEMLIMIT=off"}
	for _, c := range []struct {
		name  string
		env   []string
		flags []string
		gogc  func(float64) bool
		want  string
	}{
		// GOGC and GOMEMLIMIT as a server gets them by default, whatever the test's own are
		{"default floor", defaults, nil, func(p float64) bool { return p > 100 }, "over 100"},
		{"no floor", defaults, []string{"-gc-min-heap", "0"}, func(p float64) bool { return p == 100 }, "100"},
		// a quarter of the limit, 16 MiB: GOGC 400 at most (the runtime's own 4 MiB minimum,
		// scaled), where the whole floor would set 1600
		{"floor under GOMEMLIMIT", []string{"GOGC=100", "GOMEMLIMIT=64MiB"}, nil, func(p float64) bool { return p > 100 && p <= 400 }, "over 100, at most 400"},
		{"GOGC=off", []string{"GOGC=off", "GOMEMLIMIT=48MiB"}, nil, func(p float64) bool { return p >= 1<<63 }, "off (the runtime's -1 as a uint64)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := startServerEnv(t, c.env, dir, append([]string{"-max-rate", "0", "-log-level", "info"}, c.flags...)...)
			ws := s.dial(t, "vsn=2.0.0")
			ws.join("m:gc", "j", `{}`, `{}`)
			push := fmt.Sprintf(`["j","%%d","m:gc","fill",{"b":"%s"}]`, strings.Repeat("x", 64<<10))
			ref := 0
			// Two collections: the finalizer that sets GOGC after the first has surely run
			// by the end of the second (finalizers run as soon as a collection ends).
			err := poll(60*time.Second, func() error {
				if n := scrapeMetrics(t, s)["go_gc_duration_seconds_count"]; n < 2 {
					for range 64 {
						ref++
						ws.send(fmt.Sprintf(push, ref))
						ws.expect(fmt.Sprintf(`["j","%d","m:gc","phx_reply",{"status":"ok","response":{}}]`, ref))
					}
					return fmt.Errorf("%v collections after %d pushes of 64 KiB", n, ref)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			err = poll(5*time.Second, func() error {
				if p := scrapeMetrics(t, s)["go_gc_gogc_percent"]; !c.gogc(p) {
					return fmt.Errorf("go_gc_gogc_percent %v, want %s", p, c.want)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
