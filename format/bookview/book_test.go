package bookview

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestBookAgainstMap: thousands of random sets and deletes over a wide price range (block
// splits and emptied blocks) leave the book equal to a map's, level for level, with the
// touch, the depth and clones right.
func TestBookAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	b := NewBook()
	m := [2]map[int64]int64{{}, {}}
	for i := range 200_000 {
		bid := rng.IntN(2) == 0
		side := 0
		if !bid {
			side = 1
		}
		p := 100_000 + rng.Int64N(3000)
		if rng.IntN(3) == 0 {
			p = 100_000 + rng.Int64N(30) // around one price: many changes at the same levels
		}
		q := rng.Int64N(5)
		if q == 0 {
			delete(m[side], p)
		} else {
			m[side][p] = q
		}
		b.Set(bid, p, q)
		if i%9973 == 0 || i == 199_999 {
			for s, got := range [][]Level{b.Bids(0), b.Asks(0)} {
				want := sortedSide(m[s], s == 0)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("op %d side %d: %d levels, want %d", i, s, len(got), len(want))
				}
			}
			c := b.Clone()
			c.Set(true, 1, 1)
			if nb, na := b.Len(); nb != len(m[0]) || na != len(m[1]) {
				t.Fatalf("op %d: len %d/%d, want %d/%d (a clone's change leaked?)", i, nb, na, len(m[0]), len(m[1]))
			}
			top := make([]int64, 7)
			qty := make([]int64, 7)
			b.asks.top(top, qty)
			for k, l := range sortedSide(m[1], false)[:min(7, len(m[1]))] {
				if top[k] != l.Price || qty[k] != l.Qty {
					t.Fatalf("op %d: ask top %d = %d/%d, want %+v", i, k, top[k], qty[k], l)
				}
			}
		}
		if i == 150_000 {
			b.Reset()
			m = [2]map[int64]int64{{}, {}}
		}
	}
}
