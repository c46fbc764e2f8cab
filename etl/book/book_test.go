package book_test

import (
	"errors"
	"math"
	"math/rand"
	"reflect"
	"slices"
	"testing"

	"github.com/chronicle/chronicle/etl/book"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/chronicle/chronicle/venue"
)

// ref is the reference book: two plain maps, sorted on demand.
type ref struct{ bids, asks map[int64]int64 }

func newRef() *ref { return &ref{bids: map[int64]int64{}, asks: map[int64]int64{}} }

func (r *ref) side(bid bool) map[int64]int64 {
	if bid {
		return r.bids
	}
	return r.asks
}

func (r *ref) set(bid bool, price, qty int64) {
	if qty == 0 {
		delete(r.side(bid), price)
	} else {
		r.side(bid)[price] = qty
	}
}

// reset loads levels in order: the last quantity of a price wins, zero drops it.
func (r *ref) reset(bids, asks []venue.Level) {
	r.bids, r.asks = map[int64]int64{}, map[int64]int64{}
	for _, l := range bids {
		r.set(true, l.Price, l.Qty)
	}
	for _, l := range asks {
		r.set(false, l.Price, l.Qty)
	}
}

// levels returns a side best first: bids by descending price, asks ascending.
func (r *ref) levels(bid bool) []venue.Level {
	out := []venue.Level{}
	for p, q := range r.side(bid) {
		out = append(out, venue.Level{Price: p, Qty: q})
	}
	slices.SortFunc(out, func(a, b venue.Level) int {
		if bid {
			return cmpInt(b.Price, a.Price)
		}
		return cmpInt(a.Price, b.Price)
	})
	return out
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func collect(iter func(func(venue.Level))) []venue.Level {
	out := []venue.Level{}
	iter(func(l venue.Level) { out = append(out, l) })
	return out
}

// check compares every observable of b with r.
func check(t *testing.T, step int, op string, b *book.Book, r *ref) {
	t.Helper()
	bids, asks := r.levels(true), r.levels(false)
	nb, na := b.Depth()
	if nb != len(bids) || na != len(asks) {
		t.Fatalf("step %d (%s): depth %d/%d, want %d/%d", step, op, nb, na, len(bids), len(asks))
	}
	bb, ok := b.BestBid()
	if ok != (len(bids) > 0) || ok && bb != bids[0] || !ok && bb != (venue.Level{}) {
		t.Fatalf("step %d (%s): best bid %+v %v, want %v", step, op, bb, ok, bids[:min(1, len(bids))])
	}
	ba, ok := b.BestAsk()
	if ok != (len(asks) > 0) || ok && ba != asks[0] || !ok && ba != (venue.Level{}) {
		t.Fatalf("step %d (%s): best ask %+v %v, want %v", step, op, ba, ok, asks[:min(1, len(asks))])
	}
	crossed := len(bids) > 0 && len(asks) > 0 && bids[0].Price >= asks[0].Price
	if b.Crossed() != crossed {
		t.Fatalf("step %d (%s): crossed %v, want %v", step, op, b.Crossed(), crossed)
	}
	if got := collect(b.Bids); !reflect.DeepEqual(got, bids) {
		t.Fatalf("step %d (%s): bids\n%v\nwant\n%v", step, op, got, bids)
	}
	if got := collect(b.Asks); !reflect.DeepEqual(got, asks) {
		t.Fatalf("step %d (%s): asks\n%v\nwant\n%v", step, op, got, asks)
	}
	st := b.State()
	if !reflect.DeepEqual(st.Bids, bids) || !reflect.DeepEqual(st.Asks, asks) {
		t.Fatalf("step %d (%s): state %+v", step, op, st)
	}
}

// TestRandomOperations applies random Sets (both sides, overlapping prices so the book
// crosses at times), deletes of held and unknown levels, Resets with duplicate prices and
// zero quantities, Clears and State/Restore round trips, checking the book against the
// map-based reference after every operation. Three price regimes: a narrow one (many
// collisions, crossing), a wide one (thousands of levels, so deleted prices pile up in
// any lazy structure and it is rebuilt) and one near the int64 limits.
func TestRandomOperations(t *testing.T) {
	seed := testenv.Seed(t)
	regimes := []struct {
		name  string
		price func(*rand.Rand) int64
		steps int
	}{
		{"narrow", func(r *rand.Rand) int64 { return 1 + r.Int63n(60) }, 20000},
		{"wide", func(r *rand.Rand) int64 { return 1 + r.Int63n(6000) }, 12000},
		{"extremes", func(r *rand.Rand) int64 {
			if r.Intn(2) == 0 {
				return 1 + r.Int63n(20)
			}
			return math.MaxInt64 - r.Int63n(20)
		}, 5000},
	}
	for i, rg := range regimes {
		t.Run(rg.name, func(t *testing.T) {
			rnd := rand.New(rand.NewSource(seed + int64(i)))
			var b book.Book
			r := newRef()
			check(t, 0, "empty", &b, r)
			qty := func() int64 {
				if rnd.Intn(4) == 0 {
					return 0
				}
				return 1 + rnd.Int63n(1e9)
			}
			levels := func(n int) []venue.Level {
				out := make([]venue.Level, n)
				for j := range out {
					out[j] = venue.Level{Price: rg.price(rnd), Qty: qty()}
					if j > 0 && rnd.Intn(5) == 0 { // a duplicate price, later quantity wins
						out[j].Price = out[rnd.Intn(j)].Price
					}
				}
				return out
			}
			for step := 1; step <= rg.steps; step++ {
				var op string
				switch x := rnd.Intn(1000); {
				case x < 700:
					bid, p, q := rnd.Intn(2) == 0, rg.price(rnd), qty()
					op = "set"
					if err := b.Set(bid, p, q); err != nil {
						t.Fatalf("step %d: Set(%v, %d, %d): %v", step, bid, p, q, err)
					}
					r.set(bid, p, q)
				case x < 850:
					// delete a held level (when there is one), else an unknown one
					bid := rnd.Intn(2) == 0
					lv := r.levels(bid)
					p := rg.price(rnd)
					if len(lv) > 0 && rnd.Intn(3) > 0 {
						p = lv[rnd.Intn(len(lv))].Price
					}
					op = "delete"
					if err := b.Set(bid, p, 0); err != nil {
						t.Fatalf("step %d: delete %d: %v", step, p, err)
					}
					r.set(bid, p, 0)
				case x < 880:
					// a batch of one side, maybe with a bad level: those before it apply
					op = "apply"
					bid := rnd.Intn(2) == 0
					lv := levels(rnd.Intn(20))
					bad := -1
					if len(lv) > 0 && rnd.Intn(4) == 0 {
						bad = rnd.Intn(len(lv))
						lv[bad].Price = -lv[bad].Price - 1
					}
					err := b.Apply(bid, lv)
					if (err != nil) != (bad >= 0) {
						t.Fatalf("step %d: Apply with bad level %d: %v", step, bad, err)
					}
					for i, l := range lv {
						if i == bad {
							break
						}
						r.set(bid, l.Price, l.Qty)
					}
				case x < 900:
					// invalid levels are refused and change nothing
					op = "invalid set"
					p, q := rg.price(rnd), int64(1)
					switch rnd.Intn(3) {
					case 0:
						p = -p
					case 1:
						p = 0
					default:
						q = -1 - rnd.Int63n(10)
					}
					if err := b.Set(rnd.Intn(2) == 0, p, q); err == nil {
						t.Fatalf("step %d: Set(price %d, qty %d) accepted", step, p, q)
					}
				case x < 960:
					op = "reset"
					bids, asks := levels(rnd.Intn(200)), levels(rnd.Intn(200))
					if err := b.Reset(bids, asks); err != nil {
						t.Fatalf("step %d: Reset: %v", step, err)
					}
					r.reset(bids, asks)
				case x < 965:
					op = "clear"
					b.Clear()
					r = newRef()
				case x < 985:
					op = "restore into a new book"
					st := b.State()
					var nb book.Book
					if err := nb.Restore(st); err != nil {
						t.Fatalf("step %d: Restore: %v", step, err)
					}
					check(t, step, op, &nb, r)
					if !reflect.DeepEqual(nb.State(), st) {
						t.Fatalf("step %d: State/Restore round trip differs", step)
					}
					// Restoring a state does not alias it: changing the copy changes nothing.
					if len(st.Bids) > 0 {
						st.Bids[0].Qty = -5
						check(t, step, op+" (after editing the state)", &nb, r)
					}
				default:
					op = "restore in place"
					if err := b.Restore(b.State()); err != nil {
						t.Fatalf("step %d: Restore: %v", step, err)
					}
				}
				check(t, step, op, &b, r)
			}
		})
	}
}

// The book stays usable and correct through long runs of deletes of the best level and
// re-adds of the same prices (a lazy best-price index must skip the stale entries).
func TestBestThroughDeletesAndReadds(t *testing.T) {
	var b book.Book
	r := newRef()
	for p := int64(1); p <= 3000; p++ {
		for _, bid := range []bool{true, false} {
			q := p * 10
			if err := b.Set(bid, p+map[bool]int64{true: 0, false: 3000}[bid], q); err != nil {
				t.Fatal(err)
			}
			r.set(bid, p+map[bool]int64{true: 0, false: 3000}[bid], q)
		}
	}
	check(t, 0, "filled", &b, r)
	step := 0
	for round := 0; round < 3; round++ {
		// eat the bid side from the top, checking the new best each time
		for p := int64(3000); p > 1000; p-- {
			step++
			b.Set(true, p, 0)
			r.set(true, p, 0)
			if bb, ok := b.BestBid(); !ok || bb.Price != p-1 {
				t.Fatalf("round %d: after deleting %d best bid %+v", round, p, bb)
			}
		}
		// and the ask side from the top
		for p := int64(3001); p < 5000; p++ {
			b.Set(false, p, 0)
			r.set(false, p, 0)
			if ba, ok := b.BestAsk(); !ok || ba.Price != p+1 {
				t.Fatalf("round %d: after deleting %d best ask %+v", round, p, ba)
			}
		}
		check(t, step, "eaten", &b, r)
		// put everything back with new quantities
		for p := int64(1001); p <= 3000; p++ {
			b.Set(true, p, p+int64(round))
			r.set(true, p, p+int64(round))
			b.Set(false, p+2000, p)
			r.set(false, p+2000, p)
		}
		check(t, step, "refilled", &b, r)
	}
}

func TestResetSemantics(t *testing.T) {
	L := func(p, q int64) venue.Level { return venue.Level{Price: p, Qty: q} }
	cases := []struct {
		name               string
		bids, asks         []venue.Level
		wantBids, wantAsks []venue.Level
		err                bool
	}{
		{"empty", nil, nil, []venue.Level{}, []venue.Level{}, false},
		{"any order", []venue.Level{L(5, 1), L(7, 2), L(6, 3)}, []venue.Level{L(9, 1), L(8, 2), L(10, 3)},
			[]venue.Level{L(7, 2), L(6, 3), L(5, 1)}, []venue.Level{L(8, 2), L(9, 1), L(10, 3)}, false},
		{"duplicate keeps the last", []venue.Level{L(5, 1), L(5, 2), L(4, 1), L(5, 3)}, []venue.Level{L(9, 1), L(9, 4)},
			[]venue.Level{L(5, 3), L(4, 1)}, []venue.Level{L(9, 4)}, false},
		{"zero drops", []venue.Level{L(5, 0), L(4, 1)}, []venue.Level{L(9, 0)},
			[]venue.Level{L(4, 1)}, []venue.Level{}, false},
		{"last zero drops an earlier quantity", []venue.Level{L(5, 7), L(5, 0)}, []venue.Level{L(9, 0), L(9, 3)},
			[]venue.Level{}, []venue.Level{L(9, 3)}, false},
		{"crossed snapshot is kept as given", []venue.Level{L(10, 1)}, []venue.Level{L(9, 1)},
			[]venue.Level{L(10, 1)}, []venue.Level{L(9, 1)}, false},
		{"bad bid price", []venue.Level{L(0, 1)}, nil, nil, nil, true},
		{"bad ask qty", nil, []venue.Level{L(3, -1)}, nil, nil, true},
		{"negative ask price", nil, []venue.Level{L(-3, 1)}, nil, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b book.Book
			b.Set(true, 1000, 1) // replaced by a successful Reset
			b.Set(false, 2000, 1)
			err := b.Reset(c.bids, c.asks)
			if (err != nil) != c.err {
				t.Fatalf("Reset: %v, want error %v", err, c.err)
			}
			if c.err {
				return
			}
			st := b.State()
			if !reflect.DeepEqual(st.Bids, c.wantBids) || !reflect.DeepEqual(st.Asks, c.wantAsks) {
				t.Fatalf("state %+v", st)
			}
			crossed := len(c.wantBids) > 0 && len(c.wantAsks) > 0 && c.wantBids[0].Price >= c.wantAsks[0].Price
			if b.Crossed() != crossed {
				t.Fatalf("crossed %v", b.Crossed())
			}
		})
	}
	// Reset must not keep a reference to the caller's slices.
	bids := []venue.Level{{Price: 5, Qty: 1}}
	var b book.Book
	if err := b.Reset(bids, nil); err != nil {
		t.Fatal(err)
	}
	bids[0] = venue.Level{Price: 6, Qty: 9}
	if bb, _ := b.BestBid(); bb != (venue.Level{Price: 5, Qty: 1}) {
		t.Fatalf("Reset aliases its input: best bid %+v", bb)
	}
}

// A side holds at most MaxLevels levels: Reset with more is refused, and at the limit a
// new price is refused while updates and deletes of held prices still work.
func TestMaxLevels(t *testing.T) {
	over := make([]venue.Level, book.MaxLevels+1)
	for i := range over {
		over[i] = venue.Level{Price: int64(i + 1), Qty: 1}
	}
	var b book.Book
	if err := b.Reset(over, nil); !errors.Is(err, book.ErrTooDeep) {
		t.Fatalf("Reset with %d levels: %v", len(over), err)
	}
	if testing.Short() {
		t.Skip("filling a side to MaxLevels takes a second or so")
	}
	full := over[:book.MaxLevels]
	if err := b.Reset(nil, full); err != nil {
		t.Fatal(err)
	}
	if _, na := b.Depth(); na != book.MaxLevels {
		t.Fatalf("%d asks", na)
	}
	if err := b.Set(false, book.MaxLevels+5, 1); !errors.Is(err, book.ErrTooDeep) {
		t.Fatalf("new level at the limit: %v", err)
	}
	if err := b.Set(false, 10, 7); err != nil { // update of a held level
		t.Fatalf("update at the limit: %v", err)
	}
	if err := b.Set(false, book.MaxLevels+5, 0); err != nil { // delete of an unknown level
		t.Fatalf("delete of an unknown level at the limit: %v", err)
	}
	if err := b.Set(true, 3, 1); err != nil { // the other side is not full
		t.Fatalf("bid while asks are full: %v", err)
	}
	if err := b.Set(false, 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(false, book.MaxLevels+5, 3); err != nil { // room again
		t.Fatalf("new level below the limit: %v", err)
	}
	if ba, _ := b.BestAsk(); ba != (venue.Level{Price: 2, Qty: 1}) {
		t.Fatalf("best ask %+v", ba)
	}
	if bb, _ := b.BestBid(); !b.Crossed() || bb.Price != 3 {
		t.Fatalf("best bid %+v crossed %v", bb, b.Crossed())
	}
}

// BenchmarkSetNearTop updates levels within the top 20 of a 1000-level book (the common
// case of a depth stream): quantity changes, deletes and re-inserts of those levels.
func BenchmarkSetNearTop(b *testing.B) {
	const depth, top = 1000, 20
	var bk book.Book
	bids := make([]venue.Level, depth)
	asks := make([]venue.Level, depth)
	for i := range bids {
		bids[i] = venue.Level{Price: int64(100000 - i), Qty: int64(i + 1)}
		asks[i] = venue.Level{Price: int64(100001 + i), Qty: int64(i + 1)}
	}
	if err := bk.Reset(bids, asks); err != nil {
		b.Fatal(err)
	}
	rnd := rand.New(rand.NewSource(1))
	type upd struct {
		bid        bool
		price, qty int64
	}
	ops := make([]upd, 1<<16)
	for i := range ops {
		u := upd{bid: rnd.Intn(2) == 0, qty: 1 + rnd.Int63n(1000)}
		off := rnd.Int63n(top)
		if u.bid {
			u.price = 100000 - off
		} else {
			u.price = 100001 + off
		}
		if rnd.Intn(5) == 0 {
			u.qty = 0 // deleted; a later update of the price re-inserts it
		}
		ops[i] = u
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u := ops[i&(len(ops)-1)]
		if err := bk.Set(u.bid, u.price, u.qty); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if nb, na := bk.Depth(); nb < depth-top || na < depth-top {
		b.Fatalf("depth %d/%d", nb, na)
	}
}

// TestTopAndTrim: Top returns the best n of each side as full sorted iteration does, and
// Trim drops exactly the levels past the depth, worst last, leaving the rest.
func TestTopAndTrim(t *testing.T) {
	rng := rand.New(rand.NewSource(testenv.Seed(t)))
	for round := 0; round < 200; round++ {
		var b book.Book
		n := rng.Intn(300)
		spread := int64(500)
		if round%3 == 0 {
			spread = 50000 // wider than the ladder's window: levels below it, in the map
		}
		for i := 0; i < n; i++ {
			if err := b.Set(rng.Intn(2) == 0, 1+rng.Int63n(spread), 1+rng.Int63n(9)); err != nil {
				t.Fatal(err)
			}
		}
		var bids, asks []venue.Level
		b.Bids(func(l venue.Level) { bids = append(bids, l) })
		b.Asks(func(l venue.Level) { asks = append(asks, l) })
		for _, k := range []int{0, 1, 10, 25, 1000} {
			gb, ga := b.Top(true, k, nil), b.Top(false, k, []venue.Level{{Price: -1}})[1:]
			if !slices.Equal(gb, bids[:min(k, len(bids))]) || !slices.Equal(ga, asks[:min(k, len(asks))]) {
				t.Fatalf("round %d top %d: %v %v, want %v %v", round, k, gb, ga, bids[:min(k, len(bids))], asks[:min(k, len(asks))])
			}
		}
		d := rng.Intn(120)
		db, da := b.Trim(true, d, nil), b.Trim(false, d, nil)
		if len(bids) > d && !slices.Equal(db, bids[d:]) || len(asks) > d && !slices.Equal(da, asks[d:]) ||
			len(bids) <= d && db != nil || len(asks) <= d && da != nil {
			t.Fatalf("round %d trim %d dropped %v %v", round, d, db, da)
		}
		var kb, ka []venue.Level
		b.Bids(func(l venue.Level) { kb = append(kb, l) })
		b.Asks(func(l venue.Level) { ka = append(ka, l) })
		if !slices.Equal(kb, bids[:min(d, len(bids))]) || !slices.Equal(ka, asks[:min(d, len(asks))]) {
			t.Fatalf("round %d trim %d kept %d/%d levels", round, d, len(kb), len(ka))
		}
		if bb, ok := b.BestBid(); len(kb) > 0 && (!ok || bb != kb[0]) {
			t.Fatalf("round %d: best bid %v after trim, want %v", round, bb, kb[0])
		}
		// One or two inserts past the depth, trimmed again (the worst found by a scan).
		for extra := 1; extra <= 2 && d > 0; extra++ {
			for i := 0; i < extra; i++ {
				b.Set(true, 1+rng.Int63n(spread), 1+rng.Int63n(9))
			}
			var all []venue.Level
			b.Bids(func(l venue.Level) { all = append(all, l) })
			got := b.Trim(true, d, nil)
			var kept []venue.Level
			b.Bids(func(l venue.Level) { kept = append(kept, l) })
			if len(all) > d && (!slices.Equal(got, all[d:]) || !slices.Equal(kept, all[:d])) || len(all) <= d && got != nil {
				t.Fatalf("round %d: trim %d after %d inserts dropped %v kept %d of %d", round, d, extra, got, len(kept), len(all))
			}
		}
	}
}
