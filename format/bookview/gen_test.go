package bookview

import (
	"math/rand/v2"
	"path/filepath"
	"sort"
	"testing"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookindex"
)

// genBook makes a canonical record stream with every case the views must get right:
// depth updates of several levels at equal times, deletes of absent levels, updates that
// change no level, crossed books, trades and tickers between them, periodic snapshot runs
// that restate the book (some stamped a few ms after the depth updates that follow them, as
// a run triggered by a trade is), gaps (book_invalid, then trades flagged BOOK_INVALID,
// then a resync run and its bridging update), an opening run that is empty and invalid or
// a valid one, and records of a type from the future.
func genBook(seed uint64, n int, invalidStart bool) []format.BookRecord {
	rng := rand.New(rand.NewPCG(seed, seed*7+1))
	bids, asks := map[int64]int64{}, map[int64]int64{}
	var out []format.BookRecord
	day := int64(1723161600_000_000_000) // 2024-08-09
	ts := day + 1_000_000_000
	seq := uint64(1000)
	mid := int64(250000)
	known := false
	add := func(r format.BookRecord) {
		r.SymbolID = 7
		if r.RecvTs == 0 {
			r.RecvTs = r.ExchTs + 1_000_000 + rng.Int64N(1000)
		}
		out = append(out, r)
	}
	run := func(t int64, valid bool) {
		fl := format.FlagSnapshot
		if !valid {
			fl |= format.FlagBookInvalid
			bids, asks = map[int64]int64{}, map[int64]int64{}
		}
		add(format.BookRecord{TypeID: format.TypeSnapshotBegin, Flags: fl, ExchTs: t, Seq: seq, Aux0: int64(len(bids) + len(asks))})
		for _, side := range []struct {
			m    map[int64]int64
			flag uint16
			desc bool
		}{{bids, format.FlagBid, true}, {asks, format.FlagAsk, false}} {
			ps := make([]int64, 0, len(side.m))
			for p := range side.m {
				ps = append(ps, p)
			}
			sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] != side.desc })
			for _, p := range ps {
				add(format.BookRecord{TypeID: format.TypeLevel, Flags: side.flag | format.FlagSnapshot, ExchTs: t, Seq: seq, Price: p, Qty: side.m[p]})
			}
		}
		add(format.BookRecord{TypeID: format.TypeSnapshotEnd, Flags: fl | format.FlagLast, ExchTs: t, Seq: seq})
		known = valid
	}
	seed0 := func() {
		bids, asks = map[int64]int64{}, map[int64]int64{}
		for i := int64(1); i <= 30; i++ {
			bids[(mid-i)*100] = 1 + rng.Int64N(50)
			asks[(mid+i)*100] = 1 + rng.Int64N(50)
		}
	}
	if invalidStart {
		run(ts, false)
		for range 20 {
			ts += rng.Int64N(3_000_000)
			add(format.BookRecord{TypeID: format.TypeTrade, Flags: format.FlagLast | format.FlagBid | format.FlagBookInvalid, ExchTs: ts, Price: mid * 100, Qty: 3})
		}
	}
	seed0()
	run(ts, true)
	nextSnap := ts + 500_000_000
	for len(out) < n {
		step := rng.Int64N(4_000_000)
		if rng.IntN(5) == 0 {
			step = 0 // several events at one exchange time
		}
		ts += step
		x := rng.IntN(100)
		switch {
		case !known && x < 30:
			// resync: a run of a fresh book and the update that bridges it
			seed0()
			run(ts, true)
			fallthrough
		case known && x < 45:
			seq += 1 + uint64(rng.IntN(5))
			k := rng.IntN(6) // 0: an update that changes no level
			mid += rng.Int64N(3) - 1
			for j := range k {
				bid := rng.IntN(2) == 0
				off := 1 + rng.Int64N(12)
				if rng.IntN(30) == 0 {
					off = -1 - rng.Int64N(3) // through the touch: a crossed book
				}
				p, m, flag := (mid-off)*100, bids, format.FlagBid
				if !bid {
					p, m, flag = (mid+off)*100, asks, format.FlagAsk
				}
				q := 1 + rng.Int64N(60)
				if rng.IntN(4) == 0 {
					q = 0 // a delete, sometimes of an absent level
				}
				if q == 0 {
					delete(m, p)
				} else {
					m[p] = q
				}
				if j == k-1 {
					flag |= format.FlagLast
					if crossedMaps(bids, asks) {
						flag |= format.FlagCrossed
					}
				}
				add(format.BookRecord{TypeID: format.TypeLevel, Flags: flag, ExchTs: ts, Seq: seq, Price: p, Qty: q})
			}
			if k == 0 {
				fl := format.FlagLast
				if crossedMaps(bids, asks) {
					fl |= format.FlagCrossed
				}
				add(format.BookRecord{TypeID: format.TypeLevel, Flags: fl, ExchTs: ts, Seq: seq})
			}
		case x < 70:
			fl := format.FlagLast | format.FlagAsk
			if !known {
				fl |= format.FlagBookInvalid
			}
			add(format.BookRecord{TypeID: format.TypeTrade, Flags: fl, ExchTs: ts - rng.Int64N(3_000_000), Seq: uint64(len(out)), Price: mid * 100, Qty: 2})
		case x < 93:
			add(format.BookRecord{TypeID: format.TypeBBO, Flags: format.FlagLast, ExchTs: ts, Seq: seq, Price: (mid - 1) * 100, Qty: 1, Aux0: (mid + 1) * 100, Aux1: 1})
		case x < 95:
			add(format.BookRecord{TypeID: 9, ExchTs: ts}) // from the future: skipped
		case known && x < 97:
			add(format.BookRecord{TypeID: format.TypeBookInvalid, Flags: format.FlagBookInvalid | format.FlagLast, ExchTs: ts, Seq: seq, Qty: 2 + rng.Int64N(3)})
			bids, asks = map[int64]int64{}, map[int64]int64{}
			known = false
		}
		if known && ts >= nextSnap {
			// A periodic run: sometimes dated by a later trade, after which depth updates
			// of earlier times follow.
			t := ts
			if rng.IntN(2) == 0 {
				t += 1 + rng.Int64N(3_000_000)
			}
			run(t, true)
			nextSnap += 500_000_000
		}
	}
	return out
}

func crossedMaps(bids, asks map[int64]int64) bool {
	bb, ba := int64(-1), int64(-1)
	for p := range bids {
		bb = max(bb, p)
	}
	for p := range asks {
		if ba < 0 || p < ba {
			ba = p
		}
	}
	return bb >= 0 && ba >= 0 && bb >= ba
}

// writeBook writes records as a sealed book.q in dir (with index/ when index is set).
func writeBook(t testing.TB, dir string, recs []format.BookRecord, index bool) string {
	t.Helper()
	p := filepath.Join(dir, bookindex.BookName)
	a, err := format.Create(p, format.NewBookHeader("binance-perp", "eth-usdt", 7, 20240809), format.Options{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if err := a.AppendBook(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Seal(); err != nil {
		t.Fatal(err)
	}
	if index {
		data := make([]byte, len(recs)*format.BookRecordSize)
		for i := range recs {
			recs[i].Put(data[i*format.BookRecordSize:])
		}
		ix, err := bookindex.BuildIndex(data, int64(len(recs)), format.HeaderSize)
		if err != nil {
			t.Fatal(err)
		}
		// The book index at the stride the test asks for (booksStride), as the refinery
		// writes it at the default.
		bb := bookindex.BooksBuilder{Stride: booksStride, DataOffset: format.HeaderSize}
		bb.Add(data)
		ix.Books = bb.Books()
		if err := ix.Write(dir); err != nil {
			t.Fatal(err)
		}
	}
	return p
}
