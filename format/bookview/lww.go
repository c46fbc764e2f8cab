package bookview

import (
	"cmp"
	"slices"
)

// lwwSide is one side of a book kept as "last write wins": a hash table from price to the
// last quantity written, with no order. The book at an instant needs only each level's
// final quantity, so BookAt replays into it (a store per level record, no search, no
// moves) and sorts the survivors once at the end; rows after every update need the order
// at every step and use side instead.
type lwwSide struct {
	keys []int64
	vals []int64
	gens []uint32 // a slot is live when its generation is the table's
	gen  uint32
	used int // live slots (deleted levels included: they hold 0)
	ask  bool
}

const lwwMinSlots = 1 << 12

// lwwFree keeps a few pairs of tables for the next answers: each is tens of KiB that a
// fresh allocation would clear and fault in again (a bounded list, not a sync.Pool, which
// a collection empties).
var lwwFree = make(chan *[2]lwwSide, 4)

// getLWW returns an empty pair of tables: bids, asks.
func getLWW() *[2]lwwSide {
	select {
	case t := <-lwwFree:
		t[0].reset()
		t[1].reset()
		return t
	default:
		return &[2]lwwSide{{}, {ask: true}}
	}
}

// putLWW gives a pair back once nothing refers to it.
func putLWW(t *[2]lwwSide) {
	if t == nil {
		return
	}
	select {
	case lwwFree <- t:
	default:
	}
}

func (s *lwwSide) init() {
	if s.keys == nil {
		s.keys, s.vals, s.gens = make([]int64, lwwMinSlots), make([]int64, lwwMinSlots), make([]uint32, lwwMinSlots)
		s.gen = 1
	}
}

func slot(price int64, mask int) int {
	return int(uint64(price)*0x9E3779B97F4A7C15>>32) & mask
}

// set records the level's quantity (0: deleted).
func (s *lwwSide) set(price, qty int64) {
	s.init()
	mask := len(s.keys) - 1
	for i := slot(price, mask); ; i = (i + 1) & mask {
		if s.gens[i] != s.gen {
			s.keys[i], s.vals[i], s.gens[i] = price, qty, s.gen
			s.used++
			if 2*s.used > len(s.keys) {
				s.grow()
			}
			return
		}
		if s.keys[i] == price {
			s.vals[i] = qty
			return
		}
	}
}

func (s *lwwSide) grow() {
	keys, vals, gens, gen := s.keys, s.vals, s.gens, s.gen
	n := 2 * len(keys)
	s.keys, s.vals, s.gens, s.gen, s.used = make([]int64, n), make([]int64, n), make([]uint32, n), 1, 0
	for i := range keys {
		if gens[i] == gen {
			s.set(keys[i], vals[i])
		}
	}
}

// reset empties the side in O(1): every slot of an older generation is free.
func (s *lwwSide) reset() {
	s.init()
	s.gen++
	s.used = 0
	if s.gen == 0 { // wrapped: clear for real
		clear(s.gens)
		s.gen = 1
	}
}

// levels returns the live levels, best first: bids from the highest price, asks from the
// lowest.
func (s *lwwSide) levels() []Level {
	out := make([]Level, 0, s.used)
	for i, g := range s.gens {
		if g == s.gen && s.vals[i] != 0 {
			out = append(out, Level{Price: s.keys[i], Qty: s.vals[i]})
		}
	}
	sortBest(out, s.ask)
	return out
}

// entries returns every level written since the last reset, deleted ones (quantity 0)
// included, best first: the changes to lay over a checkpoint's levels (merge).
func (s *lwwSide) entries() []Level {
	out := make([]Level, 0, s.used)
	for i, g := range s.gens {
		if g == s.gen {
			out = append(out, Level{Price: s.keys[i], Qty: s.vals[i]})
		}
	}
	sortBest(out, s.ask)
	return out
}

// merge lays changes (best first, quantity 0 for a deleted level) over base (best first):
// the side they make.
func merge(base, changes []Level, ask bool) []Level {
	if len(changes) == 0 {
		return base
	}
	better := func(a, b int64) bool { return a < b == ask && a != b }
	out := make([]Level, 0, len(base)+len(changes))
	i, j := 0, 0
	for i < len(base) || j < len(changes) {
		switch {
		case j == len(changes) || i < len(base) && better(base[i].Price, changes[j].Price):
			out = append(out, base[i])
			i++
			continue
		case i < len(base) && base[i].Price == changes[j].Price:
			i++
		}
		if changes[j].Qty != 0 {
			out = append(out, changes[j])
		}
		j++
	}
	return out
}

// sortBest sorts levels best first: asks from the lowest price, bids from the highest.
func sortBest(ls []Level, ask bool) {
	if ask {
		slices.SortFunc(ls, func(a, b Level) int { return cmp.Compare(a.Price, b.Price) })
	} else {
		slices.SortFunc(ls, func(a, b Level) int { return cmp.Compare(b.Price, a.Price) })
	}
}
