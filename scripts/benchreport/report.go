package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

// Round is one measurement of a figure beside its baseline from the same round.
type Round struct {
	Value    float64
	Baseline float64 // 0: none
}

// Figure is one id of the report: medians over its rounds.
type Figure struct {
	ID            string   `json:"id"`
	What          string   `json:"what"`
	Unit          string   `json:"unit"`
	Rounds        int      `json:"rounds"`
	Value         *float64 `json:"value"` // median; null when not measured
	Min           *float64 `json:"min,omitempty"`
	Max           *float64 `json:"max,omitempty"`
	Baseline      *float64 `json:"baseline,omitempty"` // median
	BaselineLabel string   `json:"baseline_label,omitempty"`
	Ratio         *float64 `json:"ratio,omitempty"` // median of the per-round value/baseline
	RatioMin      *float64 `json:"ratio_min,omitempty"`
	RatioMax      *float64 `json:"ratio_max,omitempty"`
	Goal          string   `json:"goal,omitempty"`
	GoalSpec      *Goal    `json:"goal_spec,omitempty"`
	Holds         *bool    `json:"holds"` // null: no goal, or not measured
	Why           string   `json:"why,omitempty"`
	Bound         string   `json:"bound,omitempty"` // what limits it; only when the goal does not hold
	Notes         []string `json:"notes,omitempty"`
}

// Machine is where the run happened.
type Machine struct {
	CPU      string  `json:"cpu"`
	Cores    int     `json:"cores"`
	MemoryGB float64 `json:"memory_gib"`
	Kernel   string  `json:"kernel"`
	Load     string  `json:"loadavg_at_end"`
	Go       string  `json:"go"`
}

// Report is bench/report.json.
type Report struct {
	Started    string            `json:"started"`
	Finished   string            `json:"finished"`
	Commit     string            `json:"commit"`
	Dirty      bool              `json:"dirty"` // uncommitted changes in the tree when it ran
	Command    string            `json:"command"`
	BenchBytes string            `json:"bench_bytes"`
	Machine    Machine           `json:"machine"`
	Figures    []Figure          `json:"figures"`
	Notes      map[string]string `json:"notes,omitempty"`
	Profiles   []Profile         `json:"profiles,omitempty"`
	Summary    struct {
		Goals   int `json:"goals"`
		Hold    int `json:"hold"`
		NotHold int `json:"not_hold"`
		Missing int `json:"not_measured"`
	} `json:"summary"`
}

type figureLine struct {
	ID       string   `json:"id"`
	Value    *float64 `json:"value"`
	Baseline float64  `json:"baseline"`
	Unit     string   `json:"unit"`
	Note     string   `json:"note"`
	NoteID   string   `json:"note_id"`
}

// readFigures reads the benchmarks' JSON lines into rounds and notes. Figure notes are kept
// as notes keyed by the figure id.
func readFigures(path string, rounds map[string][]Round, notes map[string]string) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil // no benchmark emitted anything: every figure is reported missing
	}
	if err != nil {
		return err
	}
	known := map[string]Spec{}
	for _, s := range specs() {
		known[s.ID] = s
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var f figureLine
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			return fmt.Errorf("%s:%d: %v", path, n, err)
		}
		switch {
		case f.NoteID != "":
			notes[f.NoteID] = f.Note
		case f.ID == "" || f.Value == nil:
			return fmt.Errorf("%s:%d: a figure needs an id and a value", path, n)
		default:
			s, ok := known[f.ID]
			if !ok {
				return fmt.Errorf("%s:%d: figure id %q is not in scripts/benchreport/spec.go", path, n, f.ID)
			}
			if f.Unit != "" && f.Unit != s.Unit {
				return fmt.Errorf("%s:%d: figure %s in %s, the spec says %s", path, n, f.ID, f.Unit, s.Unit)
			}
			rounds[f.ID] = append(rounds[f.ID], Round{Value: *f.Value, Baseline: f.Baseline})
			if f.Note != "" {
				notes[f.ID] = f.Note
			}
		}
	}
	return sc.Err()
}

// benchLine matches a result line of `go test -bench`: name, iterations, metrics.
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.+)$`)

// parseBenchLine returns the name (without the GOMAXPROCS suffix) and metrics of a result line.
func parseBenchLine(line string) (string, map[string]float64, bool) {
	m := benchLine.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		return "", nil, false
	}
	f := strings.Fields(m[3])
	if len(f)%2 != 0 {
		return "", nil, false
	}
	metrics := map[string]float64{}
	for i := 0; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return "", nil, false
		}
		metrics[f[i+1]] = v
	}
	return m[1], metrics, true
}

// readBenchOutput adds one round per result line of a spec'd benchmark in a saved output.
func readBenchOutput(path string, ss []Spec, rounds map[string][]Round) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, metrics, ok := parseBenchLine(line)
		if !ok {
			continue
		}
		for _, s := range ss {
			if s.Bench == nil || s.Bench.Name != name {
				continue
			}
			v, ok := metrics[s.Bench.Value]
			if !ok {
				return fmt.Errorf("%s: %s reports no %q (spec %s)", path, name, s.Bench.Value, s.ID)
			}
			r := Round{Value: v * s.Bench.Scale}
			if s.Bench.Baseline != "" {
				r.Baseline = metrics[s.Bench.Baseline] * s.Bench.Scale
			}
			rounds[s.ID] = append(rounds[s.ID], r)
		}
	}
	return nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minmax(v []float64) (float64, float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range v {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return lo, hi
}

func ptr[T any](v T) *T { return &v }

// build computes every spec'd figure from its rounds, in spec order.
func build(ss []Spec, rounds map[string][]Round, notes map[string]string) (*Report, error) {
	rep := &Report{Notes: map[string]string{}}
	for k, v := range notes {
		rep.Notes[k] = v
	}
	for _, s := range ss {
		f := Figure{ID: s.ID, What: s.What, Unit: s.Unit, BaselineLabel: s.Baseline, Goal: s.Goal.String(), Why: s.Why}
		if s.Goal.set() {
			g := s.Goal
			f.GoalSpec = &g
			rep.Summary.Goals++
		}
		if n, ok := notes[s.ID]; ok {
			f.Notes = append(f.Notes, n)
			delete(rep.Notes, s.ID)
		}
		rs := rounds[s.ID]
		f.Rounds = len(rs)
		if len(rs) == 0 {
			if s.Goal.set() {
				rep.Summary.Missing++
			}
			rep.Figures = append(rep.Figures, f)
			continue
		}
		var vals, bases, ratios []float64
		for _, r := range rs {
			vals = append(vals, r.Value)
			if r.Baseline != 0 {
				bases = append(bases, r.Baseline)
				ratios = append(ratios, r.Value/r.Baseline)
			}
		}
		f.Value = ptr(median(vals))
		lo, hi := minmax(vals)
		f.Min, f.Max = ptr(lo), ptr(hi)
		if len(bases) > 0 {
			f.Baseline = ptr(median(bases))
			f.Ratio = ptr(median(ratios))
			lo, hi := minmax(ratios)
			f.RatioMin, f.RatioMax = ptr(lo), ptr(hi)
		}
		if s.Goal.set() {
			var on *float64
			if s.Goal.On == "ratio" {
				on = f.Ratio
			} else {
				on = f.Value
			}
			if on == nil {
				return nil, fmt.Errorf("figure %s: the goal is on the ratio but no round has a baseline", s.ID)
			}
			h := s.Goal.holds(*on)
			f.Holds = &h
			if h {
				rep.Summary.Hold++
			} else {
				rep.Summary.NotHold++
				f.Bound = s.Bound
			}
		}
		rep.Figures = append(rep.Figures, f)
	}
	return rep, nil
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				m.MemoryGB = math.Round(kb/(1<<20)*10) / 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.Load = strings.Join(f[:3], " ")
		}
	}
	return m
}

func gitCommit() (string, bool) {
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown", false
	}
	// The report and the README's table are what the run writes: a previous run's copies,
	// not yet committed, do not make the measured code differ from the commit.
	st, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench", ":!README.md").Output()
	return strings.TrimSpace(string(out)), len(bytes.TrimSpace(st)) > 0
}

func writeJSON(path string, rep *Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// fmtNum prints a figure with three significant digits (at least the integer part).
func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
