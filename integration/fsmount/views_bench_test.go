package fsmount

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookindex"
	"github.com/chronicle/chronicle/format/bookview"
	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/books"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/internal/testkit/tiermove"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
	"golang.org/x/sys/unix"
)

// writeGenPartition writes a realistic book of about size bytes (books.Gen: depth updates
// of many levels, trades, tickers, a 2,000-level snapshot run every minute) with index/,
// as the refinery seals one, into root's partition k.
func writeGenPartition(b *testing.B, root string, k layout.Key, size int64) {
	b.Helper()
	dir := testkit.PartDir(root, k)
	os.MkdirAll(dir, 0o755)
	p := filepath.Join(dir, layout.BookName)
	day := time.Date(2024, 8, 9, 0, 0, 0, 0, time.UTC)
	a, err := format.Create(p, format.NewBookHeader(k.Venue, k.Symbol, 1001, format.DateOf(day)), format.Options{ChunkSize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	g := books.NewGen(42, 1001, day)
	var r format.BookRecord
	for n := (size - format.HeaderSize) / format.BookRecordSize; n > 0; n-- {
		g.Next(&r)
		if err := a.AppendBook(&r); err != nil {
			b.Fatal(err)
		}
	}
	if err := a.Seal(); err != nil {
		b.Fatal(err)
	}
	m, err := format.MapFile(p)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	h, _ := format.ReadHeader(m, m.Size(), p)
	data := m.Bytes()[h.HeaderSize:h.Committed]
	ix, err := bookindex.BuildIndex(data, h.Records(), int64(h.HeaderSize))
	if err != nil {
		b.Fatal(err)
	}
	if err := ix.Write(dir); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkViews measures the research views against their same-run baselines, on a
// realistic book of CHRONICLE_BENCH_BYTES (default 64 MiB) in warm, cold and remote
// (versitygw on loopback):
//
//   - views.book_at_p99.{warm,cold,remote}: the book at random instants through the API
//     (format/bookview over the resolver, as chronicle-q reads), p99, against replaying the
//     partition from its start to the instant (what users do today);
//   - views.top10_seq: a first pass (dd) over cold views/top10.npy through a fresh mount
//     against a first pass over the same partition's cold book.q;
//   - views.top10_random_p99: random row reads (pread of one row) of cold top10.npy, fresh
//     mount, p99 (against the same reads of cold book.q records);
//   - fs.views_rss: the daemon's peak RSS after those reads, against its configured caches
//   - 100 MiB.
func BenchmarkViews(b *testing.B) {
	if testenv.Probe(b) {
		return
	}
	size := testenv.BenchBytes(b, 64<<20)
	e := newEnv(b, "s3")
	keys := map[layout.Tier]layout.Key{}
	for i, t := range []layout.Tier{layout.Warm, layout.Cold, layout.Remote} {
		keys[t] = layout.Key{Venue: "binance-perp", Symbol: "eth-usdt", Date: fmt.Sprintf("2024-08-%02d", 9-i)}
	}
	began := time.Now()
	writeGenPartition(b, e.roots.Warm, keys[layout.Warm], size)
	src := filepath.Join(testkit.PartDir(e.roots.Warm, keys[layout.Warm]), layout.BookName)
	for _, t := range []layout.Tier{layout.Cold, layout.Remote} {
		d := testkit.PartDir(e.roots.Warm, keys[t])
		os.MkdirAll(filepath.Join(d, bookindex.Dir), 0o755)
		mustCopy(b, src, filepath.Join(d, layout.BookName))
		for _, n := range []string{bookindex.TimeName, bookindex.SnapshotsName, bookindex.EventsName, bookindex.BooksName} {
			mustCopy(b, filepath.Join(filepath.Dir(src), bookindex.Dir, n), filepath.Join(d, bookindex.Dir, n))
		}
		if err := tiermove.WarmToCold(e.roots.Warm, e.roots.Cold, keys[t], benchBlock(b)); err != nil {
			b.Fatal(err)
		}
	}
	if err := tiermove.ColdToRemote(e.roots.Cold, e.store, keys[layout.Remote]); err != nil {
		b.Fatal(err)
	}
	local, err := bookview.OpenDir(filepath.Dir(src))
	if err != nil {
		b.Fatal(err)
	}
	lo, hi, _ := local.Span()
	rows := local.Rows(bookview.View{Kind: bookview.KindTop, N: 10})
	local.Close()
	b.Logf("views fixture: %d MiB book, %d depth updates, %.0f s of exchange time, built in %v", size>>20, rows, float64(hi-lo)/1e9, time.Since(began).Round(time.Millisecond))
	testenv.Note(b, "views.fixture", fmt.Sprintf("books.Gen book of %d MiB: %d depth updates over %.0f s, a 2,000-level snapshot run a minute", size>>20, rows, float64(hi-lo)/1e9))

	const cacheBytes, viewsCache = 64 << 20, 32 << 20
	cfg := e.config(b, fmt.Sprintf("cache_bytes = %d\nviews_cache_bytes = %d\ndisk_cache_bytes = 0\n", cacheBytes, viewsCache))
	rng := rand.New(rand.NewSource(7))
	for round := range b.N {
		// The book at random instants through the API, each tier with a fresh resolver.
		for _, t := range []layout.Tier{layout.Warm, layout.Cold, layout.Remote} {
			ours, base := bookAtRound(b, e, keys[t], lo, hi, rng)
			testenv.Emit(b, testenv.Figure{ID: "views.book_at_p99." + t.String(), Value: ours, Baseline: base, Unit: "ms"})
		}
		// First passes through a fresh mount: cold views/top10.npy and the same partition's
		// cold book.q, in turns (which goes first alternates by round).
		v := bookview.View{Kind: bookview.KindTop, N: 10}
		mp := mountpoint(b)
		d := start(b, cfg, mp)
		part := filepath.Join(mp, filepath.FromSlash(keys[layout.Cold].Dir()))
		top, book := filepath.Join(part, "views", "top10.npy"), filepath.Join(part, layout.BookName)
		var tv, tb time.Duration
		for i := range 2 {
			if (i+round)%2 == 0 {
				tv = timeCmd(b, "dd", "if="+top, "of=/dev/null", "bs=1M", "status=none")
			} else {
				tb = timeCmd(b, "dd", "if="+book, "of=/dev/null", "bs=1M", "status=none")
			}
		}
		testenv.Emit(b, testenv.Figure{ID: "views.top10_seq", Value: tv.Seconds(), Baseline: tb.Seconds(), Unit: "s"})
		b.Logf("round %d: first pass of cold top10.npy %v (%d MiB), of cold book.q %v", round, tv.Round(time.Millisecond), v.Size(rows)>>20, tb.Round(time.Millisecond))
		d.signal(syscall.SIGTERM)
		d.wait(30 * time.Second)
		// Random rows through another fresh mount.
		mp = mountpoint(b)
		d = start(b, cfg, mp)
		part = filepath.Join(mp, filepath.FromSlash(keys[layout.Cold].Dir()))
		top, book = filepath.Join(part, "views", "top10.npy"), filepath.Join(part, layout.BookName)
		lat := preadRows(b, top, v.DataOffset(), v.RowSize(), rows, int64(round), 300)
		blat := preadRows(b, book, format.HeaderSize, format.BookRecordSize, (size-format.HeaderSize)/format.BookRecordSize, int64(round), 300)
		testenv.Emit(b, testenv.Figure{ID: "views.top10_random_p99", Value: ms(lat[len(lat)*99/100]), Baseline: ms(blat[len(blat)*99/100]), Unit: "ms"})
		b.Logf("round %d: cold top10.npy random row p50/p99 %.2f/%.2f ms; cold book.q record %.2f/%.2f ms", round,
			ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), ms(blat[len(blat)/2]), ms(blat[len(blat)*99/100]))
		// Then a whole pass of every view, so the daemon has served them all.
		for _, name := range []string{"top1.npy", "top25.npy", "trades.npy", "bbo.npy"} {
			timeCmd(b, "dd", "if="+filepath.Join(part, "views", name), "of=/dev/null", "bs=1M", "status=none")
		}
		hwm := testenv.PeakRSS(b, d.cmd.Process.Pid)
		bound := int64(cacheBytes + viewsCache + 100<<20)
		testenv.Emit(b, testenv.Figure{ID: "fs.views_rss", Value: float64(hwm) / (1 << 20), Baseline: float64(bound) / (1 << 20), Unit: "MiB"})
		b.Logf("round %d: peak RSS %d MiB after random rows and a pass of every view (caches %d + %d MiB + 100)", round, hwm>>20, cacheBytes>>20, viewsCache>>20)
		d.signal(syscall.SIGTERM)
		d.wait(30 * time.Second)
	}
}

// bookAtRound times the book at 300 random instants through bookview over a fresh
// resolver's handle, and the baseline, a replay from the partition's start, at 15 of them;
// it returns both p99s in ms.
func bookAtRound(b *testing.B, e *env, k layout.Key, lo, hi int64, rng *rand.Rand) (ours, base float64) {
	b.Helper()
	ctx := context.Background()
	cache, err := qzst.NewCache(qzst.CacheOptions{MaxBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close()
	res, err := tiers.New(e.roots, tiers.Options{Store: e.store, Cache: cache})
	if err != nil {
		b.Fatal(err)
	}
	defer res.Close()
	h, err := res.OpenBook(ctx, k)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	ix, err := bookview.LoadIndexes(k.Dir(), func(rel string, max int64) ([]byte, error) {
		f, err := res.Open(ctx, k.Dir()+"/"+rel)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		buf := make([]byte, f.Size())
		if n, err := f.ReadAt(buf, 0); n < len(buf) {
			return nil, err
		}
		return buf, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	bh, err := res.Open(ctx, k.Dir()+"/"+bookview.BooksPath) // read a state at a time
	if err != nil {
		b.Fatal(err)
	}
	defer bh.Close()
	if ix.Books, err = bookview.OpenBooks(k.Dir(), bh, bh.Size()); err != nil {
		b.Fatal(err)
	}
	p, err := bookview.Open(h, h.Size(), k.Dir(), ix)
	if err != nil {
		b.Fatal(err)
	}
	var lat, blat, calm []time.Duration // calm: answers during which no thread of ours was preempted
	var cpu time.Duration               // this process's CPU time in the answers (decoding on other goroutines included)
	for i := range 300 {
		t := lo + rng.Int63n(hi-lo)
		c0, p0 := processCPU(), preempted()
		t0 := time.Now()
		if _, err := p.BookAt(t, 0); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		cpu += processCPU() - c0
		if preempted() == p0 {
			calm = append(calm, lat[len(lat)-1])
		}
		if i%20 == 0 {
			t0 = time.Now()
			replayFromStart(b, h, t)
			blat = append(blat, time.Since(t0))
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	sort.Slice(blat, func(i, j int) bool { return blat[i] < blat[j] })
	sort.Slice(calm, func(i, j int) bool { return calm[i] < calm[j] })
	calm99 := math.NaN()
	if len(calm) > 0 {
		calm99 = ms(calm[len(calm)*99/100])
	}
	b.Logf("book at random instants from %s: p50/p99 %.2f/%.2f ms, CPU %.2f ms an answer, %.0f%% of answers preempted, p99 of the others %.2f ms; replay from the start p50/p99 %.0f/%.0f ms",
		h.Tier(), ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), ms(cpu)/float64(len(lat)), 100*float64(len(lat)-len(calm))/float64(len(lat)), calm99,
		ms(blat[len(blat)/2]), ms(blat[len(blat)*99/100]))
	return ms(lat[len(lat)*99/100]), ms(blat[len(blat)*99/100])
}

// replayFromStart is what a user does today: read the book from its first record and apply
// every level record up to t into a map per side.
func replayFromStart(b *testing.B, h tiers.Handle, t int64) {
	br, err := format.OpenBook(h, h.Size(), "book")
	if err != nil {
		b.Fatal(err)
	}
	bids, asks := map[int64]int64{}, map[int64]int64{}
	it := br.Iter()
	for it.Next() {
		r := it.Record()
		if r.ExchTs > t {
			break
		}
		switch {
		case r.TypeID == format.TypeSnapshotBegin:
			clear(bids)
			clear(asks)
		case r.TypeID == format.TypeLevel:
			m := bids
			if r.Flags&format.FlagAsk != 0 {
				m = asks
			}
			if r.Qty == 0 {
				delete(m, r.Price)
			} else {
				m[r.Price] = r.Qty
			}
		}
	}
	if it.Err() != nil {
		b.Fatal(it.Err())
	}
}

// preadRows times n reads of one row at random rows of a file through the mount, its
// pages dropped first; returns the latencies sorted.
func preadRows(b *testing.B, p string, off, rowSize, rows, seed int64, n int) []time.Duration {
	b.Helper()
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	rng := rand.New(rand.NewSource(seed))
	buf := make([]byte, rowSize)
	lat := make([]time.Duration, 0, n)
	for range n {
		at := off + rng.Int63n(rows)*rowSize
		t0 := time.Now()
		if _, err := f.ReadAt(buf, at); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat
}

// processCPU is this process's CPU time (user and system, every thread).
func processCPU() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

// preempted counts the times the scheduler took a thread of this process off its core
// while it could run (involuntary context switches): what the machine's other load adds.
func preempted() int64 {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return ru.Nivcsw
}
