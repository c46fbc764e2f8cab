package lifecycletest

import (
	"testing"

	"github.com/chronicle/chronicle/layout"
)

// CrashNow is the clock of the crash fixture: at it, hot 2024-08-08 goes hot -> warm ->
// cold -> remote, warm 2025-06-01 to cold, cold 2023-01-01 to remote, and hot 2025-12-31
// (its day ended 12 h ago) only to warm.
const CrashNow = "2026-01-01T12:00:00Z"

// Crash is the fixture of the tests that crash chronicle-tier (kill -9, power cut) while
// one apply moves four partitions through every policy: where each starts and where the
// policies put it at CrashNow.
type Crash struct {
	Parts      []Partition
	From, Want []layout.Tier
}

// NewCrash generates the fixture's four partitions (binance-perp eth-usdt, 3000 records each).
func NewCrash(t testing.TB) Crash {
	key := func(date string) layout.Key { return layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: date} }
	return Crash{
		Parts: []Partition{
			NewPartition(t, key("2024-08-08"), 3000, 1),
			NewPartition(t, key("2025-06-01"), 3000, 2),
			NewPartition(t, key("2023-01-01"), 3000, 3),
			NewPartition(t, key("2025-12-31"), 3000, 4),
		},
		From: []layout.Tier{layout.Hot, layout.Warm, layout.Cold, layout.Hot},
		Want: []layout.Tier{layout.Remote, layout.Cold, layout.Remote, layout.Warm},
	}
}

// Place puts every partition into the tier it starts in.
func (c Crash) Place(t testing.TB, e *Env) {
	t.Helper()
	for i, p := range c.Parts {
		e.Place(t, p, c.From[i])
	}
}

// CheckFinal asserts the invariants after a clean run (Env.Check) and that every partition
// is where the policies put it.
func (c Crash) CheckFinal(t testing.TB, e *Env) {
	t.Helper()
	got := e.Check(t, c.Parts)
	for i, p := range c.Parts {
		if got[p.Key] != c.Want[i] {
			t.Fatalf("%s in %s, want %s", p.Key, got[p.Key], c.Want[i])
		}
	}
}
