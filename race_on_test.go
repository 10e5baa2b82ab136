//go:build race

package luachan_test

// raceEnabled reports whether this test binary was built with -race, so the server
// binary under test is built the same way.
const raceEnabled = true
