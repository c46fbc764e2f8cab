package main

import (
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

func TestRequiredIDsHaveSpecs(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range specs() {
		if seen[s.ID] {
			t.Errorf("id %s specified twice", s.ID)
		}
		seen[s.ID] = true
		if s.Goal.set() && s.Goal.On == "ratio" && s.Baseline == "" {
			t.Errorf("%s: a goal on the ratio needs a baseline", s.ID)
		}
	}
	for _, id := range required {
		if !seen[id] {
			t.Errorf("required id %s has no spec", id)
		}
	}
}

func TestParseBenchLine(t *testing.T) {
	name, m, ok := parseBenchLine("BenchmarkAppendLatency/book64B-2   \t 2000000\t        71.00 ns/op\t        60.00 p50_ns\t       190.0 p99_ns\t 320.0 base_p99_ns")
	if !ok || name != "BenchmarkAppendLatency/book64B" || m["p99_ns"] != 190 || m["base_p99_ns"] != 320 || m["ns/op"] != 71 {
		t.Fatalf("got %q %v %v", name, m, ok)
	}
	for _, bad := range []string{"BenchmarkFS", "--- BENCH: BenchmarkFS-2", "    bench_test.go:12: figure {}", "ok  \tgithub.com/x\t1.2s"} {
		if _, _, ok := parseBenchLine(bad); ok {
			t.Errorf("parsed %q", bad)
		}
	}
}

// TestReport runs the whole tool on a figures file and a bench output and checks medians,
// ratios, goals, the markdown and that only the README's marked section changes.
func TestReport(t *testing.T) {
	dir := t.TempDir()
	figs := filepath.Join(dir, "figures.jsonl")
	os.WriteFile(figs, []byte(strings.Join([]string{
		`{"id":"fs.cold_seq","value":1000,"baseline":500,"unit":"MB/s"}`,
		`{"id":"fs.cold_seq","value":900,"baseline":700,"unit":"MB/s"}`,
		`{"id":"fs.cold_seq","value":1200,"baseline":600,"unit":"MB/s"}`,
		`{"id":"tier.warm_to_cold","value":300,"baseline":400}`,
		`{"note_id":"peer.options","note":"rclone --vfs-cache-mode off"}`,
	}, "\n")), 0o644)
	raw := filepath.Join(dir, "raw")
	os.Mkdir(raw, 0o755)
	os.WriteFile(filepath.Join(raw, "format.txt"), []byte(
		"goos: linux\nBenchmarkAppendLatency/book64B-2 \t 100\t 70.0 ns/op\t 150 p99_ns\t 300 base_p99_ns\n"+
			"BenchmarkAppendLatency/book64B-2 \t 100\t 70.0 ns/op\t 250 p99_ns\t 300 base_p99_ns\n"+
			"BenchmarkAppendLatency/book64B-2 \t 100\t 70.0 ns/op\t 180 p99_ns\t 310 base_p99_ns\n"), 0o644)
	readme := filepath.Join(dir, "README.md")
	os.WriteFile(readme, []byte("# x\n\nbefore\n<!-- bench:begin -->\nold table\n<!-- bench:end -->\nafter\n"), 0o644)
	out := filepath.Join(dir, "bench")
	if err := run(figs, raw, out, readme, "make bench", "", "64MiB"); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| `fs.cold_seq` |", "| 1000 (900-1200) | MB/s | 600 zstd -dc of the same .zst | 2.00x (1.29-2.00) | >= 1.5x | holds | 3 |",
		"| `tier.warm_to_cold` |", "0.75x | >= 1.1x | **does not hold** | 1 |",
		"\n  - bound: CPU: the move and its baseline", // what limits a goal that does not hold
		"| `format.append_p99` |", "| 180 (150-250) | ns |", "0.581x (0.5-0.833) | <= 1.1x | holds | 3 |",
		"| `peer.rclone.seq.loopback` |", "not measured",
		"- peer.options: rclone --vfs-cache-mode off",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	js, _ := os.ReadFile(filepath.Join(out, "report.json"))
	if n := strings.Count(string(md), "  - bound: "); n != 1 {
		t.Errorf("report.md gives %d bounds, want 1 (the goal that holds has none)", n)
	}
	for _, want := range []string{`"id": "fs.cold_seq"`, `"holds": false`, `"bound": "CPU: the move`, `"cpu":`, `"commit":`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("report.json lacks %q", want)
		}
	}
	rd, _ := os.ReadFile(readme)
	s := string(rd)
	if !strings.HasPrefix(s, "# x\n\nbefore\n<!-- bench:begin -->\n") || !strings.HasSuffix(s, "<!-- bench:end -->\nafter\n") || strings.Contains(s, "old table") {
		t.Errorf("README rewritten outside its section or not at all:\n%s", s)
	}
	if !strings.Contains(s, "| `fs.cold_seq` | 1000 MB/s |") || strings.Contains(s, "`tier.warm_to_cold.cpu`") {
		t.Errorf("README section: want required and goal figures only:\n%s", s)
	}
}

func TestBadFigures(t *testing.T) {
	dir := t.TempDir()
	for name, line := range map[string]string{
		"unknown id": `{"id":"fs.nope","value":1}`,
		"wrong unit": `{"id":"fs.cold_seq","value":1,"unit":"GB/s"}`,
		"no value":   `{"id":"fs.cold_seq"}`,
		"not json":   `{"id":`,
	} {
		p := filepath.Join(dir, "f.jsonl")
		os.WriteFile(p, []byte("\n"+line+"\n"), 0o644)
		err := readFigures(p, map[string][]Round{}, map[string]string{})
		if err == nil || !strings.Contains(err.Error(), "f.jsonl:2") {
			t.Errorf("%s: err %v, want one naming f.jsonl:2", name, err)
		}
	}
	if err := rewriteReadme(filepath.Join(dir, "f.jsonl"), &Report{}); err == nil {
		t.Error("a README without markers was rewritten")
	}
}

// TestProfiles: a profile step's CPU profile is summarised in the report (go tool pprof, as
// the reader would run it), and its saved benchmark output is not read as rounds.
func TestProfiles(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "raw")
	os.Mkdir(raw, 0o755)
	f, err := os.Create(filepath.Join(raw, "profile-fs.pprof"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	spin(300 * time.Millisecond)
	pprof.StopCPUProfile()
	f.Close()
	os.WriteFile(filepath.Join(raw, "profile-fs.txt"), []byte(
		"BenchmarkSeqRead-2 \t 1\t 70.0 ns/op\t 5 MB/s\t 10 cli_MB/s\n"), 0o644)
	out := filepath.Join(dir, "bench")
	if err := run("", raw, out, "", "make bench", "", ""); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	for _, want := range []string{"## Profiles", "### profile-fs", "`fs.remote_seq`", "flat%", "spin"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(string(md), "| 5 | MB/s |") {
		t.Errorf("a profiled round was read as a measured one:\n%s", md)
	}
	js, _ := os.ReadFile(filepath.Join(out, "report.json"))
	if !strings.Contains(string(js), `"step": "profile-fs"`) {
		t.Errorf("report.json lacks the profile:\n%s", js)
	}
}

//go:noinline
func spin(d time.Duration) {
	x := 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := 0; i < 1000; i++ {
			x += i * i
		}
	}
	sink = x
}

var sink int
