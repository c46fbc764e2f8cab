package etl

// One-record events: trades and tickers (checked against the rebuilt book), and the hold
// that keeps them until the depth stream has crossed into their day.

import (
	"fmt"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/venue"
)

func (r *Refinery) onTrade(s *symState, ts int64) error {
	m := &r.msg
	return r.trade(s, ts, venue.Trade{ID: m.ID, Price: m.Price, Qty: m.Qty, BuyerMaker: m.BuyerMaker}, m.Kind == venue.KindAggTrade)
}

// onTrades writes the trades of a message that carries several, each dated by its own
// time. Trades without ids (Kraken) are neither deduplicated nor checked for gaps.
func (r *Refinery) onTrades(s *symState) error {
	for _, t := range r.msg.Trades {
		if !r.plausible(t.TxNs) {
			r.m.malformed.Inc()
			continue
		}
		if err := r.trade(s, t.TxNs, t, false); err != nil {
			return err
		}
	}
	return nil
}

func (r *Refinery) trade(s *symState, ts int64, t venue.Trade, agg bool) error {
	m := &r.msg
	rec := format.BookRecord{TypeID: format.TypeTrade, Flags: format.FlagLast, ExchTs: ts, RecvTs: r.recvNs,
		Seq: uint64(t.ID), Price: t.Price, Qty: t.Qty}
	if t.BuyerMaker {
		rec.Flags |= format.FlagAsk // the seller took liquidity
	} else {
		rec.Flags |= format.FlagBid
	}
	last, lastTs, stream := &s.LastTrade, &s.LastTradeTs, "trade"
	if agg {
		rec.Aux0, rec.Aux1 = m.FirstTrade, m.LastTrade
		last, lastTs, stream = &s.LastAgg, &s.LastAggTs, "aggTrade"
	}
	if *last != 0 && t.ID != 0 {
		switch {
		case t.ID <= *last:
			r.m.duplicates.Inc()
			return nil
		case t.ID > *last+1:
			missing := t.ID - *last - 1
			r.m.gaps.WithLabelValues("trade").Inc()
			if p, err := r.part(s, ts, false); err != nil {
				return err
			} else if p != nil {
				p.st.Gaps = append(p.st.Gaps, meta.Gap{Interval: meta.Interval{From: meta.Time(max(*lastTs, p.dayStart)), To: meta.Time(ts)}, Stream: stream, Missing: missing})
			}
		}
	}
	if t.ID != 0 {
		*last, *lastTs = t.ID, ts
	}
	return r.emit(s, &rec)
}

func (r *Refinery) onTicker(s *symState, ts int64, estimated bool) error {
	m := &r.msg
	if m.ID != 0 && m.ID <= s.LastTickerU {
		r.m.duplicates.Inc()
		return nil
	}
	if m.ID != 0 {
		s.LastTickerU = m.ID
	}
	rec := format.BookRecord{TypeID: format.TypeBBO, Flags: format.FlagLast, ExchTs: ts, RecvTs: r.recvNs,
		Seq: uint64(m.ID), Price: m.BidPrice, Qty: m.BidQty, Aux0: m.AskPrice, Aux1: m.AskQty}
	if estimated {
		rec.Flags |= format.FlagTsEstimated
	}
	if err := r.emit(s, &rec); err != nil {
		return err
	}
	if m.ID == 0 {
		return nil // a ticker without an update id names no book state to compare with
	}
	t := pendingTicker{U: m.ID, Bid: venue.Level{Price: m.BidPrice, Qty: m.BidQty}, Ask: venue.Level{Price: m.AskPrice, Qty: m.AskQty}}
	if s.live() && t.U <= s.LastU {
		if tp, ok := s.findTop(t.U); ok {
			r.tickerCheck(s, tp, t)
		}
		return nil
	}
	if len(s.Pending) >= maxPendingTick {
		s.Pending = s.Pending[1:] // the oldest goes (appends move the rest now and then)
	}
	s.Pending = append(s.Pending, t)
	return nil
}

// resolvePending checks the tickers waiting for update u and drops those it passed.
func (r *Refinery) resolvePending(s *symState, u, ts int64) {
	n := 0
	for n < len(s.Pending) && s.Pending[n].U <= u {
		if s.Pending[n].U == u {
			r.tickerCheck(s, top{U: u, Ts: ts, Bid: bestOr(s, true), Ask: bestOr(s, false)}, s.Pending[n])
		}
		n++
	}
	switch {
	case n == len(s.Pending):
		s.Pending = s.Pending[:0]
	case n > 0:
		s.Pending = s.Pending[n:]
	}
}

func bestOr(s *symState, bid bool) venue.Level {
	var l venue.Level
	if bid {
		l, _ = s.book.BestBid()
	} else {
		l, _ = s.book.BestAsk()
	}
	return l
}

// tickerCheck compares a ticker with the rebuilt book after the update it names; the
// check counts in the partition of that update.
func (r *Refinery) tickerCheck(s *symState, t top, tk pendingTicker) {
	p := r.openPart(s, t.Ts)
	ok := t.Bid == tk.Bid && t.Ask == tk.Ask
	r.cnt.tickerChecks++
	if !ok {
		r.m.tickerMismatches.Inc()
		r.log.Warn("ticker disagrees with the book", "symbol", s.Raw, "u", t.U,
			"ticker", fmt.Sprintf("%d/%d %d/%d", tk.Bid.Price, tk.Bid.Qty, tk.Ask.Price, tk.Ask.Qty),
			"book", fmt.Sprintf("%d/%d %d/%d", t.Bid.Price, t.Bid.Qty, t.Ask.Price, t.Ask.Qty))
	}
	if p != nil {
		p.st.Checks++
		if !ok {
			p.st.Mismatches++
		}
	}
}

// emit writes a one-record event (trade, bbo): held while the depth stream has not yet
// crossed into the record's day, flagged while the book is invalid.
func (r *Refinery) emit(s *symState, rec *format.BookRecord) error {
	if s.live() && dayOf(rec.ExchTs) > s.BookDay && r.cfg.DayHold > 0 {
		if len(s.Hold) == 0 {
			s.HoldDeadline = (s.BookDay+1)*dayNs + int64(r.cfg.DayHold)
			r.holders[s.Raw] = s
		}
		s.Hold = append(s.Hold, *rec)
		s.HoldSegs = append(s.HoldSegs, r.segName)
		return nil
	}
	if !s.live() {
		rec.Flags |= format.FlagBookInvalid
	}
	return r.write(s, rec, r.segName)
}

func (r *Refinery) write(s *symState, rec *format.BookRecord, seg string) error {
	p, err := r.part(s, rec.ExchTs, false)
	if err != nil || p == nil {
		return err
	}
	if err := r.periodic(s, p, rec.ExchTs, rec.RecvTs, seg); err != nil {
		return err
	}
	rec.SymbolID = p.key.SymbolID
	if err := p.write(rec); err != nil {
		return err
	}
	p.noteSegment(seg)
	r.touch(p)
	return nil
}

// flushHold writes the held records of the next day: the new partition opens with the
// book as the previous day left it.
func (r *Refinery) flushHold(s *symState) error {
	if len(s.Hold) == 0 {
		return nil
	}
	hold, segs := s.Hold, s.HoldSegs
	s.Hold, s.HoldSegs = nil, nil
	delete(r.holders, s.Raw)
	for i := range hold {
		s.BookDay = max(s.BookDay, dayOf(hold[i].ExchTs))
		if err := r.write(s, &hold[i], segs[i]); err != nil {
			return err
		}
	}
	return nil
}
