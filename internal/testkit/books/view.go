package books

import "github.com/chronicle/chronicle/format"

// View is the book as docs/format/views.md reads it, kept in maps: the reference the
// views' tests compare bookview with. A valid snapshot run replaces the book, an invalid
// run makes it unknown (reason 0), a book_invalid record unknown for the record's reason,
// and level records change it while it is known (a record flagged both bid and ask is an
// ask). Seeded: a valid run has been seen.
type View struct {
	Bids, Asks    map[int64]int64
	Known, Seeded bool
	Reason        int64
}

// Apply applies one record's change to the book.
func (v *View) Apply(x *format.BookRecord) {
	switch x.TypeID {
	case format.TypeSnapshotBegin:
		v.Bids, v.Asks = map[int64]int64{}, map[int64]int64{}
		if x.Flags&format.FlagBookInvalid == 0 {
			v.Known, v.Seeded, v.Reason = true, true, 0
		} else if v.Known {
			v.Known, v.Reason = false, 0
		}
	case format.TypeBookInvalid:
		v.Bids, v.Asks = map[int64]int64{}, map[int64]int64{}
		v.Known, v.Reason = false, x.Qty
	case format.TypeLevel:
		if !v.Known {
			return
		}
		m := v.Bids
		if x.Flags&format.FlagAsk != 0 {
			m = v.Asks
		} else if x.Flags&format.FlagBid == 0 {
			return
		}
		if x.Qty == 0 {
			delete(m, x.Price)
		} else {
			m[x.Price] = x.Qty
		}
	}
}
