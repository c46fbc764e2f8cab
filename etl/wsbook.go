package etl

// Books whose snapshots come on the websocket (OKX, Kraken), and the exchange's checksum of
// the book after each event.

import (
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/venue"
)

// onWSDepth applies a depth message of a venue that sends its snapshots on the websocket:
// a snapshot resets the book (and makes it valid), an update applies to a valid book when
// the venue's chain allows (OKX seqId/prevSeqId; Kraken has none), and every message that
// carries the exchange's checksum is checked against the book after it.
func (r *Refinery) onWSDepth(s *symState, ts int64) error {
	m := &r.msg
	if m.Wire.Known {
		s.Wire = m.Wire
	}
	if m.Snapshot {
		return r.wsSnapshot(s, ts)
	}
	if !s.live() {
		r.m.skipped.WithLabelValues("no_snapshot").Inc() // the book waits for its snapshot
		return nil
	}
	switch r.v.Check(s.LastU, m.Event) {
	case venue.SeqNext, venue.SeqUnknown:
	case venue.SeqStale:
		r.m.duplicates.Inc()
		return nil
	default:
		return r.invalidate(s, format.InvalidSequence, ts, uint64(m.ID), s.LastU, m.Prev, false)
	}
	u := depthUpdate{exch: ts, recv: r.recvNs, last: m.ID, prev: m.Prev, bids: m.Bids, asks: m.Asks, seg: r.segName, depth: m.Depth}
	if m.HasChecksum {
		u.first, u.flags = int64(m.Checksum), format.FlagChecksum
	}
	if s.csValid && r.touchesTop(s, m) {
		s.csValid = false
	}
	if err := r.applyDepth(s, &u); err != nil {
		return err
	}
	if m.HasChecksum && s.live() {
		return r.checksum(s, ts, uint64(m.ID), m.Checksum)
	}
	return nil
}

// wsSnapshot makes the book the snapshot's and writes a snapshot run restating it.
func (r *Refinery) wsSnapshot(s *symState, ts int64) error {
	m := &r.msg
	if s.live() && dayOf(ts) > s.BookDay {
		if err := r.flushHold(s); err != nil {
			return err
		}
	}
	s.csValid = false
	if err := s.book.Reset(m.Bids, m.Asks); err != nil {
		r.log.Warn("unusable snapshot", "symbol", s.Raw, "err", err)
		r.m.badSnapshots.Inc()
		return r.invalidate(s, format.InvalidBadMessage, ts, uint64(m.ID), 0, 0, true)
	}
	if m.Depth > 0 {
		s.book.Trim(true, m.Depth, nil)
		s.book.Trim(false, m.Depth, nil)
	}
	s.Buf = s.Buf[:0]
	if err := r.resync(s, ts, r.recvNs, m.ID, r.segName); err != nil {
		return err
	}
	if m.HasChecksum {
		return r.checksum(s, ts, uint64(m.ID), m.Checksum)
	}
	return nil
}

// checksum compares the exchange's checksum of the book after an event with the rebuilt
// book's; a mismatch makes the book invalid (reason checksum) until the next snapshot.
// Both count in the partition of the event.
//
// The checksum reads only the book's top levels: while updates change levels below them
// it stays the one last computed (touchesTop), which spares most updates of a deep book
// the walk to the top and the hashing. When it is recomputed, the strings of the levels
// still in the top since the last one are copied, not written again (venue.Pieces).
func (r *Refinery) checksum(s *symState, ts int64, seq uint64, want uint32) error {
	got := s.csSum
	if !s.csValid || s.csWire != s.Wire {
		n := r.cs.ChecksumDepth()
		s.csB = s.book.Top(true, n, s.csB[:0])
		s.csA = s.book.Top(false, n, s.csA[:0])
		if r.pcs != nil {
			s.csPB.Update(s.csB, true, r.pcs, s.Scale, s.Wire)
			s.csPA.Update(s.csA, false, r.pcs, s.Scale, s.Wire)
			got = r.pcs.ChecksumPieces(&s.csPB, &s.csPA)
		} else {
			got = r.cs.Checksum(s.csB, s.csA, s.Scale, s.Wire)
		}
		s.csSum, s.csWire, s.csValid = got, s.Wire, true
	}
	p := r.openPart(s, ts)
	r.cnt.checksumChecks++
	if p != nil {
		p.st.ChecksumChecks++
	}
	if got == want {
		return nil
	}
	r.m.checksumMismatches.Inc()
	if p != nil {
		p.st.ChecksumMismatches++
	}
	r.log.Warn("checksum mismatch: the book is invalid until the next snapshot", "symbol", s.Raw, "seq", seq,
		"exchange", want, "book", got, "segment", r.segName)
	return r.invalidate(s, format.InvalidChecksum, ts, seq, int64(want), int64(got), false)
}

// touchesTop reports whether an update may change the top levels the last checksum read:
// a level at or above the worst of them on its side, any level on a side that had fewer,
// or a depth kept shallower than the checksum reads.
func (r *Refinery) touchesTop(s *symState, m *venue.Message) bool {
	n := r.cs.ChecksumDepth()
	if m.Depth > 0 && m.Depth <= n || len(s.csB) < n && len(m.Bids) > 0 || len(s.csA) < n && len(m.Asks) > 0 {
		return true
	}
	if len(m.Bids) > 0 {
		worst := s.csB[len(s.csB)-1].Price
		for _, l := range m.Bids {
			if l.Price >= worst {
				return true
			}
		}
	}
	if len(m.Asks) > 0 {
		worst := s.csA[len(s.csA)-1].Price
		for _, l := range m.Asks {
			if l.Price <= worst {
				return true
			}
		}
	}
	return false
}
