package book_test

import (
	"container/heap"
	"math/rand"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/chronicle/chronicle/etl/book"
	"github.com/chronicle/chronicle/internal/capture"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/venue"
	"github.com/chronicle/chronicle/venue/binance"
)

// TestPriceWalk: a book whose price walks +-50% within a day (a synthetic depth stream at
// the tick of ETHUSDT, 0.01, levels placed and deleted around a moving best price and a
// few deep ones) re-centres its windows without losing a level: after every update the
// best levels and depth equal the reference's, and every few hundred the whole book does.
// The memory stays within the windows and the levels the map holds.
func TestPriceWalk(t *testing.T) {
	seed := testenv.Seed(t)
	rnd := rand.New(rand.NewSource(seed))
	const tick = 1_000_000 // 0.01 at 8 decimals
	var b book.Book
	r := newRef()
	var mh mapHeapBook
	mid := int64(2600_00) // in ticks
	lo, hi := mid, mid
	steps := 200_000
	if testing.Short() || raceEnabled {
		steps = 50_000
	}
	for step := 1; step <= steps; step++ {
		// Over the steps the mid price moves up by half, down to half its start and back:
		// a day of +-50%.
		phase := float64(step) / float64(steps)
		target := 2600_00 * (1 + 0.5*sinLike(phase))
		mid += int64(target-float64(mid))/64 + rnd.Int63n(7) - 3
		lo, hi = min(lo, mid), max(hi, mid)
		bid := rnd.Intn(2) == 0
		var p int64
		switch x := rnd.Intn(100); {
		case x < 90: // near the top
			off := int64(rnd.ExpFloat64() * 30)
			if bid {
				p = mid - 1 - off
			} else {
				p = mid + 1 + off
			}
		case x < 97: // deep in the book
			off := 2000 + rnd.Int63n(60000)
			if bid {
				p = max(1, mid-off)
			} else {
				p = mid + off
			}
		default: // through the other side's best: the book crosses for a moment
			p = mid + rnd.Int63n(21) - 10
		}
		q := int64(0)
		if rnd.Intn(2) > 0 {
			q = 1 + rnd.Int63n(1e9)
		}
		if err := b.Set(bid, p*tick, q); err != nil {
			t.Fatal(err)
		}
		r.set(bid, p*tick, q)
		mh.set(bid, p*tick, q)
		checkTop(t, step, &b, &mh)
		if step%5000 == 0 {
			check(t, step, "walk", &b, r)
		}
	}
	if float64(hi) < 2600_00*1.45 || float64(lo) > 2600_00*0.55 {
		t.Fatalf("the walk went from %d to %d ticks only", lo, hi)
	}
	check(t, steps, "end", &b, r)
	nb, na := b.Depth()
	fb, fa := b.Far()
	limit := 2*(book.Window*8+book.Window/8+8) + (fb+fa)*24
	if b.Bytes() > limit {
		t.Fatalf("book holds %d bytes, more than its windows and %d far levels (%d)", b.Bytes(), fb+fa, limit)
	}
	t.Logf("price %d..%d ticks; %d/%d levels, %d/%d of them in the maps; %d bytes", lo, hi, nb, na, fb, fa, b.Bytes())
}

// sinLike is a smooth up, down and back curve over [0, 1]: 0 -> 1 -> -1 -> 0.
func sinLike(x float64) float64 {
	switch {
	case x < 0.25:
		return x * 4
	case x < 0.75:
		return 1 - (x-0.25)*4
	}
	return -1 + (x-0.75)*4
}

// checkTop compares the best levels and depth with the map and heap book, which finds
// its best levels in logarithmic time (cheap enough for every step).
func checkTop(t *testing.T, step int, b *book.Book, r *mapHeapBook) {
	t.Helper()
	nb, na := b.Depth()
	if nb != len(r.bids.lv) || na != len(r.asks.lv) {
		t.Fatalf("step %d: depth %d/%d, want %d/%d", step, nb, na, len(r.bids.lv), len(r.asks.lv))
	}
	wb, wa := r.best()
	bb, _ := b.BestBid()
	ba, _ := b.BestAsk()
	if bb != wb || ba != wa {
		t.Fatalf("step %d: best %+v / %+v, want %+v / %+v", step, bb, ba, wb, wa)
	}
}

// depthUpdates returns the levels of every depth update and snapshot in a capture, in
// order: snapshots as Resets, updates as Sets.
type bookOp struct {
	reset      bool
	bids, asks []venue.Level
}

func captureOps(t testing.TB, v venue.Venue, files ...string) []bookOp {
	t.Helper()
	var ops []bookOp
	for _, f := range files {
		recs, err := capture.ReadAll(filepath.Join(testenv.CapturesDir(), f))
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			switch rec.Kind {
			case capture.KindSnapshot:
				var s venue.BookSnapshot
				if v.DecodeSnapshot(rec.Payload, &s) == nil {
					ops = append(ops, bookOp{reset: true, bids: slices.Clone(s.Bids), asks: slices.Clone(s.Asks)})
				}
			case capture.KindMessage:
				var m venue.Message
				if v.Decode(rec.Payload, &m) == nil && m.Kind == venue.KindDepth {
					ops = append(ops, bookOp{bids: slices.Clone(m.Bids), asks: slices.Clone(m.Asks)})
				}
			}
		}
	}
	return ops
}

var bookCaptures = []struct {
	name  string
	v     venue.Venue
	files []string
}{
	{"usdm", binance.New(), []string{"binance-usdm_ethusdt_20240808.jsonl.gz"}},
	{"coinm", binance.NewCoinM(), []string{"binance-coinm_ethusd_perp_20240808.jsonl.gz", "binance-coinm_ethusd_perp_20240809.jsonl.gz"}},
	{"spot", binance.NewSpot(), []string{"binance-spot_ethusdt_20240808.jsonl.gz", "binance-spot_ethusdt_20240809.jsonl.gz"}},
}

// TestCaptureReplay applies every snapshot and depth update of the real captures to the
// ladder and to the book of issue 13 (map and heap sides), comparing the best levels after
// every update and the whole book every hundred.
func TestCaptureReplay(t *testing.T) {
	for _, c := range bookCaptures {
		t.Run(c.name, func(t *testing.T) {
			ops := captureOps(t, c.v, c.files...)
			every := 100
			if raceEnabled {
				every = 1000
			}
			var b book.Book
			var old mapHeapBook
			for i, op := range ops {
				if op.reset {
					if err := b.Reset(op.bids, op.asks); err != nil {
						t.Fatal(err)
					}
					old.reset(op.bids, op.asks)
					continue
				}
				for _, side := range []struct {
					bid bool
					lv  []venue.Level
				}{{true, op.bids}, {false, op.asks}} {
					if err := b.Apply(side.bid, side.lv); err != nil {
						t.Fatal(err)
					}
					for _, l := range side.lv {
						old.set(side.bid, l.Price, l.Qty)
					}
				}
				bb, _ := b.BestBid()
				ba, _ := b.BestAsk()
				if ob, oa := old.best(); bb != ob || ba != oa {
					t.Fatalf("update %d: best %+v / %+v, the map and heap book %+v / %+v", i, bb, ba, ob, oa)
				}
				if i%every == 0 || i == len(ops)-1 {
					if st := b.State(); !reflect.DeepEqual(st, old.state()) {
						t.Fatalf("update %d: the books differ", i)
					}
				}
			}
			nb, na := b.Depth()
			fb, fa := b.Far()
			t.Logf("%d updates; %d/%d levels at the end, %d/%d in the maps; %d bytes", len(ops), nb, na, fb, fa, b.Bytes())
		})
	}
}

// BenchmarkReplayCaptures: every depth update of a real capture applied to the ladder and,
// in the same run, to the book of issue 13 (maps and heaps), in ns per level; with the
// share of levels set outside the ladder's window, the ladder's memory at the end and at
// its peak (Book.Bytes), and the live heap the map and heap book holds at the end
// (etl.book_bytes).
func BenchmarkReplayCaptures(b *testing.B) {
	for _, c := range bookCaptures {
		b.Run(c.name, func(b *testing.B) {
			ops := captureOps(b, c.v, c.files...)
			var levels, far int64
			for _, op := range ops {
				if !op.reset {
					levels += int64(len(op.bids) + len(op.asks))
				}
			}
			var tLadder, tOld time.Duration
			var ladderBytes, oldBytes, peak int
			for i := 0; i < b.N; i++ {
				var lb book.Book
				t0 := time.Now()
				for _, op := range ops {
					if op.reset {
						lb.Reset(op.bids, op.asks)
						continue
					}
					lb.Apply(true, op.bids)
					lb.Apply(false, op.asks)
					lb.BestBid()
					lb.BestAsk()
				}
				tLadder += time.Since(t0)
				ladderBytes = lb.Bytes()
				var ob mapHeapBook
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				t0 = time.Now()
				for _, op := range ops {
					if op.reset {
						ob.reset(op.bids, op.asks)
						continue
					}
					for _, l := range op.bids {
						ob.set(true, l.Price, l.Qty)
					}
					for _, l := range op.asks {
						ob.set(false, l.Price, l.Qty)
					}
					ob.best()
				}
				tOld += time.Since(t0)
				runtime.GC()
				runtime.ReadMemStats(&m1)
				oldBytes = int(m1.HeapAlloc) - int(m0.HeapAlloc)
				runtime.KeepAlive(&ob)
			}
			// The share of updates outside the window and the peak footprint: replay once
			// more, counting.
			var lb book.Book
			for _, op := range ops {
				peak = max(peak, lb.Bytes())
				if op.reset {
					lb.Reset(op.bids, op.asks)
					continue
				}
				for si, side := range [][]venue.Level{op.bids, op.asks} {
					for _, l := range side {
						fb, fa := lb.Far()
						lb.Set(si == 0, l.Price, l.Qty)
						if nb, na := lb.Far(); nb != fb || na != fa {
							far++
						}
					}
				}
			}
			n := float64(levels) * float64(b.N)
			b.ReportMetric(float64(tLadder.Nanoseconds())/n, "ladder_ns/level")
			b.ReportMetric(float64(tOld.Nanoseconds())/n, "mapheap_ns/level")
			b.ReportMetric(float64(ladderBytes), "ladder_bytes")
			b.ReportMetric(float64(max(peak, lb.Bytes())), "ladder_peak_bytes")
			b.ReportMetric(float64(oldBytes), "mapheap_bytes")
			b.Logf("%s: %d levels in %d updates; ladder %.1f ns/level, map+heap %.1f; %d bytes vs %d; at least %d levels (%.1f%%) changed the far maps",
				c.name, levels, len(ops), float64(tLadder.Nanoseconds())/n, float64(tOld.Nanoseconds())/n, ladderBytes, oldBytes, far, 100*float64(far)/float64(levels))
		})
	}
}

// mapHeapBook is the book of issue 13, kept as the tests' and benchmarks' second
// implementation: each side a map from key to quantity and a lazy max-heap of keys (a bid's
// key is its price, an ask's minus its price).
type mapHeapBook struct{ bids, asks mhSide }

type mhSide struct {
	lv map[int64]int64
	h  keyHeap
}

type keyHeap []int64

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return h[i] > h[j] }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *keyHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (s *mhSide) set(key, qty int64) {
	if s.lv == nil {
		s.lv = make(map[int64]int64, 1024)
	}
	if qty == 0 {
		delete(s.lv, key)
		return
	}
	if _, ok := s.lv[key]; !ok {
		heap.Push(&s.h, key)
		if len(s.h) > 2*len(s.lv)+1024 {
			s.lv[key] = qty
			s.rebuild()
			return
		}
	}
	s.lv[key] = qty
}

func (s *mhSide) rebuild() {
	s.h = s.h[:0]
	for k := range s.lv {
		s.h = append(s.h, k)
	}
	heap.Init(&s.h)
}

func (s *mhSide) best() (int64, int64, bool) {
	for len(s.h) > 0 {
		k := s.h[0]
		if q, ok := s.lv[k]; ok {
			return k, q, true
		}
		heap.Pop(&s.h)
	}
	return 0, 0, false
}

func (s *mhSide) sorted() []venue.Level {
	out := []venue.Level{}
	for k, q := range s.lv {
		out = append(out, venue.Level{Price: k, Qty: q})
	}
	slices.SortFunc(out, func(a, b venue.Level) int { return cmpInt(b.Price, a.Price) })
	return out
}

func (b *mapHeapBook) set(bid bool, price, qty int64) {
	if bid {
		b.bids.set(price, qty)
	} else {
		b.asks.set(-price, qty)
	}
}

func (b *mapHeapBook) reset(bids, asks []venue.Level) {
	b.bids, b.asks = mhSide{}, mhSide{}
	for _, l := range bids {
		b.bids.set(l.Price, l.Qty)
	}
	for _, l := range asks {
		b.asks.set(-l.Price, l.Qty)
	}
	b.bids.rebuild()
	b.asks.rebuild()
}

func (b *mapHeapBook) best() (bid, ask venue.Level) {
	if k, q, ok := b.bids.best(); ok {
		bid = venue.Level{Price: k, Qty: q}
	}
	if k, q, ok := b.asks.best(); ok {
		ask = venue.Level{Price: -k, Qty: q}
	}
	return bid, ask
}

func (b *mapHeapBook) state() book.State {
	s := book.State{Bids: b.bids.sorted(), Asks: b.asks.sorted()}
	for i := range s.Asks {
		s.Asks[i].Price = -s.Asks[i].Price
	}
	return s
}
