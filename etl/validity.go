package etl

// Validity: what makes a book unreliable (sequence gaps, lost connections, feed restarts,
// journal gaps) and how it is recorded, until the next snapshot makes it valid again.

import (
	"sort"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
)

// invalidate marks the book unreliable from ts: a book_invalid record, an open interval
// in the partition's completeness list, and every record flagged until the next snapshot.
// dropChain also forgets buffered updates and a held snapshot (a lost connection: the
// next chain starts afresh).
func (r *Refinery) invalidate(s *symState, reason, ts int64, seq uint64, expected, got int64, dropChain bool) error {
	if dropChain {
		s.Buf, s.Snap = s.Buf[:0], nil
		if s.Phase == phaseBridging {
			s.Phase = phaseAwaiting
		}
	}
	if !s.live() {
		return nil
	}
	if err := r.flushHold(s); err != nil {
		return err
	}
	r.m.gaps.WithLabelValues(format.InvalidReasonName(reason)).Inc()
	r.log.Info("book invalid", "symbol", s.Raw, "reason", format.InvalidReasonName(reason), "at", seq, "segment", r.segName)
	if ts == 0 {
		ts = s.LastExch
	}
	rec := format.BookRecord{TypeID: format.TypeBookInvalid, Flags: format.FlagBookInvalid | format.FlagLast,
		ExchTs: ts, RecvTs: r.recvNs, Seq: seq, Qty: reason, Aux0: expected, Aux1: got}
	p, err := r.part(s, ts, false)
	if err != nil {
		return err
	}
	s.Phase, s.Snap = phaseAwaiting, nil
	s.InvalidReason, s.InvalidFrom = reason, ts
	s.book.Clear()
	s.csValid = false
	s.clearTops()
	if p != nil {
		rec.SymbolID = p.key.SymbolID
		if err := p.write(&rec); err != nil {
			return err
		}
		p.noteSegment(r.segName)
		p.openInvalid(ts, reason)
		r.touch(p)
	}
	return nil
}

// closeInvalid ends the open invalid intervals of the symbol's partitions at a resync.
func (r *Refinery) closeInvalid(s *symState, ts int64) {
	for _, p := range r.parts {
		if p.raw == s.Raw && p.key.Kind != kindLate {
			p.closeInvalid(ts)
		}
	}
}

func (r *Refinery) touch(p *partition) {
	r.wrote = true
	for _, q := range r.touched {
		if q == p {
			return
		}
	}
	r.touched = append(r.touched, p)
}

// Connection events: a reconnect or a new feed process restarts the chains.

func (r *Refinery) onConnect(rec *format.JournalRecord) error {
	var c journal.Connect
	if err := journal.Decode(rec.Payload, &c); err != nil {
		r.m.skipped.WithLabelValues("bad_event").Inc()
		return nil
	}
	for _, st := range c.Streams {
		sym := st.Symbol
		if sym == "" {
			sym = r.v.Symbol(st.Stream)
		}
		r.channels[st.Channel] = chanInfo{Stream: st.Stream, Symbol: sym, Kind: st.Kind, Conn: c.Channel}
	}
	if c.Carried {
		return nil
	}
	if r.session != 0 && c.Session != r.session {
		// A new feed process: every chain restarts.
		r.session = c.Session
		for _, raw := range sortedKeys(r.syms) {
			if err := r.invalidate(r.syms[raw], format.InvalidFeedRestart, 0, 0, 0, 0, true); err != nil {
				return err
			}
		}
		return nil
	}
	r.session = c.Session
	if c.Replaces != nil {
		return nil // a rollover: the journal continues each chain
	}
	return r.invalidateConn(c.Channel, format.InvalidDisconnect, true)
}

func (r *Refinery) onDisconnect(rec *format.JournalRecord) error {
	var d journal.Disconnect
	if err := journal.Decode(rec.Payload, &d); err != nil {
		r.m.skipped.WithLabelValues("bad_event").Inc()
		return nil
	}
	if d.Kind == journal.DisconnectRollover {
		return nil
	}
	return r.invalidateConn(rec.Channel, format.InvalidDisconnect, true)
}

// invalidateConn invalidates the books whose depth stream a connection carried.
func (r *Refinery) invalidateConn(conn uint16, reason int64, dropChain bool) error {
	var syms []string
	for _, ci := range r.channels {
		if ci.Conn == conn && ci.Kind == "depth" {
			syms = append(syms, ci.Symbol)
		}
	}
	sort.Strings(syms)
	for _, raw := range syms {
		if s := r.syms[raw]; s != nil {
			if err := r.invalidate(s, reason, 0, uint64(s.LastU), 0, 0, dropChain); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Refinery) onGap(rec *format.JournalRecord) error {
	var g journal.Gap
	if err := journal.Decode(rec.Payload, &g); err != nil {
		r.m.skipped.WithLabelValues("bad_event").Inc()
		return nil
	}
	var reason int64
	switch g.Reason {
	case journal.GapWriteFailed:
		for _, raw := range sortedKeys(r.syms) {
			if err := r.invalidate(r.syms[raw], format.InvalidWriteFailed, 0, 0, 0, 0, true); err != nil {
				return err
			}
		}
		return nil
	case journal.GapSequence:
		reason = format.InvalidSequence
	case journal.GapOversized:
		reason = format.InvalidOversized
	case journal.GapRolloverLost:
		reason = format.InvalidRolloverLost
	case journal.GapChecksum:
		reason = format.InvalidChecksum
	default:
		return nil
	}
	ci, ok := r.channels[rec.Channel]
	if !ok || ci.Kind != "depth" {
		return nil // trade gaps show in the trade ids; other streams are not refined
	}
	if s := r.syms[ci.Symbol]; s != nil {
		return r.invalidate(s, reason, 0, uint64(g.ID), g.LastID, g.Prev, reason != format.InvalidSequence && reason != format.InvalidChecksum)
	}
	return nil
}
