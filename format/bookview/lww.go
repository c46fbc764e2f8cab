package bookview

import "github.com/chronicle/chronicle/format/bookindex"

// lwwSide is one side of a book kept as "last write wins" (bookindex.LevelTable), with no
// order. The book at an instant needs only each level's final quantity, so BookAt replays
// into it and sorts the survivors once at the end; rows after every update need the order
// at every step and use side instead. It keeps deleted levels, which entries lists.
type lwwSide struct {
	bookindex.LevelTable
	ask bool
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
		t[0].Reset()
		t[1].Reset()
		return t
	default:
		return &[2]lwwSide{{LevelTable: bookindex.NewLevelTable(lwwMinSlots, true)},
			{LevelTable: bookindex.NewLevelTable(lwwMinSlots, true), ask: true}}
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

// set records the level's quantity (0: deleted).
func (s *lwwSide) set(price, qty int64) { s.Set(price, qty) }

// levels returns the live levels, best first: bids from the highest price, asks from the
// lowest.
func (s *lwwSide) levels() []Level { return s.Levels(make([]Level, 0, s.Len()), s.ask) }

// entries returns every level written since the last reset, deleted ones (quantity 0)
// included, best first: the changes to lay over a checkpoint's levels (merge).
func (s *lwwSide) entries() []Level { return s.Entries(make([]Level, 0, s.Len()), s.ask) }

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
