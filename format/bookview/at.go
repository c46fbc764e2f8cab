package bookview

import (
	"fmt"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookindex"
)

// State is the book at one instant.
type State struct {
	Time   int64  // the instant asked (ns)
	AsOf   int64  // exchange time of the last book event applied (0: none)
	RecvTs int64  // its receive time
	Seq    uint64 // its update id (a depth update's final id, a run's last id)
	Record int64  // records of the book up to the last event applied (the cut)

	Valid        bool  // the book is known; false inside an invalid stretch
	Reason       int64 // when not valid: the book_invalid reason code, 0 when none was given
	InvalidSince int64 // when not valid: exchange time of the invalidation (0: unknown)
	Crossed      bool  // best bid >= best ask

	BidLevels, AskLevels int     // levels of the whole book
	Bids, Asks           []Level // best first, up to the depth asked

	PriceDecimals, QtyDecimals uint8
}

// event is a book event pulled from the file but not applied yet: its records (copied)
// and its time, the exchange time of its first record (the refinery gives every record of
// one event the same time).
type event struct {
	ts   int64
	end  int64 // one past its last record
	recs []format.BookRecord
}

// cutter replays a book in file order up to instants that only move forward: Advance(t)
// applies, in file order, every book event up to the last one whose time is at or before
// t. Records are in the refinery's processing order, not strictly in time: events pulled
// past an instant wait in pending until a later event at or before some instant makes
// them part of the book, and the time index bounds how far the pull goes.
type cutter struct {
	p    *Partition
	st   *state
	tix  *bookindex.Time
	r    *replayer
	s    *scanner
	recs []format.BookRecord
	i    int
	pos  int64 // record number of recs[i]

	pending   []event
	cur       *event // being pulled into pending
	streaming bool   // the event in hand is applied as it is pulled
	applied   int64  // one past the last record applied
}

func (p *Partition) newCutter(st *state, start int64) *cutter {
	c := &cutter{p: p, st: st, r: newReplayer(), s: p.newScanner(start, st.n), pos: start, applied: start}
	if st.time != nil || p.bld != nil {
		c.tix = st.time
		if c.tix == nil {
			c.tix = p.timeIndex(st)
		}
	}
	return c
}

// reseat moves the cutter forward to start s for the instants from t on, when that skips
// more than reseatGap records: everything before s is part of the book at t and later
// (docs/format/views.md), so the pending events and the replay so far are dropped for the
// checkpoint's state (or a valid run's fresh start).
func (c *cutter) reseat(t int64) error {
	s := c.st.startFor(t)
	if s.record <= c.pos+reseatGap {
		return nil
	}
	r, err := c.p.replayerAt(c.st, s, c.r.lww != nil)
	if err != nil {
		return err
	}
	c.s.Close()
	c.r, c.s, c.recs, c.i = r, c.p.newScanner(s.record, c.st.n), nil, 0
	c.pos, c.applied = s.record, s.record
	c.pending, c.cur, c.streaming = nil, nil, false
	return nil
}
func (c *cutter) close() { c.s.Close() }

// limit ends the scan (and its read-ahead) at record end, for a single instant: the
// records past its bound are read only if an event in hand runs over it.
func (c *cutter) limit(end int64) {
	if end < c.st.n && c.i >= len(c.recs) && c.pos == c.s.next && c.s.recs == nil {
		c.s.Close()
		c.s = c.p.newScanner(c.pos, max(end, c.pos))
	}
}

// bound is one past the last record that can hold the start of an event at or before t:
// by the time index, and by the book index (no such event starts at or after the limit of
// the checkpoint for t).
func (c *cutter) bound(t int64) int64 {
	n := c.st.n
	if b := c.st.books; b != nil && b.Records == n {
		n = min(n, b.Limit(b.Find(t)))
	}
	if c.tix == nil || c.tix.Records < c.st.n || t == 1<<63-1 {
		return n
	}
	_, hi := c.tix.Range(t, t+1)
	return min(max(hi, 0), n)
}

// pull returns the next record, false at the end of the book or on an error.
func (c *cutter) pull() (*format.BookRecord, bool) {
	for c.i >= len(c.recs) {
		if !c.s.Next() {
			if c.s.Err() != nil || c.pos >= c.st.n {
				return nil, false
			}
			// The scan was cut short (limit): go on to the end of the book.
			c.s.Close()
			c.s = c.p.newScanner(c.pos, c.st.n)
			continue
		}
		c.recs, c.i = c.s.recs, 0
	}
	r := &c.recs[c.i]
	c.i++
	c.pos++
	return r, true
}

func (c *cutter) applyRec(r *format.BookRecord, at int64) {
	c.r.apply(r)
	c.applied = at + 1
}

// flush applies the pending events up to the last one at or before t.
func (c *cutter) flush(t int64) {
	k := -1
	for j, e := range c.pending {
		if e.ts <= t {
			k = j
		}
	}
	for j := 0; j <= k; j++ {
		for i := range c.pending[j].recs {
			c.r.apply(&c.pending[j].recs[i])
		}
	}
	if k >= 0 {
		c.applied = c.pending[k].end
		c.pending = c.pending[k+1:]
		if len(c.pending) == 0 {
			c.pending = nil
		}
	}
}

// advance brings the book to instant t (never earlier than the previous call's).
func (c *cutter) advance(t int64) error {
	c.flush(t)
	hi := c.bound(t)
	for c.pos < hi || c.streaming || c.cur != nil && c.cur.ts <= t {
		if len(c.pending) == 0 && c.cur == nil && c.i < len(c.recs) {
			c.run(t, hi) // the common case, in a tight loop
			if c.i >= len(c.recs) || c.pos >= hi && !c.streaming {
				continue
			}
			// Stopped at an event dated after t: the general loop below parks it.
		}
		at := c.pos
		r, ok := c.pull()
		if !ok {
			break
		}
		if !isBook(r.TypeID) {
			continue
		}
		switch {
		case c.streaming:
			c.applyRec(r, at)
			c.streaming = !endsEvent(r)
		case c.cur != nil:
			c.cur.recs = append(c.cur.recs, *r)
			if endsEvent(r) {
				c.finish(t)
			}
		case len(c.pending) == 0 && r.ExchTs <= t:
			c.applyRec(r, at)
			c.streaming = !endsEvent(r)
		default:
			c.cur = &event{ts: r.ExchTs, recs: []format.BookRecord{*r}}
			if endsEvent(r) {
				c.finish(t)
			}
		}
		if c.cur != nil && len(c.cur.recs) > 1<<22 {
			return fmt.Errorf("%s: %w: an event of more than %d records at record %d", c.p.name, bookindex.ErrCorrupt, 1<<22, at)
		}
	}
	if err := c.s.Err(); err != nil {
		return err
	}
	if c.cur != nil && c.cur.ts <= t && c.pos >= c.st.n {
		// The book ends inside this event (a growing book's last one, or a damaged book):
		// it is the last event at or before t, applied as far as it goes, like one applied
		// as it is pulled.
		c.finish(t)
	}
	return nil
}

// run applies the records in hand while no event waits (nothing pending, none being
// pulled): each book record as it comes, up to the first event dated after t or the
// bound, where the general loop takes over.
func (c *cutter) run(t, hi int64) {
	recs := c.recs[c.i:]
	j := 0
	for ; j < len(recs); j++ {
		r := &recs[j]
		if !c.streaming && c.pos+int64(j) >= hi {
			break
		}
		if !isBook(r.TypeID) {
			continue
		}
		if !c.streaming && r.ExchTs > t {
			break // an event after t: the general loop parks it
		}
		c.r.apply(r)
		c.applied = c.pos + int64(j) + 1
		c.streaming = !endsEvent(r)
	}
	c.i += j
	c.pos += int64(j)
}

// finish moves the event being pulled into pending and applies pending up to it when its
// time is at or before t.
func (c *cutter) finish(t int64) {
	c.cur.end = c.pos
	c.pending = append(c.pending, *c.cur)
	c.cur = nil
	if c.pending[len(c.pending)-1].ts <= t {
		c.flush(t)
	}
}

// BookAt returns the book at exchange time t (ns): every book event up to the last one, in
// file order, whose exchange time is at or before t (docs/format/views.md), with up to
// depth levels a side (all when depth <= 0). Inside an invalid stretch the state says so
// with its reason and has no levels; before the partition's first snapshot run the error
// is a *NoBookError naming the first instant with a book.
func (p *Partition) BookAt(t int64, depth int) (*State, error) {
	if lo, hi, ok := p.Day(); ok && (t < lo || t >= hi) {
		return nil, fmt.Errorf("%s: %w: %s is not in %s", p.name, ErrOutsideDay, FormatTime(t), p.hdr.DateTime().Format("2006-01-02"))
	}
	st := p.st.Load()
	// Start from the last valid run (by record) at or before t, or from the book index's
	// checkpoint for t when it is later: the book before either does not matter. Without
	// either, from the start: a valid run stamped later may still lie before events at or
	// before t.
	s := st.startFor(t)
	r, err := p.replayerAt(st, s, true) // one book, at the end: final quantities suffice
	if err != nil {
		return nil, err
	}
	c := p.newCutter(st, s.record)
	defer c.close()
	c.r = r
	defer func() { putLWW(r.lww) }() // the answer holds copies of the levels
	c.limit(c.bound(t))              // no read-ahead (a cold frame decoded) past what t can need
	if err := c.advance(t); err != nil {
		return nil, err
	}
	return p.state(c, st, t, depth)
}

// state is the answer of a cutter advanced to t.
func (p *Partition) state(c *cutter, st *state, t int64, depth int) (*State, error) {
	r := c.r
	if !r.seeded { // before the first valid run: no book (an invalid stretch before it included)
		fv, ok := firstValid(st.snaps, uint64(c.applied))
		return nil, &NoBookError{Name: p.name, At: t, First: fv.ExchTs, Has: ok}
	}
	out := &State{Time: t, AsOf: r.lastTs, RecvTs: r.lastRecv, Seq: r.lastSeq, Record: c.applied,
		Valid: r.known, PriceDecimals: p.hdr.PriceDecimals, QtyDecimals: p.hdr.QtyDecimals}
	if !r.known {
		out.Reason, out.InvalidSince = r.reason, r.since
		return out, nil
	}
	if r.lww != nil {
		bids, asks := r.lwwLevels()
		out.Crossed = len(bids) > 0 && len(asks) > 0 && bids[0].Price >= asks[0].Price
		out.BidLevels, out.AskLevels = len(bids), len(asks)
		if depth > 0 {
			bids, asks = bids[:min(depth, len(bids))], asks[:min(depth, len(asks))]
		}
		out.Bids, out.Asks = bids, asks
		return out, nil
	}
	out.Crossed = r.book.Crossed()
	out.BidLevels, out.AskLevels = r.book.Len()
	out.Bids, out.Asks = r.book.Bids(depth), r.book.Asks(depth)
	return out, nil
}

// BooksAt calls fn with the book at each instant of times, which must not decrease, in one
// forward replay (BookAt for each would replay from a snapshot run every time): the books
// of a study at many instants. An instant outside the day or before the first book gets
// its error in fn's err, and the walk goes on; fn's own error stops it.
func (p *Partition) BooksAt(times []int64, depth int, fn func(t int64, s *State, err error) error) error {
	for i := 1; i < len(times); i++ {
		if times[i] < times[i-1] {
			return fmt.Errorf("%w: instants out of order at %d", ErrBadArgument, i)
		}
	}
	if len(times) == 0 {
		return nil
	}
	st := p.st.Load()
	c := p.newCutter(st, 0)
	defer c.close()
	dayLo, dayHi, hasDay := p.Day()
	for _, t := range times {
		if hasDay && (t < dayLo || t >= dayHi) {
			if err := fn(t, nil, fmt.Errorf("%s: %w: %s is not in %s", p.name, ErrOutsideDay, FormatTime(t), p.hdr.DateTime().Format("2006-01-02"))); err != nil {
				return err
			}
			continue
		}
		if err := c.reseat(t); err != nil {
			return err
		}
		if err := c.advance(t); err != nil {
			return err
		}
		s, err := p.state(c, st, t, depth)
		if err := fn(t, s, err); err != nil {
			return err
		}
	}
	return nil
}
