package bookview

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookindex"
)

// Row is one row of a top-N view: the book after one depth update (event rows), or as of
// one grid point (grid rows). Prices and quantities are the header's fixed point, 0 past
// the last level of a side and everywhere when the book is unknown (RowInvalid).
type Row struct {
	TsExchange                         int64  // the update's exchange time, or the grid point
	TsRecv                             int64  // the receive time of the last book event applied (0: none)
	Seq                                uint64 // its update id
	Flags                              uint32 // RowInvalid, RowCrossed, RowBadTsRecv, RowTsEstimated
	Reason                             uint32 // with RowInvalid: the book_invalid reason code, 0 when none was given
	BidPrice, BidQty, AskPrice, AskQty []int64
}

func newRow(n int) Row {
	b := make([]int64, 4*n)
	return Row{BidPrice: b[:n:n], BidQty: b[n : 2*n : 2*n], AskPrice: b[2*n : 3*n : 3*n], AskQty: b[3*n:]}
}

// fill sets the row from the replay's state (TsExchange is the caller's).
func (r *replayer) fill(row *Row) {
	row.TsRecv, row.Seq = r.lastRecv, r.lastSeq
	row.Flags, row.Reason = r.rowFlags()
	if !r.known {
		clear(row.BidPrice)
		clear(row.BidQty)
		clear(row.AskPrice)
		clear(row.AskQty)
		return
	}
	r.book.bids.top(row.BidPrice, row.BidQty)
	r.book.asks.top(row.AskPrice, row.AskQty)
}

// RowIter iterates rows of a top-N view in order.
type RowIter struct {
	row  Row
	next func() (bool, error)
	done func()
	err  error
}

// Next advances to the next row.
func (it *RowIter) Next() bool {
	if it.err != nil || it.next == nil {
		return false
	}
	ok, err := it.next()
	if err != nil || !ok {
		it.err, it.next = err, nil
		it.Close()
		return false
	}
	return true
}

// Row is the current row; it is overwritten by the next call to Next.
func (it *RowIter) Row() *Row { return &it.row }

// Err is the error that stopped the iteration.
func (it *RowIter) Err() error { return it.err }

// Close releases the iterator (Next returning false does it too).
func (it *RowIter) Close() {
	if it.done != nil {
		it.done()
		it.done = nil
	}
}

func checkDepth(n int) error {
	if n < 1 || n > MaxDepth {
		return fmt.Errorf("%w: depth %d, want 1..%d", ErrBadArgument, n, MaxDepth)
	}
	return nil
}

// MaxDepth is the largest N of top-N rows.
const MaxDepth = 1000

// Top iterates the rows of the top-n view whose exchange time is in [start, end): one per
// applied depth update, in file order, the book after it (the same rows as views/topN.npy).
// Use math.MinInt64 and math.MaxInt64 for the whole partition.
func (p *Partition) Top(n int, start, end int64) *RowIter {
	if err := checkDepth(n); err != nil {
		return &RowIter{err: err}
	}
	st := p.st.Load()
	lo, hi := int64(0), st.n
	tix := st.time
	if tix == nil && p.bld != nil {
		tix = p.timeIndex(st)
	}
	if start > math.MinInt64 || end < math.MaxInt64 {
		if tix != nil && tix.Records == st.n {
			lo, hi = tix.Range(start, end)
		}
	}
	// Replay from the last valid run, or the last checkpoint of the book index, at or
	// before the first record that can be in range.
	from := int64(0)
	for _, s := range st.snaps {
		if int64(s.Record) <= lo && s.Flags&format.FlagBookInvalid == 0 {
			from = int64(s.Record)
		}
	}
	r := newReplayer()
	if b := st.books; b != nil && lo > 0 {
		k, _ := slices.BinarySearchFunc(b.Entries, uint64(lo), func(c bookindex.Checkpoint, lo uint64) int { return cmp.Compare(c.Record, lo+1) })
		if k--; k > 0 && int64(b.Entries[k].Record) > from {
			bs, err := b.State(k)
			if err != nil {
				return &RowIter{err: err}
			}
			r, from = fromState(bs, false), int64(b.Entries[k].Record)
		}
	}
	sc := p.newScanner(from, hi)
	var recs []format.BookRecord
	i := 0
	it := &RowIter{row: newRow(n), done: sc.Close}
	it.next = func() (bool, error) {
		for {
			for i < len(recs) {
				rec := &recs[i]
				i++
				if r.apply(rec) && rec.ExchTs >= start && rec.ExchTs < end {
					it.row.TsExchange = rec.ExchTs
					r.fill(&it.row)
					return true, nil
				}
			}
			if !sc.Next() {
				return false, sc.Err()
			}
			recs, i = sc.recs, 0
		}
	}
	return it
}

// Grid iterates rows on a regular grid: the book as of start, start+every, ... before end
// (each the book at that instant, as BookAt defines it; rows repeat while nothing
// changes). Points before the partition's first book are rows flagged RowInvalid with
// reason 0.
func (p *Partition) Grid(n int, start, end, every int64) *RowIter {
	if err := checkDepth(n); err != nil {
		return &RowIter{err: err}
	}
	if every <= 0 {
		return &RowIter{err: fmt.Errorf("%w: grid step %d ns, want > 0", ErrBadArgument, every)}
	}
	st := p.st.Load()
	c := p.newCutter(st, 0)
	g := start
	it := &RowIter{row: newRow(n), done: c.close}
	it.next = func() (bool, error) {
		if g >= end {
			return false, nil
		}
		// From the last valid run or checkpoint for the point, when it is well ahead.
		if err := c.reseat(g); err != nil {
			return false, err
		}
		if err := c.advance(g); err != nil {
			return false, err
		}
		it.row.TsExchange = g
		c.r.fill(&it.row)
		if g > end-every { // the next point would pass end (or overflow)
			g = end
		} else {
			g += every
		}
		return true, nil
	}
	return it
}
