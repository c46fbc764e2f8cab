package etl

// The depth stream of venues whose snapshots come over REST (Binance): updates buffered
// until a snapshot bridges them, then applied to a live book, each written as level records.

import (
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/venue"
)

func (r *Refinery) onDepth(s *symState, ts int64) error {
	m := &r.msg
	if s.live() {
		switch r.v.Check(s.LastU, m.Event) {
		case venue.SeqNext:
			return r.applyDepth(s, &depthUpdate{exch: ts, recv: r.recvNs, first: m.First, last: m.ID, prev: m.Prev,
				bids: m.Bids, asks: m.Asks, seg: r.segName})
		case venue.SeqStale:
			r.m.duplicates.Inc()
			return nil
		}
		if err := r.invalidate(s, format.InvalidSequence, ts, uint64(m.ID), s.LastU, m.Prev, false); err != nil {
			return err
		}
	}
	if len(s.Buf) >= r.cfg.MaxBuffered {
		s.Buf = append(s.Buf[:0], s.Buf[1:]...)
		r.m.bufferDropped.Inc()
	}
	s.Buf = append(s.Buf, bufUpdate{ExchNs: ts, RecvNs: r.recvNs, First: m.First, Last: m.ID, Prev: m.Prev,
		Bids: append([]venue.Level(nil), m.Bids...), Asks: append([]venue.Level(nil), m.Asks...), Segment: r.segName})
	return r.drain(s)
}

// drain applies buffered updates once a snapshot is held.
func (r *Refinery) drain(s *symState) error {
	n := 0
	defer func() { s.Buf = append(s.Buf[:0], s.Buf[n:]...) }()
	for n < len(s.Buf) {
		u := &s.Buf[n]
		switch s.Phase {
		case phaseAwaiting:
			return nil
		case phaseBridging:
			switch r.v.SnapshotBridge(s.Snap.L, u.event()) {
			case venue.BridgeBefore:
				n++
			case venue.BridgeApplies:
				n++
				if err := r.goLive(s, u); err != nil {
					return err
				}
			default:
				// The snapshot is older than the chain: wait for the next (the feed asks
				// again with reason "stale").
				s.Snap, s.Phase = nil, phaseAwaiting
				r.m.staleSnapshots.Inc()
				return nil
			}
		case phaseLive:
			switch r.v.Check(s.LastU, u.event()) {
			case venue.SeqNext:
				n++
				if err := r.applyDepth(s, u.update()); err != nil {
					return err
				}
			case venue.SeqStale:
				n++
			default:
				if err := r.invalidate(s, format.InvalidSequence, u.ExchNs, uint64(u.Last), s.LastU, u.Prev, false); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// goLive seeds the book with the held snapshot and applies the bridging update.
func (r *Refinery) goLive(s *symState, u *bufUpdate) error {
	snap := s.Snap
	if err := s.book.Reset(snap.Bids, snap.Asks); err != nil {
		r.log.Warn("unusable snapshot", "symbol", s.Raw, "err", err)
		s.Snap, s.Phase = nil, phaseAwaiting
		return nil
	}
	if err := r.resync(s, u.ExchNs, u.RecvNs, snap.L, u.Segment); err != nil {
		return err
	}
	return r.applyDepth(s, u.update())
}

// resync makes the book live at ts from the snapshot whose last update id is last (received
// at recvNs, journaled in segment seg): the invalid stretch closes, and the partition gets a
// snapshot run if it has one open.
func (r *Refinery) resync(s *symState, ts, recvNs, last int64, seg string) error {
	// The partition is found while the book still counts as invalid, so one created now
	// records the invalid stretch from its midnight to this resync.
	p, err := r.part(s, ts, true)
	if err != nil {
		return err
	}
	s.Phase, s.Snap, s.LastU = phaseLive, nil, last
	s.BookDay = dayOf(ts)
	s.clearTops()
	r.closeInvalid(s, ts)
	if p != nil {
		if err := r.snapshotRun(s, p, ts, recvNs, uint64(last), seg); err != nil {
			return err
		}
	} else {
		s.NextSnap = r.nextBoundary(ts)
	}
	r.m.resyncs.Inc()
	return nil
}

// depthUpdate is one depth event as applyDepth takes it: the message just decoded, or an
// update that waited in the buffer for its snapshot (bufUpdate.update).
type depthUpdate struct {
	exch, recv int64 // exchange and receive times
	// The update's ids as its level records carry them: aux0 (its first id, or the
	// exchange's checksum under FlagChecksum), seq (its last id), aux1 (the previous
	// update's last id).
	first, last, prev int64
	bids, asks        []venue.Level
	seg               string // the journal segment it came from
	// What an update of a venue beyond Binance's shape adds: the depth its book keeps
	// (levels past it are dropped, written as deletes in the same event) and flags for
	// every record of the event (FlagChecksum).
	depth int
	flags uint16
}

// update is the buffered update as applyDepth takes it.
func (u *bufUpdate) update() *depthUpdate {
	return &depthUpdate{exch: u.ExchNs, recv: u.RecvNs, first: u.First, last: u.Last, prev: u.Prev,
		bids: u.Bids, asks: u.Asks, seg: u.Segment}
}

// applyDepth applies one update to a live book and writes its level records.
func (r *Refinery) applyDepth(s *symState, u *depthUpdate) error {
	ts, last := u.exch, u.last
	if day := dayOf(ts); day > s.BookDay {
		if err := r.flushHold(s); err != nil {
			return err
		}
		s.BookDay = day
	}
	p, err := r.part(s, ts, false)
	if err != nil {
		return err
	}
	if p != nil {
		if err := r.periodic(s, p, ts, u.recv, u.seg); err != nil {
			return err
		}
	}
	if s.book.Apply(true, u.bids) != nil || s.book.Apply(false, u.asks) != nil {
		return r.invalidate(s, format.InvalidBadMessage, ts, uint64(last), s.LastU, u.prev, false)
	}
	var trimB, trimA []venue.Level
	if u.depth > 0 {
		r.trimB = s.book.Trim(true, u.depth, r.trimB[:0])
		r.trimA = s.book.Trim(false, u.depth, r.trimA[:0])
		trimB, trimA = r.trimB, r.trimA
	}
	s.LastU = last
	crossed := s.book.Crossed()
	if crossed {
		r.cnt.crossed++
	}
	if p != nil {
		p.noteSegment(u.seg)
		rec := format.BookRecord{TypeID: format.TypeLevel, SymbolID: p.key.SymbolID, ExchTs: ts, RecvTs: u.recv,
			Seq: uint64(last), Aux0: u.first, Aux1: u.prev}
		if err := p.levels(&rec, u.bids, u.asks, trimB, trimA, u.flags, crossed); err != nil {
			return err
		}
		r.touch(p)
	}
	s.pushTop(last, ts)
	r.resolvePending(s, last, ts)
	return nil
}
