// Command benchreport collects the figures of one `make bench` run into bench/report.json and
// bench/report.md and rewrites the generated performance table in README.md.
//
// Figures come from two places: the JSON-lines file the benchmarks append to
// ($CHRONICLE_BENCH_FIGURES, one object per round, written by testenv.Emit), and the saved
// `go test -bench` output of benchmarks that report metrics (one result line per round,
// -count N). spec.go says which id comes from where, its unit and its goal.
//
//	go run ./scripts/benchreport -figures bench/raw/figures.jsonl -raw bench/raw \
//	    -out bench -readme README.md -command "make bench"
//
// See docs/benchmarks.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

func main() {
	figures := flag.String("figures", "", "JSON-lines file of figure rounds (testenv.Emit)")
	raw := flag.String("raw", "", "directory of saved `go test -bench` outputs (*.txt)")
	out := flag.String("out", "bench", "directory to write report.json and report.md into")
	readme := flag.String("readme", "", "README to rewrite between <!-- bench:begin --> and <!-- bench:end --> (empty: none)")
	command := flag.String("command", "", "the command that ran the benchmarks, for the report")
	started := flag.String("started", "", "RFC 3339 time the run started (default: now)")
	benchBytes := flag.String("bench-bytes", os.Getenv("CHRONICLE_BENCH_BYTES"), "CHRONICLE_BENCH_BYTES of the run")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: go run ./scripts/benchreport [flags]\n\n"+
			"Collects benchmark figures into a report (docs/benchmarks.md). Example:\n"+
			"  go run ./scripts/benchreport -figures bench/raw/figures.jsonl -raw bench/raw -out bench -readme README.md\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*figures, *raw, *out, *readme, *command, *started, *benchBytes); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(figures, raw, out, readme, command, started, benchBytes string) error {
	rounds := map[string][]Round{}
	notes := map[string]string{}
	if figures != "" {
		if err := readFigures(figures, rounds, notes); err != nil {
			return err
		}
	}
	if raw != "" {
		files, _ := filepath.Glob(filepath.Join(raw, "*.txt"))
		for _, f := range files {
			if isProfileOutput(f) {
				continue // one profiled round, not measured
			}
			if err := readBenchOutput(f, specs(), rounds); err != nil {
				return err
			}
		}
	}
	rep, err := build(specs(), rounds, notes)
	if err != nil {
		return err
	}
	if raw != "" {
		rep.Profiles = readProfiles(raw)
	}
	rep.Machine = machine()
	rep.Command, rep.BenchBytes = command, benchBytes
	rep.Finished = time.Now().UTC().Format(time.RFC3339)
	rep.Started = started
	if rep.Started == "" {
		rep.Started = rep.Finished
	}
	rep.Commit, rep.Dirty = gitCommit()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(out, "report.json"), rep); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "report.md"), []byte(markdown(rep)), 0o644); err != nil {
		return err
	}
	if readme != "" {
		if err := rewriteReadme(readme, rep); err != nil {
			return err
		}
	}
	fmt.Printf("benchreport: %d figures (%d goals: %d hold, %d do not, %d not measured) -> %s\n",
		len(rep.Figures), rep.Summary.Goals, rep.Summary.Hold, rep.Summary.NotHold, rep.Summary.Missing, filepath.Join(out, "report.md"))
	return nil
}
