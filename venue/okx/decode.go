package okx

import (
	"github.com/chronicle/chronicle/fault"
	"github.com/chronicle/chronicle/venue"
)

// The refinery's decoder: one pass over a message, every field of its channel read and
// checked, prices and sizes straight to fixed point at the instrument's scale, the rest of
// the message passed over with its grammar checked. No allocation once the message's level
// and trade slices have grown.

// maxMillis bounds timestamps (2262-04-11) so that ms -> ns cannot overflow.
const maxMillis = (1<<63 - 1) / 1_000_000

// Decode decodes a message at the default scale.
func (v Venue) Decode(msg []byte, m *venue.Message) error { return v.DecodeAt(msg, m, nil) }

// DecodeAt decodes a whole message into m, its numbers at the scale scales gives its
// instrument (DefaultScale when scales is nil or has none for it).
func (Venue) DecodeAt(msg []byte, m *venue.Message, scales *venue.Scales) error {
	if fastBook(msg, m, scales) {
		return nil
	}
	return decodeGeneral(msg, m, scales)
}

// decodeGeneral is DecodeAt by the general scanner: any message, any JSON spacing, and
// the error that says what is wrong.
func decodeGeneral(msg []byte, m *venue.Message, scales *venue.Scales) error {
	*m = venue.Message{Bids: m.Bids[:0], Asks: m.Asks[:0], Trades: m.Trades[:0]}
	if string(msg) == "pong" {
		m.Kind = venue.KindControl
		return nil
	}
	s := venue.Scanner{B: msg}
	if !s.Expect('{') {
		return s.Fail("", venue.ErrSyntax)
	}
	var action []byte
	dataAt := -1
	control := false
	if !s.Close('}') {
		for {
			key, ok := s.Key()
			if !ok {
				return s.Fail("", venue.ErrSyntax)
			}
			switch string(key) {
			case "event":
				control = true
				if !s.Skip() {
					return s.Fail("event", venue.ErrSyntax)
				}
			case "arg":
				if m.Stream != nil {
					return s.Fail("arg", venue.ErrBadField)
				}
				ch, inst, err := parseArg(&s)
				if err != nil {
					return err
				}
				m.Stream, m.Inst, m.Symbol = ch, inst, inst
			case "action":
				raw, esc, ok := s.Str()
				if !ok || esc || action != nil {
					return s.Fail("action", venue.ErrBadField)
				}
				action = raw
			case "data":
				if dataAt >= 0 {
					return s.Fail("data", venue.ErrBadField)
				}
				dataAt = s.I
				if !s.Skip() {
					return s.Fail("data", venue.ErrSyntax)
				}
			default:
				if !s.Skip() {
					return s.Fail(string(key), venue.ErrSyntax)
				}
			}
			more, ok := s.More('}')
			if !ok {
				return s.Fail("", venue.ErrSyntax)
			}
			if !more {
				break
			}
		}
	}
	if !s.End() {
		return s.Fail("", venue.ErrSyntax)
	}
	if control {
		*m = venue.Message{Bids: m.Bids[:0], Asks: m.Asks[:0], Trades: m.Trades[:0]}
		m.Kind = venue.KindControl
		return nil
	}
	if m.Stream == nil || m.Inst == nil || dataAt < 0 {
		return fault.Field(0, "", venue.ErrNotEnvelope)
	}
	c, known := channelNamed(m.Stream)
	if !known {
		m.Kind = venue.KindOther
		return nil
	}
	m.Kind = c.kind
	m.Scale = DefaultScale
	if scales != nil {
		m.Scale = scales.Of(m.Inst)
	}
	s.I = dataAt
	switch c.kind {
	case venue.KindDepth:
		switch string(action) {
		case "snapshot":
			m.Snapshot = true
		case "update":
		default:
			return fault.Field(0, "action", venue.ErrBadField)
		}
		m.Depth = c.depth
		m.Wire = venue.Wire{PriceFrac: -1, QtyFrac: -1, Known: true}
		return decodeBook(&s, m)
	case venue.KindTrade:
		return decodeTrades(&s, m)
	}
	return decodeTicker(&s, m)
}

// book data fields seen
const (
	bAsks = 1 << iota
	bBids
	bTs
)

func decodeBook(s *venue.Scanner, m *venue.Message) error {
	if !s.Expect('[') || !s.Expect('{') {
		return s.Fail("data", venue.ErrBadField)
	}
	start := s.I
	have := 0
	haveSeq, havePrev := false, false
	if !s.Close('}') {
		for {
			key, ok := s.Key()
			if !ok {
				return s.Fail("data", venue.ErrSyntax)
			}
			var err error
			switch string(key) {
			case "asks":
				if have&bAsks != 0 {
					return s.Fail("asks", venue.ErrBadField)
				}
				m.Asks, err = levels(s, m.Asks, m.Scale, "asks")
				have |= bAsks
			case "bids":
				if have&bBids != 0 {
					return s.Fail("bids", venue.ErrBadField)
				}
				m.Bids, err = levels(s, m.Bids, m.Scale, "bids")
				have |= bBids
			case "ts":
				m.ExchNs, err = millis(s, "ts")
				have |= bTs
			case "checksum":
				v, ok := s.Int()
				if !ok || v < -1<<31 || v > 1<<31-1 {
					return s.Fail("checksum", venue.ErrBadField)
				}
				// OKX announced that from June 2026 the field stays but is always 0: a
				// checksum of 0 is no checksum.
				m.Checksum, m.HasChecksum = uint32(int32(v)), v != 0
			case "seqId", "prevSeqId":
				v, ok := s.Int()
				if !ok || v < -1 {
					return s.Fail(string(key), venue.ErrBadField)
				}
				if key[0] == 's' {
					m.ID, haveSeq = v, true
				} else {
					m.Prev, havePrev = v, true
				}
			default:
				if !s.Skip() {
					return s.Fail(string(key), venue.ErrSyntax)
				}
			}
			if err != nil {
				return err
			}
			more, ok := s.More('}')
			if !ok {
				return s.Fail("data", venue.ErrSyntax)
			}
			if !more {
				break
			}
		}
	}
	if !s.Expect(']') {
		return s.Fail("data", venue.ErrBadField) // a book message carries one book
	}
	switch {
	case have&bAsks == 0:
		return fault.Field(start, "asks", venue.ErrMissingField)
	case have&bBids == 0:
		return fault.Field(start, "bids", venue.ErrMissingField)
	case have&bTs == 0:
		return fault.Field(start, "ts", venue.ErrMissingField)
	case haveSeq != havePrev:
		return fault.Field(start, "prevSeqId", venue.ErrMissingField)
	case haveSeq && m.ID < 0:
		return fault.Field(start, "seqId", venue.ErrBadField)
	case haveSeq && !m.Snapshot && m.Prev < 0:
		return fault.Field(start, "prevSeqId", venue.ErrBadField)
	}
	return nil
}

// levels reads [["px","sz",...],...]: a positive price and a size (0 deletes); the
// elements after the size (liquidated orders, orders) are checked and passed over.
func levels(s *venue.Scanner, dst []venue.Level, sc venue.Scale, field string) ([]venue.Level, error) {
	dst = dst[:0]
	if !s.Expect('[') {
		return dst, s.Fail(field, venue.ErrBadField)
	}
	if s.Close(']') {
		return dst, nil
	}
	for {
		if !s.Expect('[') {
			return dst, s.Fail(field, venue.ErrBadField)
		}
		p, _, ok := s.Decimal(sc.Price)
		if !ok || p <= 0 || !s.Expect(',') {
			return dst, s.Fail(field, venue.ErrBadField)
		}
		q, _, ok := s.Decimal(sc.Qty)
		if !ok {
			return dst, s.Fail(field, venue.ErrBadField)
		}
		for {
			more, ok := s.More(']')
			if !ok {
				return dst, s.Fail(field, venue.ErrSyntax)
			}
			if !more {
				break
			}
			if !s.Skip() {
				return dst, s.Fail(field, venue.ErrSyntax)
			}
		}
		dst = append(dst, venue.Level{Price: p, Qty: q})
		more, ok := s.More(']')
		if !ok {
			return dst, s.Fail(field, venue.ErrSyntax)
		}
		if !more {
			return dst, nil
		}
	}
}

// millis reads a quoted millisecond time as ns.
func millis(s *venue.Scanner, field string) (int64, error) {
	v, ok := s.QuotedInt()
	if !ok || v <= 0 || v > maxMillis {
		return 0, s.Fail(field, venue.ErrBadField)
	}
	return v * 1e6, nil
}

// trade fields seen
const (
	tID = 1 << iota
	tPx
	tSz
	tSide
	tTs
	tAll = tID | tPx | tSz | tSide | tTs
)

var tradeFields = [...]string{"tradeId", "px", "sz", "side", "ts"}

func decodeTrades(s *venue.Scanner, m *venue.Message) error {
	if !s.Expect('[') {
		return s.Fail("data", venue.ErrBadField)
	}
	if s.Close(']') {
		return s.Fail("data", venue.ErrMissingField)
	}
	for {
		if !s.Expect('{') {
			return s.Fail("data", venue.ErrBadField)
		}
		start := s.I
		var t venue.Trade
		have := 0
		if !s.Close('}') {
			for {
				key, ok := s.Key()
				if !ok {
					return s.Fail("data", venue.ErrSyntax)
				}
				var err error
				switch string(key) {
				case "tradeId":
					v, ok := s.QuotedInt()
					if !ok || v <= 0 {
						return s.Fail("tradeId", venue.ErrBadField)
					}
					t.ID, have = v, have|tID
				case "px", "sz":
					scale := m.Scale.Qty
					if key[0] == 'p' {
						scale = m.Scale.Price
					}
					v, _, ok := s.Decimal(scale)
					if !ok || v <= 0 {
						return s.Fail(string(key), venue.ErrBadField)
					}
					if key[0] == 'p' {
						t.Price, have = v, have|tPx
					} else {
						t.Qty, have = v, have|tSz
					}
				case "side":
					raw, _, ok := s.Str()
					switch {
					case ok && string(raw) == "buy":
					case ok && string(raw) == "sell":
						t.BuyerMaker = true // the taker sold
					default:
						return s.Fail("side", venue.ErrBadField)
					}
					have |= tSide
				case "ts":
					t.TxNs, err = millis(s, "ts")
					have |= tTs
				case "instId":
					raw, esc, ok := s.Str()
					if !ok || esc || string(raw) != string(m.Inst) {
						return s.Fail("instId", venue.ErrBadField)
					}
				default:
					if !s.Skip() {
						return s.Fail(string(key), venue.ErrSyntax)
					}
				}
				if err != nil {
					return err
				}
				more, ok := s.More('}')
				if !ok {
					return s.Fail("data", venue.ErrSyntax)
				}
				if !more {
					break
				}
			}
		}
		if missing := tAll &^ have; missing != 0 {
			return fault.Field(start, tradeFields[lowBit(missing)], venue.ErrMissingField)
		}
		m.Trades = append(m.Trades, t)
		m.ID, m.ExchNs = max(m.ID, t.ID), max(m.ExchNs, t.TxNs)
		more, ok := s.More(']')
		if !ok {
			return s.Fail("data", venue.ErrSyntax)
		}
		if !more {
			return nil
		}
	}
}

func lowBit(x int) int {
	for i := 0; i < 31; i++ {
		if x&(1<<i) != 0 {
			return i
		}
	}
	return 0
}

// ticker fields seen
const (
	kBidPx = 1 << iota
	kBidSz
	kAskPx
	kAskSz
	kTs
	kAll = kBidPx | kBidSz | kAskPx | kAskSz | kTs
)

var tickerFields = [...]string{"bidPx", "bidSz", "askPx", "askSz", "ts"}

// decodeTicker reads a tickers message's best bid and ask; an empty side ("") is 0.
func decodeTicker(s *venue.Scanner, m *venue.Message) error {
	if !s.Expect('[') || !s.Expect('{') {
		return s.Fail("data", venue.ErrBadField)
	}
	start := s.I
	have := 0
	if !s.Close('}') {
		for {
			key, ok := s.Key()
			if !ok {
				return s.Fail("data", venue.ErrSyntax)
			}
			var dst *int64
			var bit int
			scale := m.Scale.Qty
			switch string(key) {
			case "bidPx":
				dst, bit, scale = &m.BidPrice, kBidPx, m.Scale.Price
			case "bidSz":
				dst, bit = &m.BidQty, kBidSz
			case "askPx":
				dst, bit, scale = &m.AskPrice, kAskPx, m.Scale.Price
			case "askSz":
				dst, bit = &m.AskQty, kAskSz
			case "ts":
				var err error
				if m.ExchNs, err = millis(s, "ts"); err != nil {
					return err
				}
				have |= kTs
			case "instId":
				raw, esc, ok := s.Str()
				if !ok || esc || string(raw) != string(m.Inst) {
					return s.Fail("instId", venue.ErrBadField)
				}
			default:
				if !s.Skip() {
					return s.Fail(string(key), venue.ErrSyntax)
				}
			}
			if dst != nil {
				if s.Peek() == '"' && s.I+1 < len(s.B) && s.B[s.I+1] == '"' {
					s.I += 2 // no order on that side
				} else {
					v, _, ok := s.Decimal(scale)
					if !ok {
						return s.Fail(string(key), venue.ErrBadField)
					}
					*dst = v
				}
				have |= bit
			}
			more, ok := s.More('}')
			if !ok {
				return s.Fail("data", venue.ErrSyntax)
			}
			if !more {
				break
			}
		}
	}
	if !s.Expect(']') {
		return s.Fail("data", venue.ErrBadField)
	}
	if missing := kAll &^ have; missing != 0 {
		return fault.Field(start, tickerFields[lowBit(missing)], venue.ErrMissingField)
	}
	return nil
}
