//go:build race

package lifecycle_test

// raceEnabled: the race detector makes each faulted run about ten times slower, so the
// fault sweep faults every third step under it (the sweep without -race covers them all).
const raceEnabled = true
