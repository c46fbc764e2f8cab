package main

import (
	"fmt"
	"runtime"
	"strconv"
)

// The figures of the report: what each id measures, its unit, what its baseline is, and its
// goal. One table, so that the goals live in one place; the benchmarks only measure.
//
// The ratio is always value / baseline of the same round. For throughputs higher is better
// (goal ">="); for latencies, CPU time and bytes lower is better (goal "<=" or "<").

// Goal is a bound on the median ratio (On "ratio") or the median value (On "value").
type Goal struct {
	On string  `json:"on"` // "ratio" or "value"
	Op string  `json:"op"` // ">=", "<=", "<"
	X  float64 `json:"x"`
}

func (g Goal) set() bool { return g.Op != "" }

func (g Goal) String() string {
	if !g.set() {
		return ""
	}
	if g.On == "ratio" {
		return g.Op + " " + strconv.FormatFloat(g.X, 'g', -1, 64) + "x"
	}
	return g.Op + " " + strconv.FormatFloat(g.X, 'g', -1, 64)
}

func (g Goal) holds(v float64) bool {
	switch g.Op {
	case ">=":
		return v >= g.X
	case "<=":
		return v <= g.X
	case "<":
		return v < g.X
	}
	return false
}

// BenchSrc takes a figure from `go test -bench` output: every result line of benchmark Name
// (without the -GOMAXPROCS suffix) is one round; Value and Baseline name its metrics (units
// as printed by b.ReportMetric), Scale converts both into the spec's unit.
type BenchSrc struct {
	Name     string
	Value    string
	Baseline string
	Scale    float64
}

// Spec describes one figure id.
type Spec struct {
	ID       string
	What     string
	Unit     string
	Baseline string // what the baseline is (same run)
	Goal     Goal
	Bench    *BenchSrc // nil: the benchmark emits rounds itself (testenv.Emit)
	Why      string    // where the goal comes from, when not obvious
	// Bound says what limits the figure when its goal does not hold, naming the figures of
	// the same report that show it (the report lists it under the goals that do not hold).
	Bound string
}

func ge(x float64) Goal  { return Goal{On: "ratio", Op: ">=", X: x} }
func le(x float64) Goal  { return Goal{On: "ratio", Op: "<=", X: x} }
func lt(x float64) Goal  { return Goal{On: "ratio", Op: "<", X: x} }
func vle(x float64) Goal { return Goal{On: "value", Op: "<=", X: x} }
func vlt(x float64) Goal { return Goal{On: "value", Op: "<", X: x} }

// researchSpecs are the research host's figures (BenchmarkBucketScale, docs/research-hosts.md):
// a bucket of 100,000 partitions mounted with only the remote tier.
func researchSpecs() []Spec {
	return []Spec{
		{ID: "research.mount", What: "chronicle-fs start to a listable v1, bucket of 100,000 partitions", Unit: "s",
			Baseline: "ListObjectsV2 of v1/ with a delimiter (SDK, same server)", Goal: vlt(1)},
		{ID: "research.ls_cold", What: "ls of a symbol with 3,650 dates, first time", Unit: "s",
			Baseline: "ListObjectsV2 of the symbol with a delimiter, every page", Goal: vlt(1)},
		{ID: "research.ls_cached", What: "ls of the same symbol again", Unit: "ms",
			Baseline: "readdir of the directory in versitygw's posix backend", Goal: vlt(10)},
		{ID: "research.find", What: "find of the whole tree (every book.q), each symbol with its capture host's catalog", Unit: "s",
			Baseline: "flat ListObjectsV2 of every key in the bucket", Goal: le(1.5),
			Why:   "issue 27: a catalog per symbol (one GET) instead of a listing and a stub GET per partition",
			Bound: "FUSE round trips: find costs eight requests per partition (open, two reads and release of the date and of views/; readdirplus answered their names and the kernel keeps them and their attributes: no lookup, no getattr), answered from memory once the symbol's catalog is read; the daemon's CPU is a small share of the find's time (CHRONICLE_BENCH_FS_CPUPROFILE on BenchmarkBucketScale), so the figure follows the machine's scheduling latency, which the other processes' load raises more than the baseline's server-side listing"},
		{ID: "research.rss", What: "chronicle-fs peak RSS after the find", Unit: "MiB", Goal: vlt(200)},
	}
}

// venueSpecs are a whole venue on one capture host (BenchmarkScaleVenue, issue 27 A):
// chronicle-exsim --load M beside chronicle-feed, chronicle-etl run and chronicle-tier on
// this host; each M's figures are those of the highest pace held for CHRONICLE_SCALE_HOLD.
func venueSpecs() []Spec {
	var s []Spec
	for _, m := range []int{50, 100, 300} {
		id := fmt.Sprintf("scale.venue.m%d", m)
		rate := Spec{ID: id, What: fmt.Sprintf("%d symbols: the highest message rate held (CHRONICLE_SCALE_HOLD, 10m in make bench) with the refinery's lag p99 <= 1 s, no gap, no reconnect, exsim on schedule", m),
			Unit: "msgs/s", Baseline: fmt.Sprintf("the recording's own rate for %d symbols (speed 1: each as busy as USD-M ETHUSDT at 2024-08-08 23:54-00:00Z)", m)}
		if m == 300 {
			rate.Goal = ge(1)
			rate.Why = "issue 27: the whole of USD-M (about 300 perpetuals) at its busiest hour's rate on one 2-core host with exsim beside it; every symbol as busy as ETHUSDT (the second busiest) bounds that rate from above"
			rate.Bound = "named per run in the figure's note (the pace that failed next and why, each process's share of a core); the profiles of each daemon (profile-scale-m300-*). Memory: the hot tier in /dev/shm keeps the journal and the day's partitions (about 0.74 KB a message), so a step stops at half the tmpfs and a hold at the goal's rate does not fit; then only a probe ran (.probe) and the figure is 0. On a loaded 2-core host the refinery bounds it: its checkpoint every second gob-encodes every open book's state (about 40% of its CPU with 300 books, whatever the rate), the per-partition pwrites of each live batch about a sixth, the messages themselves a quarter; exsim's rendering of the copies is the next process"
		}
		s = append(s, rate,
			Spec{ID: id + ".probe", What: fmt.Sprintf("%d symbols: the highest rate a 15 s probe held, when memory ended the ladder before a hold", m), Unit: "msgs/s",
				Baseline: fmt.Sprintf("the recording's own rate for %d symbols", m)},
			Spec{ID: id + ".lag_p99", What: fmt.Sprintf("%d symbols: the refinery's lag (chronicle_etl_lag_seconds) p99 at the held rate", m), Unit: "s"})
		for _, d := range []string{"feed", "etl", "tier", "exsim"} {
			s = append(s, Spec{ID: id + ".cpu." + d, What: fmt.Sprintf("%d symbols: chronicle-%s's CPU per 1,000 msgs/s at the held rate", m, d), Unit: "%core"})
		}
		for _, d := range []string{"feed", "etl", "tier"} {
			s = append(s, Spec{ID: id + ".rss." + d, What: fmt.Sprintf("%d symbols: chronicle-%s's anonymous RSS at the held rate (mapped journal and partition pages not counted)", m, d), Unit: "MiB"})
		}
		s = append(s,
			Spec{ID: id + ".journal", What: fmt.Sprintf("%d symbols: journal bytes per 1,000 msgs/s, per second (= per 1,000 messages)", m), Unit: "KB"},
			Spec{ID: id + ".partition", What: fmt.Sprintf("%d symbols: partition bytes (book.q committed, meta.json, index/) per 1,000 msgs/s, per second", m), Unit: "KB"})
	}
	return s
}

// fleetSpecs are the research fleet's figures (BenchmarkResearchFleet, docs/research-fleet.md).
func fleetSpecs() []Spec {
	var s []Spec
	for _, n := range []int{1, 2, 4} {
		id := fmt.Sprintf("scale.research.n%d", n)
		s = append(s,
			Spec{ID: id, What: fmt.Sprintf("the Dask example over every partition of the bucket, %d worker(s), each a research host with its own mount and 1 Gbit/s link", n),
				Unit: "partitions/s", Baseline: "the same computation in one process without Dask, one research host (mount and link alike), same partitions",
				Bound: "named per round in the figure's note: the busiest link against 1 Gbit/s, else the cores (decoders: chronicle-fs and the workers; store: versitygw) when they are near full"},
			Spec{ID: id + ".bytes", What: fmt.Sprintf("bytes over the workers' links per second, %d worker(s)", n), Unit: "MB/s",
				Baseline: "the one process's MB/s over its link"},
		)
	}
	return s
}

func peerSpecs() []Spec {
	var s []Spec
	for _, link := range []struct{ id, what string }{{"", "loopback"}, {".1gbit", "1 Gbit/s link"}} {
		// On loopback a peer reading uncompressed objects pays no decoding and no link: the
		// goal is never to be slower. Over the 1 Gbit/s link the peers are link-bound and we
		// move about a sixth of their bytes.
		seqGoal := ge(1)
		if link.id != "" {
			seqGoal = ge(5)
		}
		for _, p := range []string{"rclone", "s3fs"} {
			lid := link.id
			if lid == "" {
				lid = ".loopback"
			}
			s = append(s,
				Spec{ID: "peer." + p + ".seq" + lid, What: "whole book, cold caches, chronicle-fs (remote tier, seekable zstd) vs " + p + " mount (same book uncompressed), " + link.what,
					Unit: "MB/s", Baseline: p + " mount, same bucket and server", Goal: seqGoal, Bound: seqBound(link.id, p)},
				Spec{ID: "peer." + p + ".seq_bytes" + lid, What: "bytes over the link for the whole book: chronicle-fs vs " + p + ", " + link.what,
					Unit: "MB", Baseline: p},
				Spec{ID: "peer." + p + ".pread4k_p50" + link.id, What: "random 4 KiB pread p50, fresh mounts: chronicle-fs vs " + p + ", " + link.what,
					Unit: "ms", Baseline: p},
				Spec{ID: "peer." + p + ".pread4k_p99" + link.id, What: "random 4 KiB pread p99, fresh mounts: chronicle-fs vs " + p + ", " + link.what,
					Unit: "ms", Baseline: p, Goal: lt(1), Bound: p99Bound(p)},
				Spec{ID: "peer." + p + ".pread4k_bytes" + link.id, What: "bytes over the link for the same random reads: chronicle-fs vs " + p + ", " + link.what,
					Unit: "MB", Baseline: p, Goal: lt(1)},
				Spec{ID: "peer." + p + ".first_byte" + link.id, What: "open and first random 4 KiB pread on a fresh mount, cold caches: chronicle-fs vs " + p + ", " + link.what,
					Unit: "ms", Baseline: p, Why: "a research host opens thousands of partitions: the wait for a file's first bytes, beside the bytes moved"},
			)
			if p == "rclone" {
				s[len(s)-4].Goal = lt(1) // p50 below rclone's; s3fs's p50 is a page-cache read
			}
		}
		lid := link.id
		if lid == "" {
			lid = ".loopback"
		}
		s = append(s,
			Spec{ID: "peer.fetch_window" + lid, What: "chronicle-fs's whole-book read, " + link.what + ": the largest window of compressed runs it kept fetched ahead", Unit: "MB"},
			Spec{ID: "peer.inflight" + lid, What: "chronicle-fs's whole-book read, " + link.what + ": compressed bytes in ranged GETs in flight, mean over the read", Unit: "MB"})
	}
	return s
}

// seqBound is what limits chronicle-fs's sequential read against a peer.
func seqBound(link, peer string) string {
	if link != "" {
		return "not the link: chronicle-fs moves a sixth of the peers' bytes (`peer." + peer + ".seq_bytes" + link + "`) and keeps enough GETs in flight (`peer.inflight" + link + "`, `peer.fetch_window" + link + "`); CPU, as for `fs.remote_seq`: the decoding, the server and the shaped link's softirqs share the two cores; profile-fs"
	}
	return "s3fs and rclone copy the uncompressed book over loopback with no decoding, where chronicle-fs decodes it on the same two cores as the server: compare `fs.cold_seq` (the mount with no network at all), which bounds a remote read; profile-fs"
}

func withBound(s Spec, bound string) Spec { s.Bound = bound; return s }

// p99Bound is what sets the random-read p99 against a peer.
func p99Bound(peer string) string {
	if peer == "s3fs" {
		return "s3fs's slow reads are its first ones, which wait for the whole object (its p50 is a page-cache read, `peer.s3fs.pread4k_p50`); over loopback that download is about as long as our slowest reads (a ranged GET and a frame decode each), so the two p99s are close and either may win"
	}
	return ""
}

// bench reads a figure already in the spec's unit from `go test -bench` output.
func bench(name, value, baseline string) *BenchSrc {
	return &BenchSrc{Name: name, Value: value, Baseline: baseline, Scale: 1}
}

// appendSpec: one append of a record of the given kind, p99, against a bare memcpy.
func appendSpec(id, what, sub string, goal Goal) Spec {
	return Spec{ID: id, What: what, Unit: "ns", Baseline: "memcpy into a mapping + atomic store, p99", Goal: goal,
		Bench: bench("BenchmarkAppendLatency/"+sub, "p99_ns", "base_p99_ns")}
}

// mountSeq: dd of a tier's book.q through the mount.
func mountSeq(tier, how, baseline string, goal Goal) Spec {
	return Spec{ID: "fs." + tier + "_seq", What: "dd bs=1M of " + tier + " book.q through the mount (" + how + ")", Unit: "MB/s",
		Baseline: baseline, Goal: goal}
}

// pread4k: random 4 KiB preads through the mount from one tier, p50 (with its goal) and p99.
func pread4k(tier, where, baseline string, p50 Goal, why string) []Spec {
	what := "random 4 KiB pread %s through the mount, " + where
	return []Spec{
		{ID: "fs." + tier + "_pread4k_p50", What: fmt.Sprintf(what, "p50"), Unit: "ms", Baseline: baseline, Goal: p50, Why: why},
		{ID: "fs." + tier + "_pread4k_p99", What: fmt.Sprintf(what, "p99"), Unit: "ms", Baseline: baseline},
	}
}

// backfill: the refinery backfilling one capture's journal on one core against the JSON
// parser alone, both in CPU-time MB/s (the steadiest figure on a shared machine).
func backfill(id, what, baseline, capture string) Spec {
	return Spec{ID: id, What: what, Unit: "MB/s", Baseline: baseline, Goal: ge(1),
		Bench: bench("BenchmarkBackfill/"+capture+"/1core", "refinery_cpu_MB/s", "fastjson_cpu_MB/s"),
		Why:   "issue 23: a prototype on this kind of machine reached 0.97-1.09x with a one-pass decoder, a price-ladder book and one write per megabyte",
		Bound: "one core: the decoder alone (2x fastjson, `etl.backfill.decode`) is about two fifths of the refinery's CPU and the output's pwrite into tmpfs (the kernel allocates, zeroes and fills every page of about 1.5 times the input) a fifth; the first reads of the mapped journal (its frames' headers, in the tailer) take a sixth, and the ladder, the records and the tickers' checks the rest, so the whole costs about 1.4 times fastjson's parse; profile-etl"}
}

// backfill2: the same with both cores (the output written and the messages decoded on the
// second), wall-clock MB/s against fastjson's on one.
func backfill2(id, what, capture string) Spec {
	return Spec{ID: id, What: what, Unit: "MB/s", Baseline: "valyala/fastjson parse alone, one core, wall clock", Goal: ge(1.3),
		Bench: bench("BenchmarkBackfill/"+capture+"/2cores", "refinery_MB/s", "fastjson_MB/s"),
		Why:   "issue 23: hashing, writes and decoding on the second core",
		Bound: "both cores: the decoding goroutine (the decoder and its own reading of the journal) and the writeback (pwrite) share the second core while the refinery's own work (the journal's frames, their hash, the ladder, the records) keeps the first busy: the wall time is the larger of the two, and the two together cost more CPU than one core does alone (two readers of the journal, the decodings handed across cores); the figure is wall clock on cores the other engineers' work shares (see the load with the report); profile-etl-2cores"}
}

// decode: the venue decoder alone against fastjson's parse, CPU time, one core.
func decode(id, what, capture string) Spec {
	return Spec{ID: id, What: what, Unit: "MB/s", Baseline: "valyala/fastjson parse alone, CPU time", Goal: ge(2),
		Bench: bench("BenchmarkBackfill/"+capture+"/1core", "decode_cpu_MB/s", "fastjson_cpu_MB/s"),
		Why:   "issue 23: a schema-specialised one-pass scanner measured 2.0-2.1x on this kind of machine",
		Bound: "the digit loops of prices and sizes (a dependent multiply per digit, a branch per length: eight-bytes-at-a-time parsing lost on the short ones) in the level lists, half the decoder's time; profile-etl-decode"}
}

func specs() []Spec {
	s := []Spec{
		// The ratio, not the value: a bare memcpy into the same kind of mapping has a p99 of
		// ~270 ns on the Xeon host, so an absolute 200 ns holds only on quiet hardware.
		withBound(appendSpec("format.append_p99", "append one 64 B book record to a mapped file (/dev/shm), p99", "book64B", le(1.1)),
			"the append's own work over a bare memcpy into the same mapping and an atomic store (same run): the record's encoding and the commit's store; the value is reported beside it"),
		appendSpec("format.append_journal_p99", "append one 1 KiB journal record, p99", "journal1KiB", vle(1000)),
		{ID: "format.decode", What: "iterate every record of a mapped book.q", Unit: "GB/s",
			Baseline: "summing the mapped bytes as u64 words", Goal: ge(0.5),
			Bench: bench("BenchmarkDecode", "decode_GB/s", "base_sum_GB/s")},
		{ID: "qzst.transcode", What: "book.q -> seekable zstd (libzstd level 3, files + fsync)", Unit: "MB/s",
			Baseline: "zstd -3 -T2", Goal: ge(1), Bench: bench("BenchmarkTranscode/libzstd/file", "MB/s", "cli_MB/s")},
		{ID: "qzst.seq_read", What: "read a whole .zst through the frame cache (128 KiB reads)", Unit: "MB/s",
			Baseline: "zstd -dc > /dev/null (one core)", Goal: ge(0.9 * float64(runtime.NumCPU())), Bench: bench("BenchmarkSeqRead", "MB/s", "cli_MB/s"),
			Why:   "the limit on n cores is n x the CLI's single-core MB/s; the goal is 0.9 of it, with no waste per byte (`qzst.seq_read.cpu`)",
			Bound: "CPU: libzstd decodes frames on every core against the CLI's one, so the goal needs all cores busy all the time at the CLI's MB per CPU second (`qzst.seq_read.cpu`); what other processes take of the cores is taken from it; profile-qzst"},
		{ID: "qzst.seq_read.cpu", What: "read a whole .zst through the frame cache, MB per CPU second", Unit: "MB/cpu_s",
			Baseline: "zstd -dc, MB per CPU second", Goal: ge(0.95), Bench: bench("BenchmarkSeqRead", "MB/cpu_s", "cli_MB/cpu_s"),
			Bound: "libzstd's ZSTD_decompressDCtx is nearly all of the reader's CPU (profile-qzst); the rest is the copy of each read out of the cache, which the CLI's write to /dev/null does not do"},
		{ID: "tier.warm_to_cold", What: "warm -> cold move: transcode, verify every byte, fsync, rename, delete", Unit: "MB/s",
			Baseline: "zstd -3 -T2 then zstd -t on its output (equal work)", Goal: ge(1.1),
			Why:   "issue 17: the move compresses and verifies every byte, as the baseline does",
			Bound: "CPU: the move and its baseline do the same libzstd work on both cores (`tier.warm_to_cold.cpu` compares their MB per CPU second); what is left is the move's own hashing, fsyncs and renames; profile-tier"},
		{ID: "tier.warm_to_cold.cpu", What: "warm -> cold move, CPU throughput (MB per CPU second)", Unit: "MB/cpu_s",
			Baseline: "zstd -3 -T2 then zstd -t, MB per CPU second"},
		{ID: "tier.warm_to_cold.compress_only", What: "warm -> cold move vs compression alone (the old baseline)", Unit: "MB/s",
			Baseline: "zstd -3 -T2"},
		{ID: "tier.cold_to_remote", What: "cold -> remote upload, verified (SHA-256, HEADs, stub fsynced)", Unit: "MB/s",
			Baseline: "plain S3 PutObject of the same files, same versitygw", Goal: ge(0.9)},
		{ID: "tiers.remote_seq", What: "whole remote partition through the resolver (loopback S3)", Unit: "MB/s",
			Baseline: "S3 GET | zstd -dc", Goal: ge(1), Bench: bench("BenchmarkRemoteSequential", "MB/s", "get+zstd_MB/s")},
		mountSeq("hot", "passthrough", "dd of the native hot file (tmpfs)", ge(0.9)),
		mountSeq("warm", "passthrough", "dd of the native warm file", ge(0.9)),
		withBound(mountSeq("cold", "decoded .zst", "zstd -dc of the same .zst", ge(1.5)),
			"CPU: libzstd decoding on both cores against the CLI's one (`qzst.seq_read.cpu` is the decoder's efficiency per CPU second), plus the FUSE replies; profile-fs"),
		withBound(mountSeq("remote", "versitygw on loopback", "the same through the mount from cold", ge(0.95)),
			"CPU: versitygw runs on the same two cores; a remote GiB costs `fs.remote_cpu.total` times the CPU of a cold one (chronicle-fs and server together), so with both cores busy the remote pass runs at about 1/that of the cold pass; not the fetch window: `fs.remote_inflight` against its bandwidth-delay product; profile-fs"),
		{ID: "fs.remote_inflight", What: "remote pass: compressed bytes in ranged GETs in flight, mean over the pass", Unit: "MB",
			Baseline: "the pass's bandwidth-delay product: its compressed MB/s x one 4 KiB ranged GET's round trip (same round)"},
		{ID: "fs.remote_window", What: "remote passes: the largest window of compressed runs a reader kept fetched ahead", Unit: "MB",
			Baseline: "the pass's bandwidth-delay product (as fs.remote_inflight)"},
		{ID: "fs.remote_cpu", What: "chronicle-fs CPU seconds per GiB read, remote", Unit: "cpu_s/GiB",
			Baseline: "chronicle-fs CPU seconds per GiB read, cold", Goal: le(1.1),
			Why:   "the bytes are the same frames; only the transport differs",
			Bound: "receiving the ranged GETs (socket reads) on top of the same frame decodes; profile-fs"},
		{ID: "fs.remote_cpu.server", What: "versitygw CPU seconds per GiB read by the remote passes (not in fs.remote_cpu)", Unit: "cpu_s/GiB",
			Baseline: "chronicle-fs CPU seconds per GiB, remote"},
		{ID: "fs.remote_cpu.total", What: "chronicle-fs + versitygw CPU seconds per GiB read, remote", Unit: "cpu_s/GiB",
			Baseline: "chronicle-fs CPU seconds per GiB read, cold"},
	}
	cold := pread4k("cold", "cold tier", "one whole 1 MiB frame's decode, libzstd, in the benchmark process, the frame each read lands in, right after it", le(0.6),
		"a miss decodes its frame only up to the bytes asked for (docs/format/qzst.md), half a frame on average plus the rest of a zstd block")
	cold[0] = withBound(cold[0], "decoding up to the read: libzstd's blocks hold 128 KiB, so a random read decodes on average 0.56 of a frame (0.5 + half a block); the FUSE round trip, the compressed frame's fetch and its CRC come on top; profile-fs-pread")
	s = append(s, cold...)
	remote := pread4k("remote", "remote tier (loopback)", "the cold read's (same round) + one ranged GET of the frame's compressed bytes, right after each read", le(1),
		"a miss is one ranged GET of the frame and a decode up to the read")
	remote[0] = withBound(remote[0], "the GET: its round trip in the baseline is measured from the benchmark, the daemon's shares the two cores with the server and the decoder; profile-fs-pread")
	s = append(s, remote...)
	s = append(s,
		Spec{ID: "fs.peak_rss", What: "chronicle-fs peak RSS reading a cold book sequentially and randomly", Unit: "MiB",
			Baseline: "configured frame cache + 100 MiB", Goal: le(1), Bench: bench("BenchmarkPeakRSS", "peak-RSS-MiB", "bound-MiB")},
		Spec{ID: "numpy.warm_memmap", What: "numpy price.sum() over warm book.q memmap through the mount, first pass", Unit: "s",
			Baseline: "the same on the native warm file", Goal: le(1.1)},
		Spec{ID: "numpy.book_npy_warm", What: "numpy price.sum() over warm book.npy (served by the daemon from the tier file: splice, or a mapping for 1 MiB replies), first pass", Unit: "s",
			Baseline: "warm book.q memmap through the mount", Goal: le(1.5),
			Bound: "the one copy: book.npy cannot be passthrough (its header is not the book's), so the kernel copies every page of the tier file into the mount's page cache (splice or a write from a mapping: the daemon never touches the bytes), while the baseline maps the tier file's pages that are already there; `numpy.book_npy_warm.splice` has every reply spliced; profile-fs-npy"},
		Spec{ID: "numpy.book_npy_warm.splice", What: "the same, through a mount whose requests (254 pages) fit the default pipe: every reply spliced", Unit: "s",
			Baseline: "warm book.q memmap through the mount"},
		Spec{ID: "numpy.book_npy_cold", What: "numpy price.sum() over cold book.npy, first pass", Unit: "s",
			Baseline: "warm book.q memmap through the mount"},
		backfill("etl.backfill", "refinery backfill of the USD-M capture's journal, one core (GOMAXPROCS=1), CPU time", "valyala/fastjson parsing the same messages alone, CPU time", "usdm"),
		backfill("etl.backfill.coinm", "refinery backfill, COIN-M capture, one core, CPU time", "valyala/fastjson parse alone, CPU time", "coinm"),
		backfill("etl.backfill.spot", "refinery backfill, spot capture, one core, CPU time", "valyala/fastjson parse alone, CPU time", "spot"),
		Spec{ID: "etl.backfill.wall", What: "refinery backfill of the USD-M capture's journal, one core, wall clock", Unit: "MB/s",
			Baseline: "valyala/fastjson parse alone, wall clock", Bench: bench("BenchmarkBackfill/usdm/1core", "refinery_MB/s", "fastjson_MB/s")},
		backfill2("etl.backfill.2cores", "refinery backfill of the USD-M capture's journal, both cores, wall clock", "usdm"),
		backfill2("etl.backfill.coinm.2cores", "refinery backfill, COIN-M capture, both cores, wall clock", "coinm"),
		backfill2("etl.backfill.spot.2cores", "refinery backfill, spot capture, both cores, wall clock", "spot"),
		decode("etl.backfill.decode", "the venue decoder alone over the USD-M capture's messages, CPU time", "usdm"),
		decode("etl.backfill.decode.coinm", "the venue decoder alone, COIN-M capture, CPU time", "coinm"),
		decode("etl.backfill.decode.spot", "the venue decoder alone, spot capture, CPU time", "spot"),
		withBound(backfill("etl.backfill.okx", "refinery backfill, OKX capture (x30), every book message's checksum recomputed, one core, CPU time", "valyala/fastjson parse alone, CPU time", "okx"),
			"the exchange's checksum after every book message (each message is small, a few levels): with each level's string kept (venue.Pieces) only changed levels are formatted, but the top 25 of each side are still read, merged with the kept ones, copied into one string and CRC32'd, about a quarter of the refinery's CPU; the decoder (one-pass fast path, `etl.backfill.decode.okx`) about a quarter, most of it the decimals; records and writes the rest: every message is a book event to encode where fastjson only tokenises; profile-etl-subscribed"),
		withBound(backfill("etl.backfill.kraken", "refinery backfill, Kraken capture (x20), every update's checksum recomputed, one core, CPU time", "valyala/fastjson parse alone, CPU time", "kraken"),
			"the exchange's checksum after every update that reaches the top 10 (a Kraken update is about 100 bytes, one level): the top 10 read from a book of up to 1,000 levels a side, most of them below the ladder's window (kept between reads), merged with the kept level strings (venue.Pieces), copied and CRC32'd, about 40% of the refinery's CPU; the decoder (one-pass fast path, `etl.backfill.decode.kraken`) about a quarter, most of it the decimals; profile-etl-subscribed"),
		withBound(decode("etl.backfill.decode.okx", "the OKX decoder alone, OKX capture, CPU time", "okx"),
			"book messages by a one-pass fast path (venue/okx/fast.go); prices and sizes are quoted decimal strings read digit by digit (venue.Scanner.Decimal, most of its time); profile-etl-subscribed"),
		withBound(decode("etl.backfill.decode.kraken", "the Kraken decoder alone, Kraken capture, CPU time", "kraken"),
			"book messages by a one-pass fast path (venue/kraken/fast.go); three quoted decimals a level (price, volume, a microsecond time), each read digit by digit (venue.Scanner.Decimal, most of its time), and each level's wire digits counted for the checksum; profile-etl-subscribed"),
		Spec{ID: "etl.live_catchup", What: "the live refinery (run) working through the USD-M capture's journal as a backlog, one core", Unit: "MB/s",
			Baseline: "a backfill of the same journal, same round", Goal: ge(0.8),
			Bench: bench("BenchmarkLiveCatchup/usdm", "live_MB/s", "backfill_MB/s"),
			Why:   "issue 23: a live refinery that falls behind must catch up about as fast as a backfill (it publishes by batches of frames)"},
		Spec{ID: "etl.book_bytes", What: "the order book's memory for one symbol: the ladder's peak over the USD-M capture's depth updates", Unit: "KiB",
			Baseline: "the book of issue 13 (maps and heaps) after the same updates, live heap", Goal: vle(1024),
			Bench: &BenchSrc{Name: "BenchmarkReplayCaptures/usdm", Value: "ladder_peak_bytes", Baseline: "mapheap_bytes", Scale: 1.0 / 1024},
			Why:   "issue 23: a bounded footprint per symbol (two windows of 4096 ticks and the levels below them, at most book.MaxLevels)"},
		Spec{ID: "etl.merge", What: "chronicle-etl merge of two hosts' journals of the USD-M capture (MB/s of both hosts' messages)", Unit: "MB/s",
			Baseline: "the refinery's backfill of one of the journals (MB/s of its messages)", Goal: ge(1),
			Why:   "merging two hosts' captures should take no longer than refining them one after the other",
			Bench: bench("BenchmarkMerge", "merge_MB/s", "backfill_MB/s"),
			Bound: "the merge reads both journals twice (a survey of each host's depth chains, then the interleave, each host's frames parsed and dated in its own goroutine) while the refinery follows the merged journal on the other core: it needs both cores where the backfill needs one, so on two shared cores its figure follows the machine's load more than the backfill's (rounds between 0.64x and 1.07x in one run)"},
		Spec{ID: "etl.live_p99", What: "journal append -> canonical records committed, p99 (live tail)", Unit: "us",
			Baseline: "the journal tailer alone, p99", Goal: vle(100),
			Bench: &BenchSrc{Name: "BenchmarkLiveLatency", Value: "refinery_p99_ns", Baseline: "tailer_p99_ns", Scale: 1e-3},
			Bound: "stretches of about a millisecond in which a whole burst of frames waits behind the refinery (the replay writes in bursts: its sleeps are coarse); BenchmarkLiveLatency logs them, and the tailer alone has fewer. Between them frames queue at about a microsecond each (`etl.live_p50`). Listing the journal directory less often and turning the collector off (GOGC=off) did not remove them"},
		Spec{ID: "etl.live_p50", What: "journal append -> canonical records committed, p50 (live tail)", Unit: "us",
			Baseline: "the journal tailer alone, p50",
			Bench:    &BenchSrc{Name: "BenchmarkLiveLatency", Value: "refinery_p50_ns", Baseline: "tailer_p50_ns", Scale: 1e-3}},
	)
	return append(append(append(append(append(s, viewSpecs()...), peerSpecs()...), researchSpecs()...), fleetSpecs()...), venueSpecs()...)
}

// viewSpecs are the research views' figures (BenchmarkViews, docs/format/views.md).
func viewSpecs() []Spec {
	replay := "replaying the partition from its start to the instant (what users do today), p99"
	bound := "one checkpoint of index/books.idx (a 4,000-level book) and the replay of less than 16,384 records after it (about 8,000 on average), decoded first from one cold frame (cold, remote) and fetched (remote): BenchmarkBookAt (profile-views, same machine) reports the thread's CPU time per answer beside the wall clock, whose p99 follows the machine's load; profile-views"
	return []Spec{
		{ID: "views.book_at_p99.warm", What: "the book at random instants, warm, through format/bookview (as chronicle-q reads), p99", Unit: "ms",
			Baseline: replay, Goal: vle(2), Why: "issue 22: warm <= 2 ms", Bound: bound},
		{ID: "views.book_at_p99.cold", What: "the book at random instants, cold (seekable zstd), p99", Unit: "ms",
			Baseline: replay, Goal: vle(10), Why: "the seed's Zone 3 budget", Bound: bound},
		{ID: "views.book_at_p99.remote", What: "the book at random instants, remote (versitygw on loopback), p99", Unit: "ms",
			Baseline: replay, Goal: vle(30), Bound: bound},
		{ID: "views.top10_seq", What: "first pass (dd) over cold views/top10.npy through a fresh mount", Unit: "s",
			Baseline: "first pass over the same partition's cold book.q", Goal: le(2),
			Bound: "rendering decodes the whole cold book and replays every level record; the baseline only decodes"},
		{ID: "views.top10_random_p99", What: "random row reads (one row, pread) of cold views/top10.npy through a fresh mount, p99", Unit: "ms",
			Baseline: "random record reads of the same cold book.q, p99", Goal: vle(10),
			Bound: "a row's first read decodes its cold frame and replays from the book index's checkpoint before it (as for views.book_at_p99.cold); the baseline decodes the frame alone"},
		{ID: "fs.views_rss", What: "chronicle-fs peak RSS after random rows and a pass of every view of a cold book", Unit: "MiB",
			Baseline: "configured frame cache + views cache + 100 MiB", Goal: le(1)},
	}
}
