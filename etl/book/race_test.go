//go:build race

package book_test

// raceEnabled: the race detector slows the long randomized tests by ten; they take fewer
// steps under it (make test runs with -race, benchmarks and plain runs do all of them).
const raceEnabled = true
