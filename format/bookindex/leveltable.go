package bookindex

import (
	"cmp"
	"slices"
)

// LevelTable is one side of a replayed book kept as "last write wins": price -> the last
// quantity written (0: deleted), open addressing, emptied in O(1) by a generation count.
// Replaying into it costs a store per level record (no search, no moves); its levels are
// sorted once, when asked. The zero value is ready (1024 slots, deleted levels dropped
// when it grows); NewLevelTable sets both.
type LevelTable struct {
	keys, vals  []int64
	gens        []uint32 // a slot is live when its generation is the table's
	gen         uint32
	used        int // live slots (deleted levels included: they hold 0)
	minSlots    int
	keepDeleted bool
}

// NewLevelTable returns an empty table of at least minSlots slots (a power of two); with
// keepDeleted it keeps deleted levels when it grows, so that Entries lists every level
// written since the last Reset.
func NewLevelTable(minSlots int, keepDeleted bool) LevelTable {
	return LevelTable{minSlots: minSlots, keepDeleted: keepDeleted}
}

func (t *LevelTable) init() {
	if t.keys == nil {
		n := t.minSlots
		if n == 0 {
			n = 1 << 10
		}
		t.keys, t.vals, t.gens, t.gen = make([]int64, n), make([]int64, n), make([]uint32, n), 1
	}
}

// Set records the level's quantity (0: deleted).
func (t *LevelTable) Set(price, qty int64) {
	t.init()
	mask := len(t.keys) - 1
	for i := int(uint64(price)*0x9E3779B97F4A7C15>>32) & mask; ; i = (i + 1) & mask {
		if t.gens[i] != t.gen {
			t.keys[i], t.vals[i], t.gens[i] = price, qty, t.gen
			if t.used++; 2*t.used > len(t.keys) {
				t.grow()
			}
			return
		}
		if t.keys[i] == price {
			t.vals[i] = qty
			return
		}
	}
}

func (t *LevelTable) grow() {
	keys, vals, gens, gen := t.keys, t.vals, t.gens, t.gen
	n := 2 * len(keys)
	t.keys, t.vals, t.gens, t.gen, t.used = make([]int64, n), make([]int64, n), make([]uint32, n), 1, 0
	for i := range keys {
		if gens[i] == gen && (vals[i] != 0 || t.keepDeleted) {
			t.Set(keys[i], vals[i])
		}
	}
}

// Reset empties the table in O(1): every slot of an older generation is free.
func (t *LevelTable) Reset() {
	if t.keys == nil {
		return
	}
	t.used = 0
	if t.gen++; t.gen == 0 { // wrapped: clear for real
		clear(t.gens)
		t.gen = 1
	}
}

// Len is the number of levels written since the last Reset (deleted ones included, when
// the table has not dropped them growing).
func (t *LevelTable) Len() int { return t.used }

// Levels appends the live levels to dst, best first (bids from the highest price, asks
// from the lowest).
func (t *LevelTable) Levels(dst []Level, ask bool) []Level {
	return t.appendLevels(dst, ask, false)
}

// Entries appends every level written since the last Reset to dst, deleted ones
// (quantity 0) included, best first: the changes to lay over earlier levels.
func (t *LevelTable) Entries(dst []Level, ask bool) []Level {
	return t.appendLevels(dst, ask, true)
}

func (t *LevelTable) appendLevels(dst []Level, ask, deleted bool) []Level {
	n := len(dst)
	for i, g := range t.gens {
		if g == t.gen && (deleted || t.vals[i] != 0) {
			dst = append(dst, Level{Price: t.keys[i], Qty: t.vals[i]})
		}
	}
	SortBest(dst[n:], ask)
	return dst
}

// SortBest sorts levels of distinct prices best first: bids from the highest price, asks
// from the lowest.
func SortBest(ls []Level, ask bool) {
	if ask {
		slices.SortFunc(ls, func(a, b Level) int { return cmp.Compare(a.Price, b.Price) })
	} else {
		slices.SortFunc(ls, func(a, b Level) int { return cmp.Compare(b.Price, a.Price) })
	}
}
