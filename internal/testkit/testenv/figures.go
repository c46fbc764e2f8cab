package testenv

import (
	"encoding/json"
	"flag"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Figure is one round of one benchmark figure: our value and the baseline measured in the
// same round. `make bench` collects the rounds of every id into bench/report.* (the tool in
// scripts/benchreport holds each id's unit, goal and description; docs/benchmarks.md).
type Figure struct {
	ID       string  `json:"id"`
	Value    float64 `json:"value"`
	Baseline float64 `json:"baseline,omitempty"`
	Unit     string  `json:"unit,omitempty"` // of value and baseline; the tool checks it
	Note     string  `json:"note,omitempty"` // free text shown beside the figure
}

// FiguresEnv names the JSON-lines file benchmarks append their figures to.
const FiguresEnv = "CHRONICLE_BENCH_FIGURES"

var figMu sync.Mutex

// Emit appends one round of a figure to $CHRONICLE_BENCH_FIGURES (one JSON object a line)
// and logs it; without the variable it only logs. Benchmarks call it once per round.
func Emit(b testing.TB, f Figure) {
	b.Helper()
	line, err := json.Marshal(f)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("figure %s", line)
	appendLine(b, line)
}

// Note records a free-text fact about the run (options a peer was mounted with, the size
// of a fixture) under key; the report lists notes after the figures.
func Note(b testing.TB, key, text string) {
	b.Helper()
	line, err := json.Marshal(map[string]string{"note_id": key, "note": text})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("note %s", line)
	appendLine(b, line)
}

func appendLine(b testing.TB, line []byte) {
	p := os.Getenv(FiguresEnv)
	if p == "" {
		return
	}
	figMu.Lock()
	defer figMu.Unlock()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		b.Fatalf("%s=%s: %v", FiguresEnv, p, err)
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		b.Fatalf("%s=%s: %v", FiguresEnv, p, err)
	}
}

// Probe reports whether this call of a leaf benchmark is the framework's first call with
// N = 1, made before the call with the N of `-benchtime Nx` (N > 1). Benchmarks that run
// their own rounds return at once from it, so each round runs once and is emitted once.
// Not for benchmarks with sub-benchmarks (those are called once, with N = 1).
func Probe(b *testing.B) bool {
	f := flag.Lookup("test.benchtime")
	if f == nil || b.N != 1 {
		return false
	}
	s := f.Value.String()
	if !strings.HasSuffix(s, "x") {
		return false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(s, "x"))
	return err == nil && n > 1
}
