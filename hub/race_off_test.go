//go:build !race

package hub_test

// raceEnabled reports whether this test binary was built with -race.
const raceEnabled = false
