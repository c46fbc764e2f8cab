package bookview

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookindex"
)

// Where replays start. The book index (index/books.idx) holds the whole book at a
// checkpoint about every stride of records (one cold frame); a replay for an instant, or
// up to a row, starts at the last checkpoint (or valid snapshot run) before what it needs,
// so it reads and applies less than a stride of records whatever the distance between
// snapshot runs.

// fromState is a replayer holding a checkpoint's state: its levels are the base that a
// final-quantity book (lww) lays its changes over, or fill an ordered book.
func fromState(s *bookindex.BookState, lww bool) *replayer {
	r := newReplayer()
	r.known, r.seeded = s.Flags&bookindex.StateKnown != 0, s.Flags&bookindex.StateSeeded != 0
	r.reason, r.since = s.Reason, s.Since
	r.lastTs, r.lastRecv, r.lastSeq, r.lastFlags = s.LastTs, s.LastRecv, s.LastSeq, s.LastFlags
	if lww {
		r.lww = getLWW()
		r.base = &[2][]Level{s.Bids, s.Asks}
	} else {
		r.book.bids.fill(s.Bids)
		r.book.asks.fill(s.Asks)
	}
	return r
}

// lwwLevels are the levels of a final-quantity book, best first.
func (r *replayer) lwwLevels() (bids, asks []Level) {
	if r.base == nil {
		return r.lww[0].levels(), r.lww[1].levels()
	}
	return merge(r.base[0], r.lww[0].entries(), false), merge(r.base[1], r.lww[1].entries(), true)
}

// toOrdered turns a final-quantity book into an ordered one (for rows).
func (r *replayer) toOrdered() {
	bids, asks := r.lwwLevels()
	putLWW(r.lww)
	r.lww, r.base = nil, nil
	r.book.bids.fill(bids)
	r.book.asks.fill(asks)
}

// start is where a replay for the book at t begins.
type start struct {
	record int64
	ck     int // the checkpoint to load, -1 for none (a valid run, or record 0: an empty replayer)
}

// startFor returns where the replay for the book at t starts: the checkpoint the book
// index gives for t (its state carries everything a replay from the partition's start
// would have, the last event applied included, which a start at a snapshot run would
// lose when the run is the last event and unfinished), or, without a book index, the last
// valid snapshot run at or before t.
func (st *state) startFor(t int64) start {
	s := start{ck: -1}
	if b := st.books; b != nil {
		if k := b.Find(t); k > 0 {
			s.record, s.ck = int64(b.Entries[k].Record), k
		}
		return s
	}
	for _, r := range st.snaps {
		if r.ExchTs <= t && r.Flags&format.FlagBookInvalid == 0 && int64(r.Record) < st.n {
			s.record = int64(r.Record)
		}
	}
	return s
}

// replayerAt is a replayer for the records from s.record on.
func (p *Partition) replayerAt(st *state, s start, lww bool) (*replayer, error) {
	if s.ck < 0 {
		r := newReplayer()
		if lww {
			r.lww = getLWW()
		}
		return r, nil
	}
	bs, err := st.books.State(s.ck)
	if err != nil {
		return nil, err
	}
	return fromState(bs, lww), nil
}

// reseatGap is how many records a walk through many instants would rather replay than
// load a checkpoint (whose levels an ordered book takes in one pass); a variable for tests.
var reseatGap int64 = 4096

// rowsEnd bounds the records that hold the first rows depth updates: the record of the
// first checkpoint with at least rows of them before it, at most end.
func (st *state) rowsEnd(rows, end int64) int64 {
	b := st.books
	if b == nil {
		return end
	}
	k, _ := slices.BinarySearchFunc(b.Entries, uint64(rows), func(c bookindex.Checkpoint, rows uint64) int { return cmp.Compare(c.Depth, rows) })
	if k == len(b.Entries) {
		return end
	}
	return min(end, int64(b.Entries[k].Record))
}

// depthCheck compares the rows a replay counts with the book index's count at each
// checkpoint it passes, so that a book that does not match its index (damage, another
// book's index) is an error rather than rows that shift.
type depthCheck struct {
	es   []bookindex.Checkpoint // those not passed yet
	next int64                  // the record of es[0], MaxInt64 when none is left
}

func (st *state) depthCheck(from int64) depthCheck {
	var d depthCheck
	if b := st.books; b != nil {
		k, _ := slices.BinarySearchFunc(b.Entries, uint64(from), func(c bookindex.Checkpoint, r uint64) int { return cmp.Compare(c.Record, r) })
		d.es = b.Entries[k:]
	}
	d.step()
	return d
}

func (d *depthCheck) step() {
	d.next = math.MaxInt64
	if len(d.es) > 0 {
		d.next = int64(d.es[0].Record)
	}
}

// at is called when the replay is at record d.next, rows depth updates applied.
func (d *depthCheck) at(p *Partition, rows int64) error {
	c := d.es[0]
	d.es = d.es[1:]
	d.step()
	if int64(c.Depth) != rows {
		return fmt.Errorf("%s: %w: %d depth updates before record %d, the book index says %d (the book does not match its index)",
			p.name, bookindex.ErrCorrupt, rows, c.Record, c.Depth)
	}
	return nil
}
