package bookview

import "github.com/chronicle/chronicle/format"

// replayer applies canonical records in file order, the way docs/format/views.md defines a
// book: a snapshot run replaces the book (or makes it unknown when flagged BOOK_INVALID),
// a book_invalid record makes it unknown with its reason, a depth update's level records
// change it while it is known. Trades, tickers and unknown types leave it alone.
type replayer struct {
	book   Book
	lww    *[2]lwwSide // BookAt's book: final quantities only (lww.go); nil: book
	base   *[2][]Level // with lww: the levels of the checkpoint the replay started from, best first
	known  bool        // a valid run seeded the book and no gap since
	seeded bool        // a valid run was applied during this replay
	reason int64       // why the book is unknown: a book_invalid reason, 0 when none was given
	since  int64       // exchange time it became unknown (0: before this replay started)

	// The last book event applied: what a row or a state reports.
	lastTs, lastRecv int64
	lastSeq          uint64
	lastFlags        uint16
	inEvent          bool // inside an event: a run or a depth update not yet at its LAST record
}

func newReplayer() *replayer { return &replayer{book: Book{asks: side{ask: true}}} }

func (r *replayer) clone() *replayer {
	c := *r
	c.book = *r.book.Clone()
	return &c
}

// isBook reports whether a record type changes the book state.
func isBook(t uint16) bool {
	return t == format.TypeLevel || t == format.TypeSnapshotBegin || t == format.TypeSnapshotEnd || t == format.TypeBookInvalid
}

// endsEvent reports whether a book record is the last of its event: a depth update's LAST
// level, a run's snapshot_end, a book_invalid.
func endsEvent(rec *format.BookRecord) bool {
	switch rec.TypeID {
	case format.TypeLevel:
		return rec.Flags&format.FlagSnapshot == 0 && rec.Flags&format.FlagLast != 0
	case format.TypeSnapshotEnd, format.TypeBookInvalid:
		return true
	}
	return false
}

// apply applies one record and reports whether it ends a depth update (a row of the top-N
// views).
func (r *replayer) apply(rec *format.BookRecord) bool {
	switch rec.TypeID {
	case format.TypeSnapshotBegin:
		r.reset()
		r.inEvent = true
		if rec.Flags&format.FlagBookInvalid == 0 {
			r.known, r.seeded, r.reason, r.since = true, true, 0, 0
		} else if r.known {
			r.known, r.reason, r.since = false, 0, rec.ExchTs
		}
	case format.TypeSnapshotEnd:
		r.inEvent = false
		r.note(rec)
	case format.TypeBookInvalid:
		r.reset()
		r.known, r.reason, r.since, r.inEvent = false, rec.Qty, rec.ExchTs, false
		r.note(rec)
	case format.TypeLevel:
		if r.known {
			// A level flagged both sides (never written by the refinery) counts as an ask.
			switch side := rec.Flags & (format.FlagBid | format.FlagAsk); {
			case r.lww != nil && side != 0:
				r.lww[side>>1].set(rec.Price, rec.Qty) // FlagBid 1 -> 0, FlagAsk 2 (or both) -> 1
			case side&format.FlagAsk != 0:
				r.book.asks.set(rec.Price, rec.Qty)
			case side == format.FlagBid:
				r.book.bids.set(rec.Price, rec.Qty)
			}
		}
		if rec.Flags&format.FlagSnapshot != 0 {
			return false
		}
		if rec.Flags&format.FlagLast == 0 {
			r.inEvent = true
			return false
		}
		r.inEvent = false
		r.note(rec)
		return true
	}
	return false
}

func (r *replayer) reset() {
	if r.lww != nil {
		r.lww[0].Reset()
		r.lww[1].Reset()
		r.base = nil
		return
	}
	r.book.Reset()
}

func (r *replayer) note(rec *format.BookRecord) {
	r.lastTs, r.lastRecv, r.lastSeq, r.lastFlags = rec.ExchTs, rec.RecvTs, rec.Seq, rec.Flags
}

// Row flags: the canonical records' bit values, so that one set of constants serves both.
const (
	RowInvalid     = uint32(format.FlagBookInvalid) // the book is unknown: levels are zero, reason says why
	RowBadTsRecv   = uint32(format.FlagBadTsRecv)   // the event's receive time is unreliable
	RowCrossed     = uint32(format.FlagCrossed)     // best bid >= best ask
	RowTsEstimated = uint32(format.FlagTsEstimated) // the event's exchange time is estimated
)

// rowFlags are the flags of a row rendered from the current state.
func (r *replayer) rowFlags() (flags, reason uint32) {
	flags = uint32(r.lastFlags) & (RowBadTsRecv | RowTsEstimated)
	switch {
	case !r.known:
		flags |= RowInvalid
		reason = uint32(max(0, min(r.reason, 1<<31)))
	case r.book.Crossed():
		flags |= RowCrossed
	}
	return flags, reason
}
