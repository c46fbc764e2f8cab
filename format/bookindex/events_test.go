package bookindex

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/chronicle/chronicle/format"
)

// genRecords makes n records of every type whose times wander with reorderings, snapshot
// runs (some flagged BOOK_INVALID) and depth updates of several level records.
func genRecords(rng *rand.Rand, n int) ([]byte, []format.BookRecord) {
	var recs []format.BookRecord
	ts := int64(1723161600_000_000_000)
	for len(recs) < n {
		ts += rng.Int64N(30_000_000)
		t := ts - rng.Int64N(200_000_000)
		switch x := rng.IntN(20); {
		case x == 0:
			fl := format.FlagSnapshot
			if rng.IntN(3) == 0 {
				fl |= format.FlagBookInvalid
			}
			recs = append(recs, format.BookRecord{TypeID: format.TypeSnapshotBegin, Flags: fl, ExchTs: t, Aux0: 2})
			recs = append(recs, format.BookRecord{TypeID: format.TypeLevel, Flags: format.FlagSnapshot | format.FlagBid, ExchTs: t, Price: 1, Qty: 1})
			recs = append(recs, format.BookRecord{TypeID: format.TypeLevel, Flags: format.FlagSnapshot | format.FlagAsk, ExchTs: t, Price: 2, Qty: 1})
			recs = append(recs, format.BookRecord{TypeID: format.TypeSnapshotEnd, Flags: format.FlagSnapshot | format.FlagLast, ExchTs: t})
		case x < 8:
			k := 1 + rng.IntN(4)
			for j := range k {
				fl := format.FlagBid
				if j == k-1 {
					fl |= format.FlagLast
				}
				recs = append(recs, format.BookRecord{TypeID: format.TypeLevel, Flags: fl, ExchTs: t, Price: int64(j), Qty: 1})
			}
		case x < 12:
			recs = append(recs, format.BookRecord{TypeID: format.TypeTrade, Flags: format.FlagLast, ExchTs: t})
		case x < 18:
			recs = append(recs, format.BookRecord{TypeID: format.TypeBBO, Flags: format.FlagLast, ExchTs: t})
		case x == 18:
			recs = append(recs, format.BookRecord{TypeID: format.TypeBookInvalid, Flags: format.FlagBookInvalid | format.FlagLast, ExchTs: t, Qty: 2})
		default:
			recs = append(recs, format.BookRecord{TypeID: 42, ExchTs: t}) // a type from the future
		}
	}
	recs = recs[:n]
	return encodeRecords(recs), recs
}

// TestBuilderEqualsBuild: the streaming builder, fed in pieces of any size, gives what
// Build and BuildEvents give over the whole book, and the events index counts what a
// plain loop over the records counts.
func TestBuilderEqualsBuild(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 7, 1000, 40000} {
		data, recs := genRecords(rng, n)
		wt, ws, err := Build(data, int64(n))
		if err != nil {
			t.Fatal(err)
		}
		we, err := BuildEvents(data, int64(n))
		if err != nil {
			t.Fatal(err)
		}
		var b Builder
		for off := 0; off < len(data); {
			k := min(len(data)-off, (1+rng.IntN(3000))*format.BookRecordSize)
			if err := b.Add(data[off : off+k]); err != nil {
				t.Fatal(err)
			}
			off += k
		}
		if gt := b.Time(); !reflect.DeepEqual(gt, wt) && !(n == 0 && gt.Records == 0 && len(gt.Lo) == 0) {
			t.Fatalf("n=%d: builder time index differs from Build's", n)
		}
		if gs := b.Snapshots(); len(gs) != len(ws) || len(ws) > 0 && !reflect.DeepEqual(gs, ws) {
			t.Fatalf("n=%d: builder snapshots differ", n)
		}
		if ge := b.Events(); !reflect.DeepEqual(ge, we) {
			t.Fatalf("n=%d: builder events differ", n)
		}
		// Counts by a plain loop, at every anchor.
		var d, tr, bb uint64
		k := 0
		for i, r := range recs {
			for k < len(we.Anchors) && we.Anchors[k].Record == uint64(i) {
				if a := we.Anchors[k]; a.Depth != d || a.Trades != tr || a.BBO != bb {
					t.Fatalf("n=%d anchor %d at %d: counts %d/%d/%d, want %d/%d/%d", n, k, i, a.Depth, a.Trades, a.BBO, d, tr, bb)
				}
				k++
			}
			switch {
			case IsDepthUpdate(r.TypeID, r.Flags):
				d++
			case r.TypeID == format.TypeTrade:
				tr++
			case r.TypeID == format.TypeBBO:
				bb++
			}
		}
		if tot := we.Totals(); tot.Depth != d || tot.Trades != tr || tot.BBO != bb || tot.Record != uint64(n) || k != len(we.Anchors)-1 {
			t.Fatalf("n=%d: totals %+v, want %d/%d/%d (anchors seen %d of %d)", n, tot, d, tr, bb, k, len(we.Anchors))
		}
		// Round trip through the file format.
		got, err := ParseEvents(MarshalEvents(we), "events.idx")
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if !reflect.DeepEqual(got, we) {
			t.Fatalf("n=%d: events index does not survive its encoding", n)
		}
		// Continuing an index from its end gives the index of the whole book.
		if n > 10 {
			half, _ := BuildEvents(data, int64(n/2))
			c := NewEventsBuilder(half)
			c.Add(data[n/2*format.BookRecordSize:])
			if !reflect.DeepEqual(c.Events(), we) {
				t.Fatalf("n=%d: an index continued from its half differs", n)
			}
		}
	}
}

// TestSeek: the anchor Seek returns starts a stretch holding the row, for depth rows a
// snapshot anchor (or the first).
func TestSeek(t *testing.T) {
	data, recs := genRecords(rand.New(rand.NewPCG(5, 6)), 50000)
	e, _ := BuildEvents(data, int64(len(recs)))
	tot := e.Totals()
	for row := uint64(0); row < tot.Depth; row += 7 {
		i := e.Seek(row, true, func(a Anchor) uint64 { return a.Depth })
		a := e.Anchors[i]
		if a.Depth > row || i > 0 && a.Flags&AnchorSnapshot == 0 {
			t.Fatalf("row %d: anchor %d %+v", row, i, a)
		}
		if j := i + 1; j < len(e.Anchors) {
			for ; j < len(e.Anchors)-1 && e.Anchors[j].Flags&AnchorSnapshot == 0; j++ {
			}
			if e.Anchors[j].Depth <= row && j < len(e.Anchors)-1 {
				t.Fatalf("row %d: a later snapshot anchor %d also precedes it", row, j)
			}
		}
	}
	for row := uint64(0); row < tot.Trades; row += 5 {
		i := e.Seek(row, false, func(a Anchor) uint64 { return a.Trades })
		if a, b := e.Anchors[i], e.Anchors[i+1]; a.Trades > row || b.Trades <= row || b.Record-a.Record > uint64(e.Stride) {
			t.Fatalf("trade row %d: anchors %+v %+v", row, a, b)
		}
	}
}

func TestCorruptEvents(t *testing.T) {
	data, recs := genRecords(rand.New(rand.NewPCG(1, 2)), 40000)
	e, _ := BuildEvents(data, int64(len(recs)))
	good := MarshalEvents(e)
	if _, err := ParseEvents(good, "e"); err != nil {
		t.Fatal(err)
	}
	// Each mutation re-seals the checksums, so that the check of the content is what fails.
	reseal := func(b []byte) []byte {
		eb := b[HeaderSize:]
		h := header(KindEvents, EventsEntrySize, uint64(len(eb)/EventsEntrySize), leU64(b[24:]), int64(leU64(b[32:])), eb)
		copy(b, h)
		return b
	}
	at := func(i, off int) int { return HeaderSize + i*EventsEntrySize + off }
	for _, c := range []struct {
		name string
		mut  func([]byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
		{"entry bit flip", func(b []byte) []byte { b[at(1, 3)] ^= 1; return b }},
		{"records out of order", func(b []byte) []byte { putU64(b[at(2, 0):], leU64(b[at(1, 0):])); return reseal(b) }},
		{"count falls", func(b []byte) []byte { putU64(b[at(3, 8):], 0); return reseal(b) }},
		{"count jumps", func(b []byte) []byte { putU64(b[at(3, 16):], 1<<40); return reseal(b) }},
		{"stride anchor missing", func(b []byte) []byte {
			i := 1
			for ; leU64(b[at(i, 32):])&AnchorStride == 0; i++ {
			}
			return reseal(append(b[:at(i, 0)], b[at(i+1, 0):]...))
		}},
		{"no end", func(b []byte) []byte { b[at(len(e.Anchors)-1, 32)] = AnchorStride; return reseal(b) }},
		{"end short of the book", func(b []byte) []byte { putU64(b[24:], uint64(e.Records+1)); return reseal(b) }},
		{"zero stride", func(b []byte) []byte { putU64(b[32:], 0); return reseal(b) }},
		{"reserved", func(b []byte) []byte { b[at(0, 37)] = 1; return reseal(b) }},
		{"first not at 0", func(b []byte) []byte { putU64(b[at(0, 8):], 1); return reseal(b) }},
	} {
		b := c.mut(append([]byte(nil), good...))
		if _, err := ParseEvents(b, "e"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func leU64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 | uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func putU64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// FuzzParseEvents: any bytes either fail with ErrCorrupt or give an index every reader
// can walk: Seek stays in range and stretches between anchors are as short as promised.
func FuzzParseEvents(f *testing.F) {
	data, recs := genRecords(rand.New(rand.NewPCG(9, 9)), 300)
	e, _ := BuildEvents(data, int64(len(recs)))
	f.Add(MarshalEvents(e))
	e0, _ := BuildEvents(nil, 0)
	f.Add(MarshalEvents(e0))
	small := &Events{Stride: 4, Records: 9, Anchors: []Anchor{{Flags: AnchorStride | AnchorSnapshot | AnchorValid}, {Record: 4, Depth: 2, Flags: AnchorStride}, {Record: 6, Depth: 3, Trades: 1, Flags: AnchorSnapshot}, {Record: 8, Depth: 3, Trades: 2, Flags: AnchorStride}, {Record: 9, Depth: 4, Trades: 2, Flags: AnchorEnd}}}
	f.Add(MarshalEvents(small))
	raw := append(make([]byte, 16), MarshalEvents(small)[HeaderSize:]...)
	putU64(raw[0:], 9)
	putU64(raw[8:], 4)
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		check(t, b)
		// The same bytes as entries under a valid header, so that the checks of the
		// content, not the checksums, are what the fuzzer explores.
		if len(b) >= 16 {
			eb := b[16 : 16+(len(b)-16)/EventsEntrySize*EventsEntrySize]
			check(t, append(header(KindEvents, EventsEntrySize, uint64(len(eb)/EventsEntrySize), leU64(b[0:])%(1<<20), int64(leU64(b[8:])%(1<<12)), eb), eb...))
		}
	})
}

func check(t *testing.T, b []byte) {
	e, err := ParseEvents(b, "f")
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error without ErrCorrupt: %v", err)
		}
		return
	}
	{
		tot := e.Totals()
		for _, row := range []uint64{0, tot.Depth / 2, tot.Depth} {
			if i := e.Seek(row, true, func(a Anchor) uint64 { return a.Depth }); i < 0 || i >= len(e.Anchors)-1 && len(e.Anchors) > 1 {
				t.Fatalf("seek %d -> %d of %d", row, i, len(e.Anchors))
			}
		}
		for i := 1; i < len(e.Anchors); i++ {
			if e.Anchors[i].Record-e.Anchors[i-1].Record > uint64(e.Stride) {
				t.Fatalf("stretch %d longer than the stride", i)
			}
		}
	}
}
