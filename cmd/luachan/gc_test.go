package main

import (
	"math"
	"testing"
)

func TestGCPercent(t *testing.T) {
	const MiB = 1 << 20
	for _, c := range []struct {
		name               string
		live, roots, floor uint64
		least, want        int
	}{
		{"small live heap: the runtime's own minimum, scaled, is the floor", 1 * MiB, MiB / 4, 64 * MiB, 100, 1600},
		{"goal at the floor", 10 * MiB, 1 * MiB, 64 * MiB, 100, 490}, // 10 + 11*4.9 ≈ 64
		{"half the floor live: GOGC's goal is past it", 32 * MiB, 1 * MiB, 64 * MiB, 100, 100},
		{"live heap past the floor", 80 * MiB, 1 * MiB, 64 * MiB, 100, 100},
		{"the process's own GOGC when larger", 10 * MiB, 1 * MiB, 64 * MiB, 600, 600},
		{"no floor", 1 * MiB, 0, 0, 100, 100},
		{"no live heap read yet", 0, 0, 64 * MiB, 100, 100},
		// GOGC is an int32: a floor of a PiB must not wrap it to -1, which turns collection off
		{"the largest floor", 1, 0, maxGCFloor, 100, math.MaxInt32},
	} {
		if got := gcPercent(c.live, c.roots, c.floor, c.least); got != c.want {
			t.Errorf("%s: gcPercent(%d, %d, %d, %d) = %d, want %d", c.name, c.live, c.roots, c.floor, c.least, got, c.want)
		}
	}
}
