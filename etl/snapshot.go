package etl

// REST snapshots (held until an update bridges them) and the snapshot runs that restate a
// whole book: at a partition's start, after a resync, and periodically.

import (
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/venue"
)

func (r *Refinery) onSnapshot(rec *format.JournalRecord) error {
	sym := r.snapReq[rec.Channel]
	if ci, ok := r.channels[rec.Channel]; ok && ci.Symbol != "" && ci.Kind == "depth" {
		sym = ci.Symbol
	}
	if err := r.v.DecodeSnapshot(rec.Payload, &r.snap); err != nil {
		r.m.badSnapshots.Inc()
		r.log.Warn("undecodable snapshot", "segment", r.segName, "offset", rec.Offset, "err", err)
		return nil
	}
	if sym == "" {
		sym = r.snap.Symbol
	}
	if sym == "" {
		r.m.badSnapshots.Inc()
		r.log.Warn("snapshot of an unknown symbol", "segment", r.segName, "offset", rec.Offset)
		return nil
	}
	s := r.sym(sym, r.clock)
	if s.live() {
		r.m.ignoredSnapshots.Inc()
		return nil
	}
	s.Snap = &heldSnap{L: r.snap.LastUpdateID, Bids: append([]venue.Level(nil), r.snap.Bids...),
		Asks: append([]venue.Level(nil), r.snap.Asks...)}
	s.Phase = phaseBridging
	return r.drain(s)
}

// snapshotRun writes a run restating the whole book into p.
func (r *Refinery) snapshotRun(s *symState, p *partition, ts, recv int64, seq uint64, seg string) error {
	bids, asks := s.book.Depth()
	rec := format.BookRecord{TypeID: format.TypeSnapshotBegin, Flags: format.FlagSnapshot, SymbolID: p.key.SymbolID,
		ExchTs: ts, RecvTs: recv, Seq: seq, Aux0: int64(bids + asks)}
	if !s.live() {
		rec.Flags |= format.FlagBookInvalid
		rec.Aux0 = 0
	}
	if err := p.write(&rec); err != nil {
		return err
	}
	if s.live() {
		r.snapBids, r.snapAsks = s.book.AppendBids(r.snapBids[:0]), s.book.AppendAsks(r.snapAsks[:0])
		lr := format.BookRecord{TypeID: format.TypeLevel, SymbolID: p.key.SymbolID, ExchTs: ts, RecvTs: recv, Seq: seq}
		if err := p.snapshotLevels(&lr, r.snapBids, r.snapAsks); err != nil {
			return err
		}
	}
	rec = format.BookRecord{TypeID: format.TypeSnapshotEnd, Flags: format.FlagSnapshot | format.FlagLast, SymbolID: p.key.SymbolID,
		ExchTs: ts, RecvTs: recv, Seq: seq}
	if !s.live() {
		rec.Flags |= format.FlagBookInvalid
	}
	if err := p.write(&rec); err != nil {
		return err
	}
	p.noteSegment(seg)
	r.touch(p)
	s.NextSnap = r.nextBoundary(ts)
	r.m.snapshots.Inc()
	return nil
}

type levelT = venue.Level

func (r *Refinery) nextBoundary(ts int64) int64 {
	iv := int64(r.cfg.SnapshotInterval)
	b := ts / iv
	if ts%iv < 0 {
		b--
	}
	return (b + 1) * iv
}

// periodic writes the periodic snapshot run when ts reaches the next boundary.
func (r *Refinery) periodic(s *symState, p *partition, ts, recv int64, seg string) error {
	if ts < s.NextSnap {
		return nil
	}
	if !s.live() {
		s.NextSnap = r.nextBoundary(ts)
		return nil
	}
	return r.snapshotRun(s, p, ts, recv, uint64(s.LastU), seg)
}
