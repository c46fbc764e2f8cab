// Package book is the refinery's order book: price levels with exact fixed-point prices
// and sizes, updated with absolute quantities (0 deletes) as Binance-style depth streams
// send them.
//
// Each side is a hash map from price to quantity, so an update anywhere in a deep book
// costs one map operation (a sorted slice moved kilobytes for every level inserted or
// deleted deep in the book: the USD-M stream updates hundreds of levels a second all
// through the book), and a max-heap of prices that finds the best level. The heap is
// lazy: a deleted price stays in it until it surfaces at the top. Full, sorted iteration
// (snapshot runs, checkpoints) sorts the map's keys, which happens once a minute.
package book

import (
	"container/heap"
	"errors"
	"fmt"
	"slices"

	"github.com/chronicle/chronicle/venue"
)

// MaxLevels bounds one side: a stream that adds more levels than any real book holds is
// damaged or hostile, and the book refuses it rather than grow without limit.
const MaxLevels = 1 << 20

// ErrTooDeep is returned when an update would grow a side past MaxLevels.
var ErrTooDeep = errors.New("book side too deep")

// side keeps one side's levels by key: a bid's key is its price and an ask's is minus its
// price, so the best level of both sides is the largest key.
type side struct {
	lv map[int64]int64
	h  keyHeap
}

// keyHeap is a max-heap of keys.
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

func (s *side) set(key, qty int64) error {
	if s.lv == nil {
		s.lv = make(map[int64]int64, 1024)
	}
	if qty == 0 {
		// Deleting a level the book does not hold is normal: it was outside the snapshot.
		delete(s.lv, key)
		return nil
	}
	if _, ok := s.lv[key]; !ok {
		if len(s.lv) >= MaxLevels {
			return ErrTooDeep
		}
		heap.Push(&s.h, key)
		if len(s.h) > 2*len(s.lv)+64 {
			s.lv[key] = qty
			s.rebuild()
			return nil
		}
	}
	s.lv[key] = qty
	return nil
}

// rebuild drops the heap's stale keys.
func (s *side) rebuild() {
	s.h = s.h[:0]
	for k := range s.lv {
		s.h = append(s.h, k)
	}
	heap.Init(&s.h)
}

// best returns the largest key held and its quantity.
func (s *side) best() (key, qty int64, ok bool) {
	for len(s.h) > 0 {
		k := s.h[0]
		if q, ok := s.lv[k]; ok {
			return k, q, true
		}
		heap.Pop(&s.h)
	}
	return 0, 0, false
}

func (s *side) reset() {
	clear(s.lv)
	s.h = s.h[:0]
}

// sorted returns the keys best first.
func (s *side) sorted() []int64 {
	keys := make([]int64, 0, len(s.lv))
	for k := range s.lv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	slices.Reverse(keys)
	return keys
}

// Book is both sides of one instrument's order book.
type Book struct {
	bids, asks side
	front      []int // Top's frontier, kept to reuse its memory
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

// load fills the side from levels in any order: a price given twice keeps its last
// quantity, zero quantities are dropped.
func (s *side) load(lv []venue.Level, sign int64) error {
	if len(lv) > MaxLevels {
		return ErrTooDeep
	}
	for _, l := range lv {
		if l.Price <= 0 || l.Qty < 0 {
			return fmt.Errorf("level price %d qty %d: %w", l.Price, l.Qty, errBadLevel)
		}
	}
	s.reset()
	for _, l := range lv {
		if err := s.set(sign*l.Price, l.Qty); err != nil {
			return err
		}
	}
	s.rebuild()
	return nil
}

// Clear empties the book.
func (b *Book) Clear() {
	b.bids.reset()
	b.asks.reset()
}

// Depth returns the number of bid and ask levels.
func (b *Book) Depth() (bids, asks int) { return len(b.bids.lv), len(b.asks.lv) }

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
	bb, ok1 := b.BestBid()
	ba, ok2 := b.BestAsk()
	return ok1 && ok2 && bb.Price >= ba.Price
}

// Bids calls fn for every bid from the best down.
func (b *Book) Bids(fn func(venue.Level)) {
	for _, k := range b.bids.sorted() {
		fn(venue.Level{Price: k, Qty: b.bids.lv[k]})
	}
}

// Asks calls fn for every ask from the best up.
func (b *Book) Asks(fn func(venue.Level)) {
	for _, k := range b.asks.sorted() {
		fn(venue.Level{Price: -k, Qty: b.asks.lv[k]})
	}
}

// State is a book's levels in a plain form for checkpoints: each side best first.
type State struct {
	Bids, Asks []venue.Level
}

// State returns a copy of the book's levels.
func (b *Book) State() State {
	var s State
	s.Bids = make([]venue.Level, 0, len(b.bids.lv))
	s.Asks = make([]venue.Level, 0, len(b.asks.lv))
	b.Bids(func(l venue.Level) { s.Bids = append(s.Bids, l) })
	b.Asks(func(l venue.Level) { s.Asks = append(s.Asks, l) })
	return s
}

// Restore replaces the book with a checkpointed state.
func (b *Book) Restore(s State) error { return b.Reset(s.Bids, s.Asks) }

// Top appends a side's best n levels to dst, best first: what a venue's checksum of the
// top of the book reads after every update (OKX 25, Kraken 10). It walks the side's heap
// from its root, best first (a second, small heap holds the frontier of heap slots), and
// passes over the keys the lazy heap still holds for deleted levels and repeats: about n
// steps of log n each, whatever the side's depth.
func (b *Book) Top(bid bool, n int, dst []venue.Level) []venue.Level {
	s, sign := &b.asks, int64(-1)
	if bid {
		s, sign = &b.bids, 1
	}
	if n <= 0 || len(s.h) == 0 {
		return dst
	}
	h := s.h
	front := b.front[:0]
	push := func(i int) {
		front = append(front, i)
		for c := len(front) - 1; c > 0; {
			p := (c - 1) / 2
			if h[front[p]] >= h[front[c]] {
				break
			}
			front[p], front[c] = front[c], front[p]
			c = p
		}
	}
	pop := func() int {
		top := front[0]
		last := len(front) - 1
		front[0] = front[last]
		front = front[:last]
		for p := 0; ; {
			c := 2*p + 1
			if c >= len(front) {
				break
			}
			if c+1 < len(front) && h[front[c+1]] > h[front[c]] {
				c++
			}
			if h[front[p]] >= h[front[c]] {
				break
			}
			front[p], front[c] = front[c], front[p]
			p = c
		}
		return top
	}
	push(0)
	start := len(dst)
	for len(front) > 0 && len(dst)-start < n {
		i := pop()
		if c := 2*i + 1; c < len(h) {
			push(c)
			if c+1 < len(h) {
				push(c + 1)
			}
		}
		k := h[i]
		q, ok := s.lv[k]
		if !ok || (len(dst) > start && dst[len(dst)-1].Price == k*sign) {
			continue // a deleted level, or a key pushed twice
		}
		dst = append(dst, venue.Level{Price: k * sign, Qty: q})
	}
	b.front = front
	return dst
}

// Trim keeps a side's best depth levels and appends the ones it drops to dst, best
// first: the local book of a venue that stops sending deletes for levels that leave the
// subscribed depth (Kraken). One or two levels over (an insert pushed them out) are found
// by a scan for the worst; more, by sorting the side.
func (b *Book) Trim(bid bool, depth int, dst []venue.Level) []venue.Level {
	s, sign := &b.asks, int64(-1)
	if bid {
		s, sign = &b.bids, 1
	}
	over := len(s.lv) - depth
	if depth < 0 || over <= 0 {
		return dst
	}
	start := len(dst)
	if over <= 2 {
		for ; over > 0; over-- {
			worst, first := int64(0), true
			for k := range s.lv {
				if first || k < worst {
					worst, first = k, false
				}
			}
			dst = append(dst, venue.Level{Price: worst * sign, Qty: s.lv[worst]})
			delete(s.lv, worst)
		}
		// Found worst first: best first is the other way round.
		slices.Reverse(dst[start:])
		return dst
	}
	keys := s.sorted()
	for _, k := range keys[depth:] {
		dst = append(dst, venue.Level{Price: k * sign, Qty: s.lv[k]})
		delete(s.lv, k)
	}
	s.rebuild()
	return dst
}
