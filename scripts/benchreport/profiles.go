package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Profile is the summary of a CPU profile that a profile-* step of scripts/bench.sh took
// (scripts/bench.d/profiles.sh): where the CPU goes for the figures it explains.
type Profile struct {
	Step     string   `json:"step"`
	What     string   `json:"what"`
	Explains []string `json:"explains"` // figure ids
	Options  string   `json:"pprof_options"`
	Top      []string `json:"top"` // go tool pprof -top, from its summary line on
	Err      string   `json:"error,omitempty"`
}

type profileSpec struct {
	Step, What string
	Explains   []string
	Options    []string // go tool pprof options besides -top
}

func profileSpecs() []profileSpec {
	return []profileSpec{
		{Step: "profile-qzst", What: "BenchmarkSeqRead, one round, the reader only (qzst.Reader and its decoding goroutines; the fixture and the diagnostic's Go decoder left out)",
			Explains: []string{"qzst.seq_read", "qzst.seq_read.cpu"}, Options: []string{`-focus=qzst\.\(\*Reader\)`}},
		{Step: "profile-tier", What: "BenchmarkWarmToCold/level-3, one round, the move in the benchmark process (the fixture's book left out; the zstd CLI of the baseline runs apart)",
			Explains: []string{"tier.warm_to_cold"}, Options: []string{`-ignore=lifecycletest\.WriteBook|Appender\)\.grower`}},
		{Step: "profile-etl", What: "BenchmarkBackfill/usdm/1core, fifteen rounds, the refinery only (etl.Refine; the fixture and the parsers of the baselines left out)",
			Explains: []string{"etl.backfill", "etl.backfill.coinm", "etl.backfill.spot", "etl.backfill.wall"}, Options: []string{`-focus=etl\.Refine`}},
		{Step: "profile-etl-2cores", What: "BenchmarkBackfill/usdm/2cores, fifteen rounds, the refinery and its goroutines on the second core (decoding ahead, the writeback)",
			Explains: []string{"etl.backfill.2cores", "etl.backfill.coinm.2cores", "etl.backfill.spot.2cores"},
			Options:  []string{`-focus=etl\.Refine|etl\.\(\*ahead\)\.run|format\.NewWriteback`}},
		{Step: "profile-etl-subscribed", What: "BenchmarkBackfill/okx/1core and kraken/1core, three rounds each, the refinery only (etl.Refine), every book message's checksum recomputed",
			Explains: []string{"etl.backfill.okx", "etl.backfill.kraken", "etl.backfill.decode.okx", "etl.backfill.decode.kraken"}, Options: []string{`-focus=etl\.Refine`}},
		{Step: "profile-etl-decode", What: "BenchmarkDecodeCaptures, twenty passes, the venue decoder alone (binance Venue.Decode over the USD-M capture's messages)",
			Explains: []string{"etl.backfill.decode", "etl.backfill.decode.coinm", "etl.backfill.decode.spot"}, Options: []string{`-focus=binance\.Venue\.Decode`}},
		{Step: "profile-fs", What: "chronicle-fs (--cpuprofile) through one round of BenchmarkFS/seq: its cold and remote passes (versitygw's share is fs.remote_cpu.server)",
			Explains: []string{"fs.cold_seq", "fs.remote_seq", "fs.remote_cpu", "peer.s3fs.seq.loopback", "peer.rclone.seq.1gbit", "peer.s3fs.seq.1gbit"}},
		{Step: "profile-views", What: "BenchmarkBookAt of format/bookview, one round: the book at random instants of a mapped books.Gen book (the replay from the snapshot run before each instant; the fixture left out)",
			Explains: []string{"views.book_at_p99.warm", "views.book_at_p99.cold", "views.book_at_p99.remote", "views.top10_random_p99"}, Options: []string{`-focus=Partition\)\.BookAt`}},
		{Step: "profile-fs-pread", What: "chronicle-fs (--cpuprofile) through one round of BenchmarkFS/pread4k: random 4 KiB reads of every tier, the cold and remote ones decoding their frames up to the read",
			Explains: []string{"fs.cold_pread4k_p50", "fs.remote_pread4k_p50", "peer.s3fs.pread4k_p99"}},
		{Step: "profile-fs-npy", What: "chronicle-fs (--cpuprofile) through one round of BenchmarkFS/numpy: the reads of book.npy, warm and cold, with the cold book's decoding left out (the replies of both remain)",
			Explains: []string{"numpy.book_npy_warm"}, Options: []string{`-ignore=qzst`}},
		{Step: "profile-scale-m300-etl", What: "chronicle-etl run through scale.venue's M = 300 ladder (CHRONICLE_CPUPROFILE), most of it at and past the ceiling",
			Explains: []string{"scale.venue.m300", "scale.venue.m300.cpu.etl"}},
		{Step: "profile-scale-m300-feed", What: "chronicle-feed through scale.venue's M = 300 ladder",
			Explains: []string{"scale.venue.m300", "scale.venue.m300.cpu.feed"}},
		{Step: "profile-scale-m300-exsim", What: "chronicle-exsim --load 300 (the simulated venue beside the daemons) through the same ladder",
			Explains: []string{"scale.venue.m300", "scale.venue.m300.cpu.exsim"}},
		{Step: "profile-scale-m300-tier", What: "chronicle-tier through scale.venue's M = 300 ladder",
			Explains: []string{"scale.venue.m300", "scale.venue.m300.cpu.tier"}},
	}
}

// topLines is how many functions each summary keeps.
const topLines = 15

// commonOptions: percentages of what the focus keeps, and the cgo and system-call wrappers
// hidden, so that their time shows under the function that called them (libzstd as
// _Cfunc_ZSTD_*, a FUSE reply as unix.writev) instead of under runtime.cgocall.
var commonOptions = []string{"-relative_percentages",
	`-hide=^runtime\.cgocall$|^internal/runtime/syscall|^syscall\.|^internal/poll\.ignoringEINTR`}

// readProfiles summarises every profile the run left in raw; a profile that pprof cannot
// read is reported with its error rather than failing the report.
func readProfiles(raw string) []Profile {
	var out []Profile
	for _, ps := range profileSpecs() {
		path := filepath.Join(raw, ps.Step+".pprof")
		if !exists(path) {
			continue
		}
		opts := append(append([]string(nil), commonOptions...), ps.Options...)
		args := append([]string{"tool", "pprof", "-top", fmt.Sprintf("-nodecount=%d", topLines)}, opts...)
		p := Profile{Step: ps.Step, What: ps.What, Explains: ps.Explains, Options: strings.Join(opts, " ")}
		if bin := filepath.Join(raw, ps.Step+".test"); exists(bin) {
			args = append(args, bin) // symbols for what the profile does not name itself
		}
		b, err := exec.Command("go", append(args, path)...).CombinedOutput()
		if err != nil {
			p.Err = fmt.Sprintf("go tool pprof %s: %v: %s", path, err, strings.TrimSpace(string(b)))
		} else {
			p.Top = pprofTop(string(b))
		}
		out = append(out, p)
	}
	return out
}

// pprofTop keeps pprof -top's output from its Duration line on (dropping the file, build
// id and time lines before it, which name this machine's paths).
func pprofTop(s string) []string {
	var out []string
	keep := false
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		keep = keep || strings.HasPrefix(l, "Duration:")
		if keep {
			out = append(out, l)
		}
	}
	return out
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// isProfileOutput tells a profile step's saved output, which is not read as rounds.
func isProfileOutput(path string) bool { return strings.HasPrefix(filepath.Base(path), "profile-") }
