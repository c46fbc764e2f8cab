package qzst

import (
	"encoding/binary"
	"io"
	"math"
	"math/rand/v2"
	"testing"
)

// Canonical 64-byte book record, little-endian (see docs/format/q.md):
// u16 type_id @0, u16 flags @2, u32 symbol_id @4, i64 ts_exchange @8, i64 ts_recv @16,
// u64 seq @24, i64 price @32, i64 qty @40, i64 aux0 @48, i64 aux1 @56.
const (
	recSize        = 64
	genHeaderSize  = 4096
	typeLevel      = 1
	typeTrade      = 2
	typeBBO        = 3
	typeSnapBegin  = 4
	typeSnapEnd    = 5
	flagBid        = 1
	flagAsk        = 2
	flagSnapshot   = 4
	flagLast       = 8
	scale          = 100_000_000  // fixed-point 1e8
	tick           = scale / 100  // 0.01 price tick
	lot            = scale / 1000 // 0.001 qty step
	snapshotEvery  = 60_000_000_000
	snapshotLevels = 1000
)

// bookGen deterministically produces a Binance-USD-M-like canonical book stream: depth diffs
// (many LEVEL records per event, ~25% deletes), trades and BBO updates (~20% together),
// millisecond exchange timestamps, receive time a few ms later with ns jitter, and a full
// 2x1000-level snapshot every 60 s of exchange time.
type bookGen struct {
	r        *rand.Rand
	mid      int64 // in ticks
	tsMs     int64
	seq      uint64
	tradeID  int64
	nextSnap int64
	buf      []byte
	hdrLeft  int
}

func newBookGen(seed uint64) *bookGen {
	g := &bookGen{
		r:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		mid:     250_000, // 2500.00
		tsMs:    1723161600000,
		seq:     4_900_000_000_000,
		tradeID: 5_300_000_000,
		hdrLeft: genHeaderSize,
	}
	g.nextSnap = g.tsMs * 1e6
	return g
}

func (g *bookGen) rec(typ, flags uint16, tsEx, tsRecv int64, seq uint64, price, qty, aux0, aux1 int64) {
	var b [recSize]byte
	binary.LittleEndian.PutUint16(b[0:], typ)
	binary.LittleEndian.PutUint16(b[2:], flags)
	binary.LittleEndian.PutUint32(b[4:], 1001)
	binary.LittleEndian.PutUint64(b[8:], uint64(tsEx))
	binary.LittleEndian.PutUint64(b[16:], uint64(tsRecv))
	binary.LittleEndian.PutUint64(b[24:], seq)
	binary.LittleEndian.PutUint64(b[32:], uint64(price))
	binary.LittleEndian.PutUint64(b[40:], uint64(qty))
	binary.LittleEndian.PutUint64(b[48:], uint64(aux0))
	binary.LittleEndian.PutUint64(b[56:], uint64(aux1))
	g.buf = append(g.buf, b[:]...)
}

func (g *bookGen) qty() int64 {
	// Log-normal lot counts: mostly small, a few large resting orders.
	return int64(math.Exp(g.r.NormFloat64()*1.6+3.5)+1) * lot
}

func (g *bookGen) levelOffset() int64 {
	if g.r.IntN(20) == 0 {
		return 1 + g.r.Int64N(5000) // far from the touch
	}
	return int64(g.r.ExpFloat64() * 8)
}

func (g *bookGen) event() {
	g.tsMs += int64(g.r.ExpFloat64() * 3)
	tsEx := g.tsMs * 1_000_000
	tsRecv := tsEx + 800_000 + g.r.Int64N(4_000_000)
	if g.r.IntN(4) == 0 {
		g.mid += int64(g.r.IntN(5)) - 2
	}
	if tsEx >= g.nextSnap {
		g.snapshot(tsEx, tsRecv)
		g.nextSnap += snapshotEvery
	}
	switch x := g.r.IntN(100); {
	case x < 7: // depth diff: many levels, same timestamps and update id
		first := g.seq + 1
		prev := g.seq
		g.seq += 1 + uint64(g.r.IntN(40))
		n := 1 + int(g.r.ExpFloat64()*45)
		for i := 0; i < n; i++ {
			side, price := uint16(flagBid), g.mid-g.levelOffset()
			if g.r.IntN(2) == 0 {
				side, price = flagAsk, g.mid+1+g.levelOffset()
			}
			q := g.qty()
			if g.r.IntN(4) == 0 {
				q = 0
			}
			if i == n-1 {
				side |= flagLast
			}
			g.rec(typeLevel, side, tsEx, tsRecv, g.seq, price*tick, q, int64(first), int64(prev))
		}
	case x < 37: // trade at the touch
		g.tradeID++
		side, price := uint16(flagBid), g.mid
		if g.r.IntN(2) == 0 {
			side, price = flagAsk, g.mid+1
		}
		g.rec(typeTrade, side|flagLast, tsEx, tsRecv, g.seq, price*tick, g.qty(), g.tradeID, int64(side&1))
	default: // best bid/offer
		g.seq += uint64(g.r.IntN(3))
		g.rec(typeBBO, flagBid|flagAsk|flagLast, tsEx, tsRecv, g.seq, g.mid*tick, g.qty(), (g.mid+1)*tick, g.qty())
	}
}

func (g *bookGen) snapshot(tsEx, tsRecv int64) {
	g.rec(typeSnapBegin, flagSnapshot, tsEx, tsRecv, g.seq, 0, 0, 0, 0)
	for i := int64(0); i < snapshotLevels; i++ {
		g.rec(typeLevel, flagSnapshot|flagBid, tsEx, tsRecv, g.seq, (g.mid-i)*tick, g.qty(), 0, 0)
	}
	for i := int64(0); i < snapshotLevels; i++ {
		g.rec(typeLevel, flagSnapshot|flagAsk, tsEx, tsRecv, g.seq, (g.mid+1+i)*tick, g.qty(), 0, 0)
	}
	g.rec(typeSnapEnd, flagSnapshot|flagLast, tsEx, tsRecv, g.seq, 0, 0, 0, 0)
}

// Read fills p with the header followed by records; it never ends.
func (g *bookGen) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if g.hdrLeft > 0 {
			m := min(g.hdrLeft, len(p)-n)
			for i := range m {
				off := genHeaderSize - g.hdrLeft + i
				p[n+i] = "CHRQ"[off%4] * byte(off>>8&1)
			}
			g.hdrLeft -= m
			n += m
			continue
		}
		if len(g.buf) == 0 {
			g.event()
		}
		m := copy(p[n:], g.buf)
		g.buf = g.buf[m:]
		if len(g.buf) == 0 {
			g.buf = g.buf[:0:cap(g.buf)]
		}
		n += m
	}
	return n, nil
}

// genBook returns size bytes of the generated stream.
func genBook(seed uint64, size int64) []byte {
	b := make([]byte, size)
	if _, err := io.ReadFull(newBookGen(seed), b); err != nil {
		panic(err)
	}
	return b
}

// TestBookGen checks the benchmark data looks like a canonical book stream: whole 64-byte
// records after a 4096-byte header, known types, non-decreasing exchange time and sequence,
// prices on the 0.01 tick near 2500, quantities on the 0.001 step, ~20% trades and BBO.
func TestBookGen(t *testing.T) {
	b := genBook(1, genHeaderSize+200_000*recSize)
	le := binary.LittleEndian
	counts := map[uint16]int{}
	var lastTs int64
	var lastSeq uint64
	for off := genHeaderSize; off < len(b); off += recSize {
		r := b[off : off+recSize]
		typ := le.Uint16(r[0:])
		counts[typ]++
		ts, seq := int64(le.Uint64(r[8:])), le.Uint64(r[24:])
		price, qty := int64(le.Uint64(r[32:])), int64(le.Uint64(r[40:]))
		if typ < typeLevel || typ > typeSnapEnd || ts < lastTs || seq < lastSeq || ts%1_000_000 != 0 {
			t.Fatalf("record at %d: type %d ts %d seq %d after ts %d seq %d", off, typ, ts, seq, lastTs, lastSeq)
		}
		if typ <= typeBBO && (price%tick != 0 || qty%lot != 0 || price < 2000*scale || price > 3000*scale) {
			t.Fatalf("record at %d: price %d qty %d", off, price, qty)
		}
		lastTs, lastSeq = ts, seq
	}
	n := (len(b) - genHeaderSize) / recSize
	other := float64(counts[typeTrade]+counts[typeBBO]) / float64(n)
	t.Logf("types %v; trades+BBO %.1f%%; %.0f s of exchange time", counts, 100*other, float64(lastTs-int64(le.Uint64(b[genHeaderSize+8:])))/1e9)
	if other < 0.12 || other > 0.3 {
		t.Fatalf("trades+BBO are %.1f%% of records", 100*other)
	}
}
