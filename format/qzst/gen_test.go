package qzst

import (
	"encoding/binary"
	"io"
	"testing"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/testkit/books"
)

// Tests and benchmarks compress realistic canonical books: books.Gen's stream, a header
// then 64-byte records (depth updates of many levels, trades, BBO, a full snapshot every
// 60 s of exchange time).

func genBook(seed uint64, size int64) []byte { return books.Bytes(seed, size) }

func newBookGen(seed uint64) io.Reader { return books.NewReader(seed) }

// TestBookGen checks the benchmark data looks like a canonical book stream: whole 64-byte
// records after the header, known types, non-decreasing exchange time, prices on the 0.01
// tick near 2500, quantities on the 0.001 step, trades and BBO a fair share.
func TestBookGen(t *testing.T) {
	const hs = format.HeaderSize
	b := genBook(1, hs+200_000*format.BookRecordSize)
	le := binary.LittleEndian
	counts := map[uint16]int{}
	var lastTs int64
	for off := hs; off < len(b); off += format.BookRecordSize {
		r := b[off : off+format.BookRecordSize]
		typ := le.Uint16(r[0:])
		counts[typ]++
		ts := int64(le.Uint64(r[8:]))
		price, qty := int64(le.Uint64(r[32:])), int64(le.Uint64(r[40:]))
		if !format.KnownType(typ) || ts < lastTs || ts%1_000_000 != 0 {
			t.Fatalf("record at %d: type %d ts %d after %d", off, typ, ts, lastTs)
		}
		if (typ == format.TypeLevel || typ == format.TypeTrade) && (price%1_000_000 != 0 || qty%100_000 != 0 || price < 2000e8 || price > 3000e8) {
			t.Fatalf("record at %d: price %d qty %d", off, price, qty)
		}
		lastTs = ts
	}
	n := (len(b) - hs) / format.BookRecordSize
	other := float64(counts[format.TypeTrade]+counts[format.TypeBBO]) / float64(n)
	t.Logf("types %v; trades+BBO %.1f%%", counts, 100*other)
	if other < 0.12 || other > 0.5 {
		t.Fatalf("trades+BBO are %.1f%% of records", 100*other)
	}
}
