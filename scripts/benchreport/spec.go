package main

import (
	"fmt"
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
		{ID: "research.find", What: "find of the whole tree (every book.q)", Unit: "s",
			Baseline: "flat ListObjectsV2 of every key in the bucket"},
		{ID: "research.rss", What: "chronicle-fs peak RSS after the find", Unit: "MiB", Goal: vlt(200)},
	}
}

func peerSpecs() []Spec {
	var s []Spec
	for _, link := range []struct{ id, what string }{{"", "loopback"}, {".1gbit", "1 Gbit/s link"}} {
		seqGoal := ge(2)
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
			)
			if p == "rclone" {
				s[len(s)-3].Goal = lt(1) // p50 below rclone's; s3fs's p50 is a page-cache read
			}
		}
	}
	return s
}

// seqBound is what limits chronicle-fs's sequential read against a peer.
func seqBound(link, peer string) string {
	if link != "" {
		return "not the link: chronicle-fs moves a sixth of the peers' bytes (`peer." + peer + ".seq_bytes" + link + "`); CPU, as for `fs.remote_seq`"
	}
	if peer == "s3fs" {
		return "s3fs copies the uncompressed book over loopback about as fast as chronicle-fs decodes it: compare `fs.cold_seq` (the mount with no network at all), which bounds a remote read"
	}
	return ""
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

// backfill: the refinery backfilling one capture's journal against the JSON parser alone.
func backfill(id, what, baseline, capture string) Spec {
	return Spec{ID: id, What: what, Unit: "MB/s", Baseline: baseline, Goal: ge(1),
		Bench: bench("BenchmarkBackfill/"+capture, "refinery_MB/s", "fastjson_MB/s"),
		Bound: "one core: the venue decoder alone already runs at about fastjson's speed (`etl.backfill.decode`), and the book rebuild, records, partitions and checkpoint come on top of it (issue 13); profile-etl"}
}

func specs() []Spec {
	s := []Spec{
		withBound(appendSpec("format.append_p99", "append one 64 B book record to a mapped file (/dev/shm), p99", "book64B", vle(200)),
			"the machine: the goal bounds the value, and the baseline, a bare memcpy into the same kind of mapping and an atomic store, has its own p99 (same run) near or above it; the ratio is the append's own cost"),
		appendSpec("format.append_journal_p99", "append one 1 KiB journal record, p99", "journal1KiB", vle(1000)),
		{ID: "format.decode", What: "iterate every record of a mapped book.q", Unit: "GB/s",
			Baseline: "summing the mapped bytes as u64 words", Goal: ge(0.5),
			Bench: bench("BenchmarkDecode", "decode_GB/s", "base_sum_GB/s")},
		{ID: "qzst.transcode", What: "book.q -> seekable zstd (libzstd level 3, files + fsync)", Unit: "MB/s",
			Baseline: "zstd -3 -T2", Goal: ge(1), Bench: bench("BenchmarkTranscode/libzstd/file", "MB/s", "cli_MB/s")},
		{ID: "qzst.seq_read", What: "read a whole .zst through the frame cache (128 KiB reads)", Unit: "MB/s",
			Baseline: "zstd -dc > /dev/null", Goal: ge(2), Bench: bench("BenchmarkSeqRead", "MB/s", "cli_MB/s"),
			Bound: "CPU: libzstd decodes frames on both cores against the CLI's one, so 2x needs both cores busy all the time at the CLI's MB per CPU second (`qzst.seq_read.cpu`); profile-qzst"},
		{ID: "qzst.seq_read.cpu", What: "read a whole .zst through the frame cache, MB per CPU second", Unit: "MB/cpu_s",
			Baseline: "zstd -dc, MB per CPU second", Bench: bench("BenchmarkSeqRead", "MB/cpu_s", "cli_MB/cpu_s")},
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
		withBound(mountSeq("remote", "versitygw on loopback", "the same through the mount from cold", ge(0.9)),
			"CPU: versitygw runs on the same two cores; a remote GiB costs `fs.remote_cpu.total` times the CPU of a cold one (chronicle-fs and server together), so with both cores busy the remote pass runs at about 1/that of the cold pass; profile-fs"),
		{ID: "fs.remote_cpu", What: "chronicle-fs CPU seconds per GiB read, remote", Unit: "cpu_s/GiB",
			Baseline: "chronicle-fs CPU seconds per GiB read, cold", Goal: le(1.1),
			Why:   "the bytes are the same frames; only the transport differs",
			Bound: "receiving the ranged GETs (socket reads) on top of the same frame decodes; profile-fs"},
		{ID: "fs.remote_cpu.server", What: "versitygw CPU seconds per GiB read by the remote passes (not in fs.remote_cpu)", Unit: "cpu_s/GiB",
			Baseline: "chronicle-fs CPU seconds per GiB, remote"},
		{ID: "fs.remote_cpu.total", What: "chronicle-fs + versitygw CPU seconds per GiB read, remote", Unit: "cpu_s/GiB",
			Baseline: "chronicle-fs CPU seconds per GiB read, cold"},
	}
	cold := pread4k("cold", "cold tier", "the native warm file", vle(2), "docs/format/qzst.md: one frame decode per miss")
	cold[0] = withBound(cold[0], "the goal bounds the value: a miss decodes one whole 1 MiB frame, so the p50 follows the machine's decoding speed (`qzst.seq_read.cpu`, MB per CPU second, and its zstd -dc baseline); profile-qzst")
	s = append(s, cold...)
	s = append(s, pread4k("remote", "remote tier (loopback)", "the same from the cold tier", vle(5), "one ranged GET + one frame decode per miss")...)
	s = append(s,
		Spec{ID: "fs.peak_rss", What: "chronicle-fs peak RSS reading a cold book sequentially and randomly", Unit: "MiB",
			Baseline: "configured frame cache + 100 MiB", Goal: le(1), Bench: bench("BenchmarkPeakRSS", "peak-RSS-MiB", "bound-MiB")},
		Spec{ID: "numpy.warm_memmap", What: "numpy price.sum() over warm book.q memmap through the mount, first pass", Unit: "s",
			Baseline: "the same on the native warm file", Goal: le(1.1)},
		Spec{ID: "numpy.book_npy_warm", What: "numpy price.sum() over warm book.npy (served by the daemon), first pass", Unit: "s",
			Baseline: "warm book.q memmap through the mount", Goal: le(1.5),
			Bound: "copies: book.npy cannot be passthrough (its header is not the book's), so every byte is read by the daemon (pread) and copied by the kernel into the mount's page cache (the reply's writev), while the baseline maps page-cache pages that are already there; the ratio follows the machine's copy speed against its mapping speed; profile-fs-npy"},
		Spec{ID: "numpy.book_npy_cold", What: "numpy price.sum() over cold book.npy, first pass", Unit: "s",
			Baseline: "warm book.q memmap through the mount"},
		backfill("etl.backfill", "refinery backfill of the USD-M capture's journal, one core", "valyala/fastjson parsing the same messages alone", "usdm"),
		backfill("etl.backfill.coinm", "refinery backfill, COIN-M capture", "valyala/fastjson parse alone", "coinm"),
		backfill("etl.backfill.spot", "refinery backfill, spot capture", "valyala/fastjson parse alone", "spot"),
		Spec{ID: "etl.backfill.decode", What: "the venue decoder alone over the USD-M capture's messages (the refinery's JSON share)", Unit: "MB/s",
			Baseline: "valyala/fastjson parse alone", Bench: bench("BenchmarkBackfill/usdm", "decode_MB/s", "fastjson_MB/s")},
		Spec{ID: "etl.live_p99", What: "journal append -> canonical records committed, p99 (live tail)", Unit: "us",
			Baseline: "the journal tailer alone, p99", Goal: vle(100),
			Bench: &BenchSrc{Name: "BenchmarkLiveLatency", Value: "refinery_p99_ns", Baseline: "tailer_p99_ns", Scale: 1e-3},
			Bound: "stretches of about a millisecond in which a whole burst of frames waits behind the refinery (the replay writes in bursts: its sleeps are coarse); BenchmarkLiveLatency logs them, and the tailer alone has fewer. Between them frames queue at about a microsecond each (`etl.live_p50`). Listing the journal directory less often and turning the collector off (GOGC=off) did not remove them"},
		Spec{ID: "etl.live_p50", What: "journal append -> canonical records committed, p50 (live tail)", Unit: "us",
			Baseline: "the journal tailer alone, p50",
			Bench:    &BenchSrc{Name: "BenchmarkLiveLatency", Value: "refinery_p50_ns", Baseline: "tailer_p50_ns", Scale: 1e-3}},
	)
	return append(append(append(s, viewSpecs()...), peerSpecs()...), researchSpecs()...)
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
