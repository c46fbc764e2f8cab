package bookview

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookindex"
	"github.com/chronicle/chronicle/internal/testkit/books"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// BenchmarkBookAt: the book at random instants of a realistic local book (books.Gen, a
// 2,000-level snapshot run a minute, or every 10 s as the refinery's snapshot_interval can
// make it; CHRONICLE_BENCH_BYTES / 4, default 64 MiB) with its index/ as the refinery
// writes it, mapped as a warm file is: where BookAt's time goes (the profile-views step of
// make bench). It reports the p50 and p99 of the wall clock and of the thread's CPU time in
// ms, the share of answers during which the scheduler preempted the thread (another
// process took the core) and the p99 of the others, and the records replayed per query
// (from the book index's checkpoint to the cut).
func BenchmarkBookAt(b *testing.B) {
	for _, every := range []time.Duration{time.Minute, 10 * time.Second} {
		b.Run("snapshot_interval="+every.String(), func(b *testing.B) { benchBookAt(b, every) })
	}
}

// benchBookAt measures BookAt on a book whose snapshot runs are every apart.
func benchBookAt(b *testing.B, every time.Duration) {
	size := testenv.BenchBytes(b, 256<<20) / 4
	dir := b.TempDir()
	day := time.Date(2024, 8, 9, 0, 0, 0, 0, time.UTC)
	a, err := format.Create(filepath.Join(dir, bookindex.BookName), format.NewBookHeader("binance-perp", "eth-usdt", 1001, format.DateOf(day)), format.Options{ChunkSize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	g := books.NewGen(42, 1001, day)
	g.SnapEvery = every.Milliseconds()
	var r format.BookRecord
	for n := (size - format.HeaderSize) / 64; n > 0; n-- {
		g.Next(&r)
		a.AppendBook(&r)
	}
	a.Seal()
	m, err := format.MapFile(filepath.Join(dir, bookindex.BookName))
	if err != nil {
		b.Fatal(err)
	}
	h, _ := format.ReadHeader(m, m.Size(), "book")
	ix, err := bookindex.BuildIndex(m.Bytes()[h.HeaderSize:h.Committed], h.Records(), int64(h.HeaderSize))
	m.Close()
	if err != nil {
		b.Fatal(err)
	}
	if err := ix.Write(dir); err != nil {
		b.Fatal(err)
	}
	l, err := OpenDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	lo, hi, _ := l.Span()
	rng := rand.New(rand.NewPCG(1, 2))
	var lat, cpu, calm []time.Duration // calm: the wall clock of answers never preempted
	var replayed int64
	// The thread's CPU time besides the wall clock: a mapped book is answered on the
	// calling goroutine alone, so it is the work of one answer, whatever else the machine
	// runs.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	for range b.N {
		for range 200 {
			t := lo + rng.Int64N(hi-lo)
			c0, p0 := threadCPU(), preempted()
			t0 := time.Now()
			s, err := l.BookAt(t, 10)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
			cpu = append(cpu, threadCPU()-c0)
			if preempted() == p0 {
				calm = append(calm, lat[len(lat)-1])
			}
			start := int64(0)
			if bk := l.Books(); bk != nil {
				start = int64(bk.Entries[bk.Find(t)].Record)
			}
			replayed += s.Record - start
		}
	}
	pct := func(d []time.Duration, p int) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[len(d)*p/100].Nanoseconds()) / 1e6
	}
	b.ReportMetric(pct(lat, 50), "p50_ms")
	b.ReportMetric(pct(lat, 99), "p99_ms")
	b.ReportMetric(pct(cpu, 50), "cpu_p50_ms")
	b.ReportMetric(pct(cpu, 99), "cpu_p99_ms")
	// What the machine adds: the answers the scheduler took the core from, and the p99 of
	// the others.
	b.ReportMetric(100*float64(len(lat)-len(calm))/float64(len(lat)), "preempted_%")
	if len(calm) > 0 {
		b.ReportMetric(pct(calm, 99), "unpreempted_p99_ms")
	}
	b.ReportMetric(float64(replayed)/float64(len(lat)), "records/query")
}

// preempted counts the times the scheduler took the calling thread off its core while it
// could run (involuntary context switches).
func preempted() int64 {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	return ru.Nivcsw
}

// threadCPU is the calling thread's CPU time.
func threadCPU() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

// BenchmarkBookAtDir answers the book at seeded random instants of the partition in
// $CHRONICLE_BOOKAT_DIR (skipped without it): an existing book, so that the work of the
// answers alone can be counted (valgrind --tool=callgrind --toggle-collect=...BookAt).
func BenchmarkBookAtDir(b *testing.B) {
	dir := os.Getenv("CHRONICLE_BOOKAT_DIR")
	if dir == "" {
		b.Skip("CHRONICLE_BOOKAT_DIR is not set")
	}
	l, err := OpenDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	lo, hi, _ := l.Span()
	rng := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for range b.N {
		if _, err := l.BookAt(lo+rng.Int64N(hi-lo), 0); err != nil {
			b.Fatal(err)
		}
	}
}
