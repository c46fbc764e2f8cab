// Package book is the refinery's order book: price levels with exact fixed-point prices
// and sizes, updated with absolute quantities (0 deletes) as Binance-style depth streams
// send them.
//
// Each side is one slice sorted so that its best level is last (bids by ascending price,
// asks by descending price). Depth updates land near the top of the book, so an insert or
// delete there moves only the few levels above it, and the best level is the last element.
package book

import (
	"errors"
	"fmt"
	"sort"

	"github.com/chronicle/chronicle/venue"
)

// MaxLevels bounds one side: a stream that adds more levels than any real book holds is
// damaged or hostile, and the book refuses it rather than grow without limit.
const MaxLevels = 1 << 20

// ErrTooDeep is returned when an update would grow a side past MaxLevels.
var ErrTooDeep = errors.New("book side too deep")

// side keeps levels sorted by key, best last. A bid's key is its price and an ask's is
// minus its price, so both sides sort ascending and compare the same way.
type side struct {
	keys []int64
	qty  []int64
}

func (s *side) find(key int64) (int, bool) {
	i := sort.Search(len(s.keys), func(i int) bool { return s.keys[i] >= key })
	return i, i < len(s.keys) && s.keys[i] == key
}

func (s *side) set(key, qty int64) error {
	// Most updates touch the best few levels: look there before searching.
	n := len(s.keys)
	var i int
	var found bool
	if n > 0 && key >= s.keys[n-1] {
		i, found = n, false
		if key == s.keys[n-1] {
			i, found = n-1, true
		}
	} else {
		i, found = s.find(key)
	}
	switch {
	case found && qty == 0:
		s.keys = append(s.keys[:i], s.keys[i+1:]...)
		s.qty = append(s.qty[:i], s.qty[i+1:]...)
	case found:
		s.qty[i] = qty
	case qty == 0:
		// Deleting a level the book does not hold is normal: it was outside the snapshot.
	default:
		if n >= MaxLevels {
			return ErrTooDeep
		}
		s.keys = append(s.keys, 0)
		s.qty = append(s.qty, 0)
		copy(s.keys[i+1:], s.keys[i:])
		copy(s.qty[i+1:], s.qty[i:])
		s.keys[i], s.qty[i] = key, qty
	}
	return nil
}

func (s *side) reset() { s.keys, s.qty = s.keys[:0], s.qty[:0] }

// Book is both sides of one instrument's order book.
type Book struct {
	bids, asks side
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

var errBadLevel = errors.New("invalid level")

// Reset replaces the book with a snapshot's levels, given in any order. A price given
// twice keeps its last quantity; zero quantities are dropped.
func (b *Book) Reset(bids, asks []venue.Level) error {
	if err := b.bids.load(bids, 1); err != nil {
		return err
	}
	return b.asks.load(asks, -1)
}

// load fills the side from levels in any order: sort by key (stable, so the last of equal
// prices wins), keep non-zero quantities.
func (s *side) load(lv []venue.Level, sign int64) error {
	if len(lv) > MaxLevels {
		return ErrTooDeep
	}
	idx := make([]int, len(lv))
	for i := range idx {
		idx[i] = i
	}
	for _, l := range lv {
		if l.Price <= 0 || l.Qty < 0 {
			return fmt.Errorf("level price %d qty %d: %w", l.Price, l.Qty, errBadLevel)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return sign*lv[idx[a]].Price < sign*lv[idx[b]].Price })
	s.reset()
	for j, i := range idx {
		if j+1 < len(idx) && lv[idx[j+1]].Price == lv[i].Price {
			continue // a later quantity for the same price follows
		}
		if lv[i].Qty != 0 {
			s.keys = append(s.keys, sign*lv[i].Price)
			s.qty = append(s.qty, lv[i].Qty)
		}
	}
	return nil
}

// Clear empties the book.
func (b *Book) Clear() {
	b.bids.reset()
	b.asks.reset()
}

// Depth returns the number of bid and ask levels.
func (b *Book) Depth() (bids, asks int) { return len(b.bids.keys), len(b.asks.keys) }

// BestBid returns the highest bid, or ok=false when there is none.
func (b *Book) BestBid() (l venue.Level, ok bool) {
	n := len(b.bids.keys)
	if n == 0 {
		return l, false
	}
	return venue.Level{Price: b.bids.keys[n-1], Qty: b.bids.qty[n-1]}, true
}

// BestAsk returns the lowest ask, or ok=false when there is none.
func (b *Book) BestAsk() (l venue.Level, ok bool) {
	n := len(b.asks.keys)
	if n == 0 {
		return l, false
	}
	return venue.Level{Price: -b.asks.keys[n-1], Qty: b.asks.qty[n-1]}, true
}

// Crossed reports a best bid at or above the best ask.
func (b *Book) Crossed() bool {
	bb, ok1 := b.BestBid()
	ba, ok2 := b.BestAsk()
	return ok1 && ok2 && bb.Price >= ba.Price
}

// Bids calls fn for every bid from the best down.
func (b *Book) Bids(fn func(venue.Level)) {
	for i := len(b.bids.keys) - 1; i >= 0; i-- {
		fn(venue.Level{Price: b.bids.keys[i], Qty: b.bids.qty[i]})
	}
}

// Asks calls fn for every ask from the best up.
func (b *Book) Asks(fn func(venue.Level)) {
	for i := len(b.asks.keys) - 1; i >= 0; i-- {
		fn(venue.Level{Price: -b.asks.keys[i], Qty: b.asks.qty[i]})
	}
}

// State is a book's levels in a plain form for checkpoints: each side best first.
type State struct {
	Bids, Asks []venue.Level
}

// State returns a copy of the book's levels.
func (b *Book) State() State {
	var s State
	s.Bids = make([]venue.Level, 0, len(b.bids.keys))
	s.Asks = make([]venue.Level, 0, len(b.asks.keys))
	b.Bids(func(l venue.Level) { s.Bids = append(s.Bids, l) })
	b.Asks(func(l venue.Level) { s.Asks = append(s.Asks, l) })
	return s
}

// Restore replaces the book with a checkpointed state.
func (b *Book) Restore(s State) error { return b.Reset(s.Bids, s.Asks) }
