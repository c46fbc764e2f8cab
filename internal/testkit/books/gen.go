// Package books makes canonical book records for tests and benchmarks: Record, a
// deterministic record per (seed, index) that a reader can check on its own, and Gen, a
// realistic Binance-USD-M-like stream (depth updates of many levels, trades, BBO, full
// snapshots every 60 s) for size, compression and speed. It imports only format, so the
// tests of every package above format can use it.
package books

import (
	"io"
	"math"
	"math/rand/v2"
	"time"

	"github.com/chronicle/chronicle/format"
)

// Gen produces a Binance-USD-M-like canonical record stream: a random-walk mid price,
// depth updates touching a few levels per event (about a quarter deletes), trades and
// best bid/offer updates, millisecond exchange times with the receive time a little
// later, and a full snapshot of both sides every 60 s of exchange time.
type Gen struct {
	r        *rand.Rand
	symbolID uint32
	mid      int64 // ticks
	tsMs     int64
	seq      uint64
	tradeID  int64
	nextSnap int64
	ex, recv int64 // the current event's times: every record of one event shares them
	pending  []format.BookRecord
	// SnapEvery is the exchange time between snapshot runs, ms (0: 60,000, the refinery's
	// default snapshot_interval).
	SnapEvery int64
}

const (
	scale     = 100_000_000 // 1e8 fixed point
	tick      = scale / 100 // 0.01
	lot       = scale / 1000
	snapEvery = 60_000 // ms
	snapDepth = 1000   // levels per side in a snapshot
)

// NewGen starts a stream at the given UTC day.
func NewGen(seed uint64, symbolID uint32, day time.Time) *Gen {
	g := &Gen{
		r:        rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		symbolID: symbolID,
		mid:      250_000,
		tsMs:     day.UTC().Truncate(24*time.Hour).UnixMilli() + 1000,
		seq:      4_900_000_000_000,
		tradeID:  5_300_000_000,
	}
	g.nextSnap = g.tsMs
	return g
}

// Next fills r with the next record.
func (g *Gen) Next(r *format.BookRecord) {
	if len(g.pending) == 0 {
		g.event()
	}
	*r = g.pending[0]
	g.pending = g.pending[1:]
}

func (g *Gen) qty() int64 { return int64(math.Exp(g.r.NormFloat64()*1.6+3.5)+1) * lot }

func (g *Gen) rec(typ, flags uint16, price, qty, aux0, aux1 int64) {
	g.pending = append(g.pending, format.BookRecord{TypeID: typ, Flags: flags, SymbolID: g.symbolID,
		ExchTs: g.ex, RecvTs: g.recv, Seq: g.seq, Price: price, Qty: qty, Aux0: aux0, Aux1: aux1})
}

// levelOffset is a level's distance from the touch in ticks: mostly near, a few far.
func (g *Gen) levelOffset() int64 {
	if g.r.IntN(20) == 0 {
		return 1 + g.r.Int64N(2000)
	}
	return 1 + int64(g.r.ExpFloat64()*8)
}

func (g *Gen) event() {
	g.tsMs += int64(g.r.ExpFloat64() * 3)
	g.ex = g.tsMs * 1_000_000
	g.recv = g.ex + 800_000 + g.r.Int64N(4_000_000) // capture host a little behind, ns jitter
	if g.r.IntN(4) == 0 {
		g.mid += g.r.Int64N(5) - 2
	}
	if g.tsMs >= g.nextSnap {
		if g.SnapEvery > 0 {
			g.nextSnap += g.SnapEvery
		} else {
			g.nextSnap += snapEvery
		}
		g.seq++
		g.rec(format.TypeSnapshotBegin, format.FlagSnapshot, 0, 0, 2*snapDepth, 0)
		for side, flag := range []uint16{format.FlagBid, format.FlagAsk} {
			for i := int64(1); i <= snapDepth; i++ {
				p := g.mid - i
				if side == 1 {
					p = g.mid + i
				}
				g.rec(format.TypeLevel, flag|format.FlagSnapshot, p*tick, g.qty(), 0, 0)
			}
		}
		g.rec(format.TypeSnapshotEnd, format.FlagSnapshot|format.FlagLast, 0, 0, 0, 0)
		return
	}
	switch x := g.r.IntN(100); {
	case x < 7: // depth update: many levels under one update id
		prev := g.seq
		g.seq += 1 + uint64(g.r.IntN(40))
		n := 1 + int(g.r.ExpFloat64()*45)
		for i := 0; i < n; i++ {
			flag := format.FlagBid
			off := g.levelOffset()
			p := g.mid - off
			if g.r.IntN(2) == 0 {
				flag, p = format.FlagAsk, g.mid+off
			}
			q := g.qty()
			if g.r.IntN(4) == 0 {
				q = 0
			}
			if i == n-1 {
				flag |= format.FlagLast
			}
			g.rec(format.TypeLevel, flag, p*tick, q, int64(prev+1), int64(prev))
		}
	case x < 37: // trade
		g.tradeID++
		side := format.FlagBid
		if g.r.IntN(2) == 0 {
			side = format.FlagAsk
		}
		g.rec(format.TypeTrade, side|format.FlagLast, (g.mid+g.r.Int64N(3)-1)*tick, g.qty(), g.tradeID, g.tradeID)
	default: // bbo
		g.seq++
		g.rec(format.TypeBBO, format.FlagLast, (g.mid-1)*tick, g.qty(), (g.mid+1)*tick, g.qty())
	}
}

// reader is an endless canonical book stream: a header, then Gen's records.
type reader struct {
	g   *Gen
	buf []byte
	rec format.BookRecord
}

// NewReader returns an endless stream of a book file: a real header (2024-08-09, symbol
// 1001), then Gen's records, 64 bytes each.
func NewReader(seed uint64) io.Reader {
	day := time.Date(2024, 8, 9, 0, 0, 0, 0, time.UTC)
	h := format.NewBookHeader("binance-perp", "eth-usdt", 1001, format.DateOf(day))
	hb, err := h.MarshalBinary()
	if err != nil {
		panic(err) // a fixed, valid header
	}
	return &reader{g: NewGen(seed, 1001, day), buf: hb}
}

func (r *reader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			var b [format.BookRecordSize]byte
			r.g.Next(&r.rec)
			r.rec.Put(b[:])
			r.buf = b[:]
		}
		m := copy(p[n:], r.buf)
		r.buf = r.buf[m:]
		n += m
	}
	return n, nil
}

// Bytes returns the first size bytes of NewReader(seed).
func Bytes(seed uint64, size int64) []byte {
	b := make([]byte, size)
	if _, err := io.ReadFull(NewReader(seed), b); err != nil {
		panic(err)
	}
	return b
}

// Record returns record i of the deterministic stream of a seed: every field depends on i,
// so a reader can check any record on its own.
func Record(seed int64, i int64) format.BookRecord {
	x := uint64(seed) ^ uint64(i)*0x9E3779B97F4A7C15
	next := func(n uint64) int64 { // splitmix64: cheap enough for GiB-sized books
		x += 0x9E3779B97F4A7C15
		z := x
		z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
		z = (z ^ z>>27) * 0x94D049BB133111EB
		return int64((z ^ z>>31) % n)
	}
	ts := int64(1723161256000000000) + i*1_000_003
	return format.BookRecord{
		TypeID: uint16(1 + next(6)), Flags: uint16(next(64)), SymbolID: 7,
		ExchTs: ts, RecvTs: ts - 1_200_000_000 + next(1000), Seq: uint64(i),
		Price: 250_000_000_000 + next(2_000_000)*1000, Qty: next(100_000) * 1000,
		Aux0: -i, Aux1: next(1 << 32),
	}
}
