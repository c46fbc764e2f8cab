// Package synth generates realistic canonical book partitions for demos and benchmarks:
// a random-walk mid price, a book of levels around it that changes by events of a few level
// updates, trades at the touch, best bid/offer after each event, a snapshot at the start and
// every 60 s of exchange time. Deterministic for a seed. Real captures are the test
// fixtures; this is for volume (gigabytes) the captures do not have.
package synth

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
)

// Spec describes one partition to generate.
type Spec struct {
	Venue, Symbol string
	SymbolID      uint32
	Date          time.Time // UTC date of the partition
	Bytes         int64     // approximate file size
	Seed          int64
	Price         float64 // starting mid, e.g. 2500
	Tick          float64 // e.g. 0.01
}

const (
	scale        = 1e8 // format.DefaultDecimals
	depth        = 50  // levels kept per side
	snapshotGap  = 60 * time.Second
	meanEventGap = 2 * time.Millisecond
)

type gen struct {
	rng    *rand.Rand
	a      *format.Appender
	s      Spec
	ts     int64
	seq    uint64
	trade  uint64
	tick   int64
	mid    int64
	bids   map[int64]int64 // price -> qty
	asks   map[int64]int64
	lastSn int64
}

// Write generates the partition into path (which must not exist) and seals it.
func Write(path string, s Spec) error {
	if s.Price == 0 {
		s.Price = 2500
	}
	if s.Tick == 0 {
		s.Tick = 0.01
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	h := format.NewBookHeader(s.Venue, s.Symbol, s.SymbolID, format.DateOf(s.Date))
	a, err := format.Create(path, h, format.Options{ChunkSize: 64 << 20})
	if err != nil {
		return err
	}
	g := &gen{rng: rand.New(rand.NewSource(s.Seed)), a: a, s: s, tick: int64(s.Tick * scale),
		bids: map[int64]int64{}, asks: map[int64]int64{}}
	g.ts = s.Date.UTC().Truncate(24*time.Hour).UnixNano() + int64(g.rng.Intn(1000))*int64(time.Millisecond)
	g.mid = int64(s.Price*scale) / g.tick * g.tick
	g.seq = 4_000_000_000 + uint64(g.rng.Intn(1_000_000))
	g.trade = 1_000_000_000
	for i := 1; i <= depth; i++ {
		g.bids[g.mid-int64(i)*g.tick] = g.qty()
		g.asks[g.mid+int64(i-1)*g.tick+g.tick] = g.qty()
	}
	dayEnd := s.Date.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour).UnixNano()
	if err := g.snapshot(); err != nil {
		a.Close()
		return err
	}
	for a.Committed() < s.Bytes && g.ts < dayEnd {
		if err := g.event(); err != nil {
			a.Close()
			return err
		}
		if g.ts-g.lastSn >= int64(snapshotGap) {
			if err := g.snapshot(); err != nil {
				a.Close()
				return err
			}
		}
	}
	return a.Seal()
}

func (g *gen) qty() int64 { return int64(1+g.rng.Intn(5000)) * scale / 1000 }

func (g *gen) put(r *format.BookRecord) error {
	r.SymbolID = g.s.SymbolID
	r.ExchTs = g.ts
	r.RecvTs = g.ts + int64(200_000+g.rng.Intn(800_000)) // 0.2-1 ms later
	return g.a.WriteBook(r)
}

func sortedLevels(m map[int64]int64, desc bool) []int64 {
	ps := make([]int64, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return (ps[i] > ps[j]) == desc })
	return ps
}

func (g *gen) snapshot() error {
	g.lastSn = g.ts
	n := len(g.bids) + len(g.asks)
	if err := g.put(&format.BookRecord{TypeID: format.TypeSnapshotBegin, Flags: format.FlagSnapshot, Seq: g.seq, Aux0: int64(n)}); err != nil {
		return err
	}
	for _, side := range []struct {
		m    map[int64]int64
		flag uint16
		desc bool
	}{{g.bids, format.FlagBid, true}, {g.asks, format.FlagAsk, false}} {
		for _, p := range sortedLevels(side.m, side.desc) {
			if err := g.put(&format.BookRecord{TypeID: format.TypeLevel, Flags: side.flag | format.FlagSnapshot, Seq: g.seq, Price: p, Qty: side.m[p]}); err != nil {
				return err
			}
		}
	}
	if err := g.put(&format.BookRecord{TypeID: format.TypeSnapshotEnd, Flags: format.FlagSnapshot | format.FlagLast, Seq: g.seq}); err != nil {
		return err
	}
	g.a.Commit()
	return nil
}

func (g *gen) best() (bid, ask int64) {
	bid, ask = -1<<62, 1<<62
	for p := range g.bids {
		bid = max(bid, p)
	}
	for p := range g.asks {
		ask = min(ask, p)
	}
	return
}

// event emits one exchange event: a burst of level updates (and sometimes a trade), then
// the new best bid/offer.
func (g *gen) event() error {
	g.ts += int64(g.rng.ExpFloat64() * float64(meanEventGap))
	first := g.seq + 1
	prev := g.seq
	g.seq += uint64(1 + g.rng.Intn(3))
	bid, ask := g.best()
	if g.rng.Intn(5) == 0 { // a trade that consumes part of the touch
		buy := g.rng.Intn(2) == 0
		p, side, book := ask, format.FlagBid, g.asks
		if !buy {
			p, side, book = bid, format.FlagAsk, g.bids
		}
		q := min(book[p], g.qty()/4+scale/1000)
		g.trade++
		if err := g.put(&format.BookRecord{TypeID: format.TypeTrade, Flags: side | format.FlagLast, Seq: g.trade, Price: p, Qty: q}); err != nil {
			return err
		}
		book[p] -= q
	}
	// Drift the mid now and then: the book follows by adding and removing levels.
	switch g.rng.Intn(40) {
	case 0:
		g.mid += g.tick
	case 1:
		g.mid -= g.tick
	}
	n := 1 + g.rng.Intn(4)
	for i := 0; i < n; i++ {
		isBid := g.rng.Intn(2) == 0
		book, flag, sign := g.asks, format.FlagAsk, int64(1)
		if isBid {
			book, flag, sign = g.bids, format.FlagBid, -1
		}
		dist := int64(g.rng.ExpFloat64()*4) % depth
		p := g.mid + sign*(dist+1)*g.tick
		if !isBid {
			p = g.mid + dist*g.tick + g.tick
		}
		q := g.qty()
		if g.rng.Intn(4) == 0 || book[p] == 0 && len(book) > depth {
			q = 0
		}
		if q == 0 {
			delete(book, p)
		} else {
			book[p] = q
		}
		// Keep the book uncrossed: a level that crosses the mid removes the other side's.
		if isBid {
			delete(g.asks, p)
		} else {
			delete(g.bids, p)
		}
		r := format.BookRecord{TypeID: format.TypeLevel, Flags: flag, Seq: g.seq, Price: p, Qty: q, Aux0: int64(first), Aux1: int64(prev)}
		if err := g.put(&r); err != nil {
			return err
		}
	}
	for p, q := range g.bids {
		if q <= 0 {
			delete(g.bids, p)
		}
	}
	for p, q := range g.asks {
		if q <= 0 {
			delete(g.asks, p)
		}
	}
	bid, ask = g.best()
	if err := g.put(&format.BookRecord{TypeID: format.TypeBBO, Flags: format.FlagLast, Seq: g.seq, Price: bid, Qty: g.bids[bid], Aux0: ask, Aux1: g.asks[ask]}); err != nil {
		return err
	}
	g.a.Commit()
	return nil
}

// Name formats a symbol for paths and headers.
func Name(base, quote string) string { return fmt.Sprintf("%s-%s", base, quote) }

// Meta describes a written synthetic partition for its meta.json: identity, counts and
// time range read back from the book, marked synthetic.
func Meta(bookPath string, s Spec, code string) (*meta.Meta, error) {
	m, err := format.MapFile(bookPath)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	h, err := format.ReadHeader(m, m.Size(), bookPath)
	if err != nil {
		return nil, err
	}
	br, err := format.OpenBook(m, m.Size(), bookPath)
	if err != nil {
		return nil, err
	}
	md := &meta.Meta{Version: meta.Version, Venue: s.Venue, Date: s.Date.UTC().Format("2006-01-02"), SymbolID: s.SymbolID,
		SymbolCode: code, SymbolVersionID: h.SymbolVersionID, PriceDecimals: h.PriceDecimals, QtyDecimals: h.QtyDecimals,
		Sealed: h.Sealed, IngestTime: meta.Time(time.Now().UnixNano()), Records: map[string]int64{}, LatePolicy: meta.LateReject,
		Synthetic: true, Source: meta.Source{Pipeline: "chronicle-etl synth", Venue: s.Venue, Note: fmt.Sprintf("seed %d", s.Seed)}}
	md.Completeness.Complete = true
	it := br.Iter()
	var first, last int64
	n := int64(0)
	for it.Next() {
		r := it.Record()
		if n == 0 || r.ExchTs < first {
			first = r.ExchTs
		}
		last = max(last, r.ExchTs)
		n++
		md.Records[format.TypeName(r.TypeID)]++
		switch {
		case r.TypeID == format.TypeLevel && r.Flags&(format.FlagSnapshot|format.FlagLast) == format.FlagLast:
			md.Events.DepthUpdates++
		case r.TypeID == format.TypeTrade:
			md.Events.Trades++
		case r.TypeID == format.TypeBBO:
			md.Events.BBO++
		case r.TypeID == format.TypeSnapshotBegin:
			md.Events.Snapshots++
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	md.Records["total"] = n
	if n > 0 {
		md.EventTimeRange = &meta.Interval{From: meta.Time(first), To: meta.Time(last)}
	}
	return md, nil
}
