package bookview

import (
	"math/rand/v2"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookindex"
	"github.com/chronicle/chronicle/internal/testkit/books"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// BenchmarkBookAt: the book at random instants of a realistic local book (books.Gen, a
// 2,000-level snapshot run a minute, or every 10 s as the refinery's snapshot_interval can
// make it; CHRONICLE_BENCH_BYTES / 4, default 64 MiB), mapped as a warm file is: where
// BookAt's time goes (the profile-views step of make bench), and what denser runs buy. It
// reports the p50 and p99 in ms and the records replayed per query.
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
	l, err := OpenDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	lo, hi, _ := l.Span()
	rng := rand.New(rand.NewPCG(1, 2))
	var lat []time.Duration
	var replayed int64
	b.ResetTimer()
	for range b.N {
		for range 200 {
			t := lo + rng.Int64N(hi-lo)
			t0 := time.Now()
			s, err := l.BookAt(t, 10)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
			start := int64(0)
			for _, sn := range l.Snapshots() {
				if sn.ExchTs <= t {
					start = int64(sn.Record)
				}
			}
			replayed += s.Record - start
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e6, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e6, "p99_ms")
	b.ReportMetric(float64(replayed)/float64(len(lat)), "records/query")
}
