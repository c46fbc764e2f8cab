// Package book is the refinery's order book: price levels with exact fixed-point prices
// and sizes, updated with absolute quantities (0 deletes) as Binance-style depth streams
// send them.
//
// Each side is a dense price ladder: an array of quantities indexed by ticks from the
// bottom of a window of Window ticks placed around the best price, with a two-level
// occupancy bitmap that finds the next best level in a few word operations when the best
// is deleted. Almost every update of a depth stream falls near the best price, so it costs
// an index computation and a store, without hashing or allocation. Levels below the
// window (deep in the book) live in a map; none is ever above it (better than the window):
// a price that would be moves the window (re-centring, which moves the levels that leave
// the window into the map and those that enter it out of it). The tick is the greatest
// common divisor of the prices the side holds, learnt from them, so no venue metadata is
// needed; a price off the grid refines it and the window is rebuilt.
//
// A side's memory is bounded: the window's arrays (Window*8 bytes of quantities and
// Window/8 bytes of bitmaps, allocated once the side holds a level) plus the map's levels,
// at most MaxLevels in all (Bytes reports it).
package book

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"github.com/chronicle/chronicle/venue"
)

// MaxLevels bounds one side: a stream that adds more levels than any real book holds is
// damaged or hostile, and the book refuses it rather than grow without limit.
const MaxLevels = 1 << 20

// Window is the number of ticks a side's ladder covers (half above the best price when it
// is placed, half below): 4096 ticks of 0.01 is about +-20 USD around an ETH price, where
// nearly every update of the real captures falls (BenchmarkReplayCaptures reports the share
// that does not).
const Window = 1 << 12

const (
	words   = Window / 64 // first-level bitmap words
	words2  = (words + 63) / 64
	maxTick = (1 << 62) / Window // a larger grid step could overflow the window's arithmetic
)

// ErrTooDeep is returned when an update would grow a side past MaxLevels.
var ErrTooDeep = errors.New("book side too deep")

var errBadLevel = errors.New("invalid level")

// side keeps one side's levels by key: a bid's key is its price and an ask's is minus its
// price, so the best level of both sides is the largest key.
type side struct {
	tick int64 // grid step of the window: divides every key held; 0 before the first level
	lo   int64 // key of slot 0, a multiple of tick
	span uint64
	inv  uint64  // floor(2^64 / tick) + 1: the window's index is a multiplication, not a division
	qty  []int64 // Window slots, 0 = empty; nil until the side first holds a level
	l1   []uint64
	l2   [words2]uint64
	n    int // levels in the window
	top  int // highest occupied slot, -1 when the window is empty
	far  map[int64]int64
	// The map's best keys, best first, kept from Top's last scan of the map: while ftOK,
	// ft holds the len(ft) largest keys of the map (farAdded, farDeleted keep it so). A
	// checksum reads them after every update, and most updates of a deep book (Kraken's
	// 1,000 levels) add or delete keys below them, or among them, not past the spare ones.
	ft   []int64
	ftOK bool
}

// farSlack is how many keys beyond a checksum's need the side keeps of the map's best:
// deletes among them shorten the list rather than send Top back to the map.
const farSlack = 16

// farAdded notes a key new to the map: one better than the worst kept joins the kept keys
// (the worst of them dropping out past need+farSlack), so they stay the map's best.
func (s *side) farAdded(k int64) {
	if !s.ftOK || len(s.ft) == 0 || k <= s.ft[len(s.ft)-1] {
		return
	}
	i, _ := slices.BinarySearchFunc(s.ft, k, func(a, b int64) int { return cmp.Compare(b, a) })
	if len(s.ft) < cap(s.ft) {
		s.ft = append(s.ft, 0)
	}
	copy(s.ft[i+1:], s.ft[i:len(s.ft)-1])
	s.ft[i] = k
}

// farDeleted notes a key gone from the map: one among the kept keys leaves them (every
// map key at or above the worst kept is kept).
func (s *side) farDeleted(k int64) {
	if !s.ftOK || len(s.ft) == 0 || k < s.ft[len(s.ft)-1] {
		return
	}
	if i, ok := slices.BinarySearchFunc(s.ft, k, func(a, b int64) int { return cmp.Compare(b, a) }); ok {
		s.ft = slices.Delete(s.ft, i, i+1)
	}
}

// farTop returns the map's need best keys (fewer when it holds fewer), best first.
func (s *side) farTop(need int) []int64 {
	if !s.ftOK || need > len(s.ft) && len(s.ft) < len(s.far) {
		if cap(s.ft) < need+farSlack {
			s.ft = make([]int64, 0, need+farSlack)
		}
		s.ft, s.ftOK = bestKeys(s.far, need+farSlack, s.ft[:0]), true
	}
	return s.ft[:min(need, len(s.ft))]
}

// Book is both sides of one instrument's order book.
type Book struct {
	bids, asks side
}

func (s *side) count() int { return s.n + len(s.far) }

// grow allocates the window's arrays.
func (s *side) grow() {
	if s.qty == nil {
		s.qty = make([]int64, Window)
		s.l1 = make([]uint64, words)
		s.top = -1
	}
}

// slot returns the window slot of key, or ok=false when key is outside the window or off
// its grid.
func (s *side) slot(key int64) (int, bool) {
	if s.tick == 0 || key < s.lo {
		return 0, false
	}
	off := uint64(key) - uint64(s.lo)
	if off >= s.span {
		return 0, false
	}
	// off < tick*Window: for a multiple of tick the high word of off*inv is exactly
	// off/tick (the error of inv, at most 1/tick, times off stays below one), and for
	// anything else the product check below fails whatever it is.
	idx, _ := bits.Mul64(off, s.inv)
	if s.inv == 0 {
		idx = off // tick 1
	}
	if idx*uint64(s.tick) != off || idx >= Window {
		return 0, false
	}
	return int(idx), true
}

func (s *side) mark(i int) {
	s.l1[i>>6] |= 1 << (i & 63)
	s.l2[i>>12] |= 1 << ((i >> 6) & 63)
}

func (s *side) unmark(i int) {
	w := i >> 6
	if s.l1[w] &^= 1 << (i & 63); s.l1[w] == 0 {
		s.l2[w>>6] &^= 1 << (w & 63)
	}
}

// below returns the highest occupied slot <= i, or -1.
func (s *side) below(i int) int {
	if i < 0 {
		return -1
	}
	w := i >> 6
	if m := s.l1[w] & (^uint64(0) >> (63 - i&63)); m != 0 {
		return w<<6 | (63 - bits.LeadingZeros64(m))
	}
	// The highest non-empty word below w, through the second level.
	w--
	for w >= 0 {
		w2 := w >> 6
		if m := s.l2[w2] & (^uint64(0) >> (63 - w&63)); m != 0 {
			w = w2<<6 | (63 - bits.LeadingZeros64(m))
			return w<<6 | (63 - bits.LeadingZeros64(s.l1[w]))
		}
		w = w2<<6 - 1
	}
	return -1
}

func (s *side) set(key, qty int64) error {
	if i, ok := s.slot(key); ok {
		old := s.qty[i]
		switch {
		case qty == 0:
			if old != 0 {
				s.qty[i] = 0
				s.n--
				s.unmark(i)
				if i == s.top {
					s.top = s.below(i)
					if s.top < Window/8 {
						s.recentre() // the best sank to the window's bottom, or the window emptied
					}
				}
			}
		case old == 0:
			if s.count() >= MaxLevels {
				return ErrTooDeep
			}
			s.qty[i] = qty
			s.n++
			s.mark(i)
			s.top = max(s.top, i)
		default:
			s.qty[i] = qty
		}
		return nil
	}
	if qty == 0 {
		// Deleting a level the book does not hold is normal: it was outside the snapshot.
		// A held level is on the grid, and in the window or below it.
		if key < s.lo {
			if _, held := s.far[key]; held {
				delete(s.far, key)
				s.farDeleted(key)
			}
		}
		return nil
	}
	return s.insert(key, qty)
}

// insert sets a level outside the window: below it on the grid, in the map; otherwise (off
// the grid, above the window, or the side's first) a level the side does not hold yet,
// for which the window moves.
func (s *side) insert(key, qty int64) error {
	onGrid := s.tick != 0 && key%s.tick == 0
	if onGrid && key < s.lo && s.n > 0 {
		if s.count() >= MaxLevels {
			if _, held := s.far[key]; !held {
				return ErrTooDeep
			}
		}
		if s.far == nil {
			s.far = make(map[int64]int64)
		}
		if _, held := s.far[key]; !held {
			s.farAdded(key)
		}
		s.far[key] = qty
		return nil
	}
	if s.count() >= MaxLevels {
		return ErrTooDeep
	}
	if !onGrid {
		s.regrid(key)
	} else if best, ok := s.bestKey(); !ok || key > best {
		s.place(key) // a new best: in the middle of the window
	} else {
		s.place(best) // the window was empty (a side cleared, the map empty too)
	}
	s.put(key, qty)
	return nil
}

// put stores a level the side does not hold yet, in the window or in the map.
func (s *side) put(key, qty int64) {
	if i, ok := s.slot(key); ok {
		s.qty[i] = qty
		s.n++
		s.mark(i)
		s.top = max(s.top, i)
		return
	}
	if s.far == nil {
		s.far = make(map[int64]int64)
	}
	s.farAdded(key) // a level the side does not hold yet
	s.far[key] = qty
}

// regrid makes the grid step divide key too (and every key held, which it already
// divides), and rebuilds the window around the best level.
func (s *side) regrid(key int64) {
	t := gcd(s.tick, key)
	if t > maxTick {
		t = gcdSmall(t)
	}
	best, ok := s.bestKey()
	if !ok || key > best {
		best = key
	}
	s.grow()
	held := s.takeWindow() // at the old step
	s.setTick(t)
	s.refile(best, held)
}

func (s *side) setTick(t int64) {
	s.tick, s.span, s.inv = t, uint64(t)*Window, 0
	if t > 1 {
		s.inv = ^uint64(0)/uint64(t) + 1
	}
}

// place moves the window so that key sits in its middle, re-filing every level: those
// inside the window go to the ladder, the others to the map.
func (s *side) place(key int64) {
	s.grow()
	s.refile(key, s.takeWindow())
}

// refile sets the window's bottom for key to sit in its middle, then files the levels
// taken out of the old window and those of the map that the new one covers.
func (s *side) refile(key int64, held []venue.Level) {
	// key and the half window are multiples of the grid step, and so is lo.
	if half := s.tick * (Window / 2); key >= -1<<63+half {
		s.lo = key - half
	} else {
		s.lo = key // a price near the int64 limit: the window starts at it
	}
	for _, l := range held {
		s.put(l.Price, l.Qty)
	}
	s.ftOK = false // keys of the map move into the window
	for k, q := range s.far {
		if i, ok := s.slot(k); ok {
			delete(s.far, k)
			s.qty[i] = q
			s.n++
			s.mark(i)
			s.top = max(s.top, i)
		}
	}
}

// recentre places the window around the best level once the best has sunk into the
// bottom eighth of the window (a falling price) or left it (the window is empty and the
// best is in the map).
func (s *side) recentre() {
	if s.n == 0 && len(s.far) == 0 {
		return
	}
	if best, ok := s.bestKey(); ok && (s.n == 0 || best-s.lo < int64(Window/8)*s.tick) {
		s.place(best)
	}
}

// takeWindow empties the ladder and returns its levels (keys and quantities).
func (s *side) takeWindow() []venue.Level {
	var out []venue.Level
	if s.n > 0 {
		out = make([]venue.Level, 0, s.n)
		for w := range s.l1 {
			for m := s.l1[w]; m != 0; m &= m - 1 {
				i := w<<6 | bits.TrailingZeros64(m)
				out = append(out, venue.Level{Price: s.lo + int64(i)*s.tick, Qty: s.qty[i]})
				s.qty[i] = 0
			}
			s.l1[w] = 0
		}
	}
	s.l2 = [words2]uint64{}
	s.n, s.top = 0, -1
	return out
}

// bestKey returns the largest key held.
func (s *side) bestKey() (int64, bool) {
	if s.n > 0 {
		return s.lo + int64(s.top)*s.tick, true
	}
	var best int64
	ok := false
	for k := range s.far {
		if !ok || k > best {
			best, ok = k, true
		}
	}
	return best, ok
}

// best returns the largest key held and its quantity.
func (s *side) best() (key, qty int64, ok bool) {
	if s.n > 0 {
		return s.lo + int64(s.top)*s.tick, s.qty[s.top], true
	}
	if len(s.far) > 0 { // only while a window is being rebuilt
		k, _ := s.bestKey()
		return k, s.far[k], true
	}
	return 0, 0, false
}

func (s *side) reset() {
	s.takeWindow()
	clear(s.far)
	s.ftOK = false
}

// each calls fn for every level, best first (keys descending).
func (s *side) each(fn func(key, qty int64)) {
	if s.n > 0 {
		for i := s.top; i >= 0; i = s.below(i - 1) {
			fn(s.lo+int64(i)*s.tick, s.qty[i])
		}
	}
	if len(s.far) > 0 {
		keys := make([]int64, 0, len(s.far))
		for k := range s.far {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for j := len(keys) - 1; j >= 0; j-- {
			fn(keys[j], s.far[keys[j]])
		}
	}
}

// worst returns the smallest key held (the side must hold a level): the map's smallest,
// or the window's lowest occupied slot.
func (s *side) worst() (key, qty int64) {
	if len(s.far) > 0 {
		first := true
		for k, q := range s.far {
			if first || k < key {
				key, qty, first = k, q, false
			}
		}
		return key, qty
	}
	for w, m := range s.l1 {
		if m != 0 {
			i := w<<6 | bits.TrailingZeros64(m)
			return s.lo + int64(i)*s.tick, s.qty[i]
		}
	}
	return 0, 0
}

// bytes is the side's memory: the window's arrays and the map's levels (a Go map costs
// about 24 bytes per int64 pair at its usual load).
func (s *side) bytes() int {
	return cap(s.qty)*8 + cap(s.l1)*8 + len(s.l2)*8 + len(s.far)*24
}

// load fills the side from levels in any order: a price given twice keeps its last
// quantity, zero quantities are dropped. The grid is learnt afresh from the levels.
func (s *side) load(lv []venue.Level, sign int64) error {
	s.reset()
	var t, best int64
	ok := false
	for _, l := range lv {
		if l.Qty != 0 {
			k := sign * l.Price
			t = gcd(t, k)
			if !ok || k > best {
				best, ok = k, true
			}
		}
	}
	if !ok {
		return nil
	}
	if t > maxTick {
		t = gcdSmall(t)
	}
	s.setTick(t)
	s.place(best)
	for _, l := range lv {
		if err := s.set(sign*l.Price, l.Qty); err != nil {
			return err
		}
	}
	return nil
}

// gcd of |a| and |b| (gcd(0, b) = |b|).
func gcd(a, b int64) int64 {
	x, y := abs(a), abs(b)
	for y != 0 {
		x, y = y, x%y
	}
	return int64(x)
}

func abs(a int64) uint64 {
	if a < 0 {
		return uint64(-a)
	}
	return uint64(a)
}

// gcdSmall returns a divisor of t that is at most maxTick: a grid step that large only
// comes from a side of one huge price (its gcd is the price itself), and any divisor of the
// step is a valid grid. Decimal prices have small factors; a huge prime falls to 1, which
// is correct but leaves most levels in the map until a snapshot shows the real step.
func gcdSmall(t int64) int64 {
	for t > maxTick {
		switch {
		case t%2 == 0:
			t /= 2
		case t%5 == 0:
			t /= 5
		case t%3 == 0:
			t /= 3
		default:
			return 1
		}
	}
	return t
}

// Set applies one level: the new absolute quantity at a price on one side (0 deletes).
func (b *Book) Set(bid bool, price, qty int64) error {
	if price <= 0 || qty < 0 {
		return fmt.Errorf("level price %d qty %d: %w", price, qty, errBadLevel)
	}
	if bid {
		return b.bids.set(price, qty)
	}
	return b.asks.set(-price, qty)
}

// Apply sets levels of one side in order, as Set does each; it stops at the first level
// Set refuses, having applied those before it.
func (b *Book) Apply(bid bool, lv []venue.Level) error {
	sd, sign := &b.bids, int64(1)
	if !bid {
		sd, sign = &b.asks, -1
	}
	for _, l := range lv {
		if l.Price <= 0 || l.Qty < 0 {
			return fmt.Errorf("level price %d qty %d: %w", l.Price, l.Qty, errBadLevel)
		}
		if err := sd.set(sign*l.Price, l.Qty); err != nil {
			return err
		}
	}
	return nil
}

// Reset replaces the book with a snapshot's levels, given in any order. A price given
// twice keeps its last quantity; zero quantities are dropped.
func (b *Book) Reset(bids, asks []venue.Level) error {
	// Check both sides first: a refused snapshot leaves the book as it was.
	for _, lv := range [2][]venue.Level{bids, asks} {
		if len(lv) > MaxLevels {
			return ErrTooDeep
		}
		for _, l := range lv {
			if l.Price <= 0 || l.Qty < 0 {
				return fmt.Errorf("level price %d qty %d: %w", l.Price, l.Qty, errBadLevel)
			}
		}
	}
	if err := b.bids.load(bids, 1); err != nil {
		return err
	}
	return b.asks.load(asks, -1)
}

// Clear empties the book.
func (b *Book) Clear() {
	b.bids.reset()
	b.asks.reset()
}

// Depth returns the number of bid and ask levels.
func (b *Book) Depth() (bids, asks int) { return b.bids.count(), b.asks.count() }

// Far returns the number of bid and ask levels outside the ladders' windows.
func (b *Book) Far() (bids, asks int) { return len(b.bids.far), len(b.asks.far) }

// Bytes is the memory the book holds: both ladders' windows and their far levels.
func (b *Book) Bytes() int { return b.bids.bytes() + b.asks.bytes() }

// BestBid returns the highest bid, or ok=false when there is none.
func (b *Book) BestBid() (l venue.Level, ok bool) {
	k, q, ok := b.bids.best()
	return venue.Level{Price: k, Qty: q}, ok
}

// BestAsk returns the lowest ask, or ok=false when there is none.
func (b *Book) BestAsk() (l venue.Level, ok bool) {
	k, q, ok := b.asks.best()
	return venue.Level{Price: -k, Qty: q}, ok
}

// Crossed reports a best bid at or above the best ask.
func (b *Book) Crossed() bool {
	bb, _, ok1 := b.bids.best()
	ba, _, ok2 := b.asks.best()
	return ok1 && ok2 && bb >= -ba
}

// Bids calls fn for every bid from the best down.
func (b *Book) Bids(fn func(venue.Level)) {
	b.bids.each(func(k, q int64) { fn(venue.Level{Price: k, Qty: q}) })
}

// Asks calls fn for every ask from the best up.
func (b *Book) Asks(fn func(venue.Level)) {
	b.asks.each(func(k, q int64) { fn(venue.Level{Price: -k, Qty: q}) })
}

// AppendBids appends every bid to dst, from the best down.
func (b *Book) AppendBids(dst []venue.Level) []venue.Level { return b.bids.appendTo(dst, 1) }

// AppendAsks appends every ask to dst, from the best up.
func (b *Book) AppendAsks(dst []venue.Level) []venue.Level { return b.asks.appendTo(dst, -1) }

// appendTo appends the side's levels best first, prices as sign*key.
func (s *side) appendTo(dst []venue.Level, sign int64) []venue.Level {
	if s.n > 0 {
		for i := s.top; i >= 0; i = s.below(i - 1) {
			dst = append(dst, venue.Level{Price: sign * (s.lo + int64(i)*s.tick), Qty: s.qty[i]})
		}
	}
	if len(s.far) > 0 {
		start := len(dst)
		for k, q := range s.far {
			dst = append(dst, venue.Level{Price: k, Qty: q})
		}
		far := dst[start:]
		slices.SortFunc(far, func(a, b venue.Level) int { return cmp.Compare(b.Price, a.Price) })
		for i := range far {
			far[i].Price *= sign
		}
	}
	return dst
}

// Top appends a side's best n levels to dst, best first: what a venue's checksum of the
// top of the book reads after every update (OKX 25, Kraken 10). It walks the ladder from
// its best slot through the occupancy bitmap, and sorts the levels below the window only
// when the window holds fewer than n.
func (b *Book) Top(bid bool, n int, dst []venue.Level) []venue.Level {
	s, sign := &b.asks, int64(-1)
	if bid {
		s, sign = &b.bids, 1
	}
	start := len(dst)
	if s.n > 0 {
		for i := s.top; i >= 0 && len(dst)-start < n; i = s.below(i - 1) {
			dst = append(dst, venue.Level{Price: sign * (s.lo + int64(i)*s.tick), Qty: s.qty[i]})
		}
	}
	if need := n - (len(dst) - start); need > 0 && len(s.far) > 0 {
		// The map's best few by one pass, not a sort of it all: a checksum reads the top
		// 10 or 25 of a side whose window may hold fewer (a Kraken book keeps 1,000 levels
		// over a wide range, most of them in the map), after every update.
		for _, k := range s.farTop(need) {
			dst = append(dst, venue.Level{Price: sign * k, Qty: s.far[k]})
		}
	}
	return dst
}

// bestKeys appends the largest need keys of m to dst, largest first.
func bestKeys(m map[int64]int64, need int, dst []int64) []int64 {
	start := len(dst)
	for k := range m {
		best := dst[start:]
		if len(best) == need && k <= best[need-1] {
			continue
		}
		i, _ := slices.BinarySearchFunc(best, k, func(a, b int64) int { return cmp.Compare(b, a) })
		if len(best) < need {
			dst = append(dst, 0)
			best = dst[start:]
		}
		copy(best[i+1:], best[i:len(best)-1])
		best[i] = k
	}
	return dst
}

// Trim keeps a side's best depth levels and appends the ones it drops to dst, best
// first: the local book of a venue that stops sending deletes for levels that leave the
// subscribed depth (Kraken). The worst levels are the map's lowest and then the window's
// lowest slots.
func (b *Book) Trim(bid bool, depth int, dst []venue.Level) []venue.Level {
	s, sign := &b.asks, int64(-1)
	if bid {
		s, sign = &b.bids, 1
	}
	over := s.count() - depth
	if depth < 0 || over <= 0 {
		return dst
	}
	if over <= 2 {
		// An insert pushed one or two out: find the worst, twice at most.
		start := len(dst)
		for ; over > 0; over-- {
			k, q := s.worst()
			dst = append(dst, venue.Level{Price: sign * k, Qty: q})
			s.set(k, 0)
		}
		slices.Reverse(dst[start:]) // found worst first
		return dst
	}
	all := s.appendTo(nil, 1) // keys, best first
	drop := all[depth:]
	for _, l := range drop {
		dst = append(dst, venue.Level{Price: sign * l.Price, Qty: l.Qty})
	}
	// Delete worst first, so the best level, when it goes too, goes last.
	for j := len(drop) - 1; j >= 0; j-- {
		s.set(drop[j].Price, 0)
	}
	return dst
}

// State is a book's levels in a plain form for checkpoints: each side best first.
type State struct {
	Bids, Asks []venue.Level
}

// State returns a copy of the book's levels.
func (b *Book) State() State {
	var s State
	s.Bids = make([]venue.Level, 0, b.bids.count())
	s.Asks = make([]venue.Level, 0, b.asks.count())
	s.Bids = b.AppendBids(s.Bids)
	s.Asks = b.AppendAsks(s.Asks)
	return s
}

// Restore replaces the book with a checkpointed state.
func (b *Book) Restore(s State) error { return b.Reset(s.Bids, s.Asks) }
