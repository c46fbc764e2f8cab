package main

import "strconv"

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
					Unit: "MB/s", Baseline: p + " mount, same bucket and server", Goal: seqGoal},
				Spec{ID: "peer." + p + ".seq_bytes" + lid, What: "bytes over the link for the whole book: chronicle-fs vs " + p + ", " + link.what,
					Unit: "MB", Baseline: p},
				Spec{ID: "peer." + p + ".pread4k_p50" + link.id, What: "random 4 KiB pread p50, fresh mounts: chronicle-fs vs " + p + ", " + link.what,
					Unit: "ms", Baseline: p},
				Spec{ID: "peer." + p + ".pread4k_p99" + link.id, What: "random 4 KiB pread p99, fresh mounts: chronicle-fs vs " + p + ", " + link.what,
					Unit: "ms", Baseline: p, Goal: lt(1)},
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

func specs() []Spec {
	s := []Spec{
		{ID: "format.append_p99", What: "append one 64 B book record to a mapped file (/dev/shm), p99", Unit: "ns",
			Baseline: "memcpy into a mapping + atomic store, p99", Goal: vle(200),
			Bench: &BenchSrc{Name: "BenchmarkAppendLatency/book64B", Value: "p99_ns", Baseline: "base_p99_ns", Scale: 1}},
		{ID: "format.append_journal_p99", What: "append one 1 KiB journal record, p99", Unit: "ns",
			Baseline: "memcpy into a mapping + atomic store, p99", Goal: vle(1000),
			Bench: &BenchSrc{Name: "BenchmarkAppendLatency/journal1KiB", Value: "p99_ns", Baseline: "base_p99_ns", Scale: 1}},
		{ID: "format.decode", What: "iterate every record of a mapped book.q", Unit: "GB/s",
			Baseline: "summing the mapped bytes as u64 words", Goal: ge(0.5),
			Bench: &BenchSrc{Name: "BenchmarkDecode", Value: "decode_GB/s", Baseline: "base_sum_GB/s", Scale: 1}},
		{ID: "qzst.transcode", What: "book.q -> seekable zstd (libzstd level 3, files + fsync)", Unit: "MB/s",
			Baseline: "zstd -3 -T2", Goal: ge(1),
			Bench: &BenchSrc{Name: "BenchmarkTranscode/libzstd/file", Value: "MB/s", Baseline: "cli_MB/s", Scale: 1}},
		{ID: "qzst.seq_read", What: "read a whole .zst through the frame cache (128 KiB reads)", Unit: "MB/s",
			Baseline: "zstd -dc > /dev/null", Goal: ge(2),
			Bench: &BenchSrc{Name: "BenchmarkSeqRead", Value: "MB/s", Baseline: "cli_MB/s", Scale: 1}},
		{ID: "tier.warm_to_cold", What: "warm -> cold move: transcode, verify every byte, fsync, rename, delete", Unit: "MB/s",
			Baseline: "zstd -3 -T2 then zstd -t on its output (equal work)", Goal: ge(1.1),
			Why: "issue 17: the move compresses and verifies every byte, as the baseline does"},
		{ID: "tier.warm_to_cold.cpu", What: "warm -> cold move, CPU throughput (MB per CPU second)", Unit: "MB/cpu_s",
			Baseline: "zstd -3 -T2 then zstd -t, MB per CPU second"},
		{ID: "tier.warm_to_cold.compress_only", What: "warm -> cold move vs compression alone (the old baseline)", Unit: "MB/s",
			Baseline: "zstd -3 -T2"},
		{ID: "tier.cold_to_remote", What: "cold -> remote upload, verified (SHA-256, HEADs, stub fsynced)", Unit: "MB/s",
			Baseline: "plain S3 PutObject of the same files, same versitygw", Goal: ge(0.9)},
		{ID: "tiers.remote_seq", What: "whole remote partition through the resolver (loopback S3)", Unit: "MB/s",
			Baseline: "S3 GET | zstd -dc", Goal: ge(1),
			Bench: &BenchSrc{Name: "BenchmarkRemoteSequential", Value: "MB/s", Baseline: "get+zstd_MB/s", Scale: 1}},
		{ID: "fs.hot_seq", What: "dd bs=1M of hot book.q through the mount (passthrough)", Unit: "MB/s",
			Baseline: "dd of the native hot file (tmpfs)", Goal: ge(0.9)},
		{ID: "fs.warm_seq", What: "dd bs=1M of warm book.q through the mount (passthrough)", Unit: "MB/s",
			Baseline: "dd of the native warm file", Goal: ge(0.9)},
		{ID: "fs.cold_seq", What: "dd bs=1M of cold book.q through the mount (decoded .zst)", Unit: "MB/s",
			Baseline: "zstd -dc of the same .zst", Goal: ge(1.5)},
		{ID: "fs.remote_seq", What: "dd bs=1M of remote book.q through the mount (versitygw on loopback)", Unit: "MB/s",
			Baseline: "the same through the mount from cold", Goal: ge(0.9)},
		{ID: "fs.remote_cpu", What: "chronicle-fs CPU seconds per GiB read, remote", Unit: "cpu_s/GiB",
			Baseline: "chronicle-fs CPU seconds per GiB read, cold", Goal: le(1.1),
			Why: "the bytes are the same frames; only the transport differs"},
		{ID: "fs.remote_cpu.server", What: "versitygw CPU seconds per GiB read by the remote passes (not in fs.remote_cpu)", Unit: "cpu_s/GiB",
			Baseline: "chronicle-fs CPU seconds per GiB, remote"},
		{ID: "fs.cold_pread4k_p50", What: "random 4 KiB pread p50 through the mount, cold tier", Unit: "ms",
			Baseline: "the native warm file", Goal: vle(2), Why: "docs/format/qzst.md: one frame decode per miss"},
		{ID: "fs.cold_pread4k_p99", What: "random 4 KiB pread p99 through the mount, cold tier", Unit: "ms",
			Baseline: "the native warm file"},
		{ID: "fs.remote_pread4k_p50", What: "random 4 KiB pread p50 through the mount, remote tier (loopback)", Unit: "ms",
			Baseline: "the same from the cold tier", Goal: vle(5), Why: "one ranged GET + one frame decode per miss"},
		{ID: "fs.remote_pread4k_p99", What: "random 4 KiB pread p99 through the mount, remote tier (loopback)", Unit: "ms",
			Baseline: "the same from the cold tier"},
		{ID: "fs.peak_rss", What: "chronicle-fs peak RSS reading a cold book sequentially and randomly", Unit: "MiB",
			Baseline: "configured frame cache + 100 MiB", Goal: le(1),
			Bench: &BenchSrc{Name: "BenchmarkPeakRSS", Value: "peak-RSS-MiB", Baseline: "bound-MiB", Scale: 1}},
		{ID: "numpy.warm_memmap", What: "numpy price.sum() over warm book.q memmap through the mount, first pass", Unit: "s",
			Baseline: "the same on the native warm file", Goal: le(1.1)},
		{ID: "numpy.book_npy_warm", What: "numpy price.sum() over warm book.npy (served by the daemon), first pass", Unit: "s",
			Baseline: "warm book.q memmap through the mount", Goal: le(1.5)},
		{ID: "numpy.book_npy_cold", What: "numpy price.sum() over cold book.npy, first pass", Unit: "s",
			Baseline: "warm book.q memmap through the mount"},
		{ID: "etl.backfill", What: "refinery backfill of the USD-M capture's journal, one core", Unit: "MB/s",
			Baseline: "valyala/fastjson parsing the same messages alone", Goal: ge(1),
			Bench: &BenchSrc{Name: "BenchmarkBackfill/usdm", Value: "refinery_MB/s", Baseline: "fastjson_MB/s", Scale: 1}},
		{ID: "etl.backfill.coinm", What: "refinery backfill, COIN-M capture", Unit: "MB/s",
			Baseline: "valyala/fastjson parse alone", Goal: ge(1),
			Bench: &BenchSrc{Name: "BenchmarkBackfill/coinm", Value: "refinery_MB/s", Baseline: "fastjson_MB/s", Scale: 1}},
		{ID: "etl.backfill.spot", What: "refinery backfill, spot capture", Unit: "MB/s",
			Baseline: "valyala/fastjson parse alone", Goal: ge(1),
			Bench: &BenchSrc{Name: "BenchmarkBackfill/spot", Value: "refinery_MB/s", Baseline: "fastjson_MB/s", Scale: 1}},
		{ID: "etl.live_p99", What: "journal append -> canonical records committed, p99 (live tail)", Unit: "us",
			Baseline: "the journal tailer alone, p99", Goal: vle(100),
			Bench: &BenchSrc{Name: "BenchmarkLiveLatency", Value: "refinery_p99_ns", Baseline: "tailer_p99_ns", Scale: 1e-3}},
	}
	return append(append(s, peerSpecs()...), researchSpecs()...)
}
