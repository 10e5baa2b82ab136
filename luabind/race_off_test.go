//go:build !race

package luabind_test

// raceEnabled reports whether this test binary was built with -race, which slows Lua down
// about tenfold.
const raceEnabled = false
