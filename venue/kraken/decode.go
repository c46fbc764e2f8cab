package kraken

import (
	"bytes"
	"math"

	"github.com/chronicle/chronicle/fault"
	"github.com/chronicle/chronicle/venue"
)

// Parse reads what the feed needs from one message: the channel name and pair at the
// end of a data array, and whether a book message is a snapshot (its first payload's
// first key is "as" or "bs"). Event objects are control messages. It never allocates.
func (Venue) Parse(msg []byte) (venue.Event, error) {
	var ev venue.Event
	s := venue.Scanner{B: msg}
	switch s.Peek() {
	case '{':
		ev.Kind = venue.KindControl
		return ev, nil
	case '[':
		s.I++
	default:
		return ev, s.Fail("", venue.ErrSyntax)
	}
	var prev, last []byte
	n := 0
	for {
		switch c := s.Peek(); {
		case n == 0:
			if _, ok := s.Int(); !ok {
				return venue.Event{}, s.Fail("channelID", venue.ErrBadField)
			}
		case c == '"':
			raw, esc, ok := s.Str()
			if !ok || esc {
				return venue.Event{}, s.Fail("channelName", venue.ErrBadField)
			}
			prev, last = last, raw
		default:
			if n == 1 && c == '{' {
				ev.Snapshot = snapshotPayload(msg[s.I:])
			}
			if !s.Skip() {
				return venue.Event{}, s.Fail("", venue.ErrSyntax)
			}
			prev, last = nil, nil // the names come last
		}
		n++
		more, ok := s.More(']')
		if !ok {
			return venue.Event{}, s.Fail("", venue.ErrSyntax)
		}
		if !more {
			break
		}
	}
	if n < 4 || prev == nil || last == nil {
		return venue.Event{}, fault.Field(0, "", venue.ErrNotEnvelope)
	}
	ev.Stream, ev.Inst = prev, last
	ev.Kind = kindOf(prev)
	if ev.Kind != venue.KindDepth {
		ev.Snapshot = false
	}
	return ev, nil
}

// snapshotPayload reports whether a book payload object starts with "as" or "bs".
func snapshotPayload(b []byte) bool {
	s := venue.Scanner{B: b}
	if !s.Expect('{') {
		return false
	}
	key, ok := s.Key()
	return ok && (string(key) == "as" || string(key) == "bs")
}

// trailingPair returns the last string of a data array (its pair), found from the end,
// so that the payloads before it decode at the pair's scale in one pass; the forward pass
// checks it again.
func trailingPair(b []byte) []byte {
	b = trimWS(b)
	if len(b) < 2 || b[len(b)-1] != ']' {
		return nil
	}
	b = trimWS(b[:len(b)-1])
	if len(b) < 2 || b[len(b)-1] != '"' {
		return nil
	}
	b = b[:len(b)-1]
	i := bytes.LastIndexByte(b, '"')
	if i < 0 {
		return nil
	}
	return b[i+1:]
}

// trimWS drops JSON whitespace from the end of b.
func trimWS(b []byte) []byte {
	for len(b) > 0 {
		switch b[len(b)-1] {
		case ' ', '\t', '\r', '\n':
			b = b[:len(b)-1]
		default:
			return b
		}
	}
	return b
}

// Decode decodes a message at the default scale.
func (v Venue) Decode(msg []byte, m *venue.Message) error { return v.DecodeAt(msg, m, nil) }

// DecodeAt decodes a whole message into m, its numbers at the scale scales gives its
// pair (DefaultScale when scales is nil or has none for it).
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
	s := venue.Scanner{B: msg}
	switch s.Peek() {
	case '{':
		if !s.Skip() || !s.End() {
			return s.Fail("", venue.ErrSyntax)
		}
		m.Kind = venue.KindControl
		return nil
	case '[':
		s.I++
	default:
		return s.Fail("", venue.ErrSyntax)
	}
	pair := trailingPair(msg)
	m.Scale = DefaultScale
	if scales != nil && pair != nil {
		m.Scale = scales.Of(pair)
	}
	// The payloads are decoded as they come, by the kind the channel name will confirm:
	// objects are book or ticker payloads, arrays trade lists.
	var prev, last []byte
	var d book
	n := 0
	var kinds uint8 // payload shapes seen: 1 object, 2 array
	for {
		switch c := s.Peek(); {
		case n == 0:
			if _, ok := s.Int(); !ok {
				return s.Fail("channelID", venue.ErrBadField)
			}
		case c == '"':
			raw, esc, ok := s.Str()
			if !ok || esc {
				return s.Fail("channelName", venue.ErrBadField)
			}
			prev, last = last, raw
		case prev != nil || last != nil:
			return s.Fail("", venue.ErrBadField) // a payload after the names
		case c == '{':
			kinds |= 1
			if err := d.object(&s, m); err != nil {
				return err
			}
		case c == '[':
			kinds |= 2
			if err := trades(&s, m); err != nil {
				return err
			}
		default:
			return s.Fail("", venue.ErrBadField)
		}
		n++
		more, ok := s.More(']')
		if !ok {
			return s.Fail("", venue.ErrSyntax)
		}
		if !more {
			break
		}
	}
	if !s.End() {
		return s.Fail("", venue.ErrSyntax)
	}
	if n < 4 || prev == nil || last == nil || !bytes.Equal(last, pair) {
		return fault.Field(0, "", venue.ErrNotEnvelope)
	}
	if !validPair(string(last)) {
		return fault.Field(len(msg)-len(last)-2, "pair", venue.ErrBadField)
	}
	m.Stream, m.Inst, m.Symbol = prev, last, last
	m.Kind = kindOf(prev)
	switch m.Kind {
	case venue.KindDepth:
		if kinds != 1 {
			return fault.Field(0, "", venue.ErrBadField)
		}
		return d.finish(m, bookDepth(prev))
	case venue.KindTrade:
		if kinds != 2 || n != 4 {
			return fault.Field(0, "", venue.ErrBadField)
		}
		m.Bids, m.Asks = m.Bids[:0], m.Asks[:0]
		return nil
	case venue.KindBookTicker:
		if kinds != 1 || n != 4 || !d.ticker {
			return fault.Field(0, "", venue.ErrBadField)
		}
		m.Bids, m.Asks = m.Bids[:0], m.Asks[:0]
		return d.tickerDone(m)
	}
	// Another channel (spread, ohlc): its envelope only.
	*m = venue.Message{Bids: m.Bids[:0], Asks: m.Asks[:0], Trades: m.Trades[:0]}
	m.Kind, m.Stream, m.Inst, m.Symbol = venue.KindOther, prev, last, last
	return nil
}

// book collects the payload objects of a book or ticker message.
type book struct {
	snap, upd    bool // "as"/"bs" seen; "a"/"b" seen
	haveCS       bool
	cs           uint32
	pfrac, qfrac int
	levels       int
	ts           int64 // latest level time, ns
	ticker       bool  // "a"/"b" held ticker sides, not level lists
	tickerHave   uint8 // 1 ask, 2 bid
}

// object reads one payload object: book levels ("as", "bs", "a", "b"), the checksum
// ("c"), or a ticker's fields.
func (d *book) object(s *venue.Scanner, m *venue.Message) error {
	s.I++ // '{'
	if s.Close('}') {
		return nil
	}
	for {
		key, ok := s.Key()
		if !ok {
			return s.Fail("", venue.ErrSyntax)
		}
		var err error
		switch string(key) {
		case "as", "bs", "a", "b":
			if s.Peek() != '[' {
				return s.Fail(string(key), venue.ErrBadField)
			}
			// A ticker's "a"/"b" is [price, whole lot volume, lot volume]; a book's a
			// list of levels: told apart by the first element.
			if len(key) == 1 && tickerArray(s) {
				d.ticker = true
				err = d.tickerSide(s, m, key[0] == 'b')
				break
			}
			if len(key) == 2 {
				d.snap = true
			} else {
				d.upd = true
			}
			if key[0] == 'a' {
				m.Asks, err = d.levelList(s, m.Asks, m.Scale, string(key))
			} else {
				m.Bids, err = d.levelList(s, m.Bids, m.Scale, string(key))
			}
		case "c":
			if s.Peek() == '[' { // a ticker's last trade
				if !s.Skip() {
					return s.Fail("c", venue.ErrSyntax)
				}
				break
			}
			v, ok := s.QuotedInt()
			if !ok || v > math.MaxUint32 || d.haveCS {
				return s.Fail("c", venue.ErrBadField)
			}
			d.cs, d.haveCS = uint32(v), true
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
			return s.Fail("", venue.ErrSyntax)
		}
		if !more {
			return nil
		}
	}
}

// tickerArray reports whether the array at s is a ticker side (its first element a
// string followed by a number) rather than a list of levels.
func tickerArray(s *venue.Scanner) bool {
	t := venue.Scanner{B: s.B, I: s.I + 1}
	if t.Peek() != '"' {
		return false
	}
	if _, _, ok := t.Str(); !ok || !t.Expect(',') {
		return false
	}
	c := t.Peek()
	return c >= '0' && c <= '9'
}

// levelList reads [["price","volume","timestamp"(,"r")],...] into dst.
func (d *book) levelList(s *venue.Scanner, dst []venue.Level, sc venue.Scale, field string) ([]venue.Level, error) {
	s.I++ // '['
	if s.Close(']') {
		return dst, nil
	}
	for {
		if !s.Expect('[') {
			return dst, s.Fail(field, venue.ErrBadField)
		}
		p, pf, ok := s.Decimal(sc.Price)
		if !ok || p <= 0 || !s.Expect(',') {
			return dst, s.Fail(field, venue.ErrBadField)
		}
		q, qf, ok := s.Decimal(sc.Qty)
		if !ok || !s.Expect(',') {
			return dst, s.Fail(field, venue.ErrBadField)
		}
		ts, _, ok := s.Decimal(9) // seconds with microseconds, to ns
		if !ok || ts <= 0 {
			return dst, s.Fail(field, venue.ErrBadField)
		}
		more, ok := s.More(']')
		if !ok {
			return dst, s.Fail(field, venue.ErrSyntax)
		}
		if more {
			// The update type: "r" marks a republished level (it came back into the
			// subscribed range); it applies like any other.
			raw, _, ok := s.Str()
			if !ok || string(raw) != "r" || !s.Expect(']') {
				return dst, s.Fail(field, venue.ErrBadField)
			}
		}
		dst = append(dst, venue.Level{Price: p, Qty: q})
		d.pfrac, d.qfrac, d.levels, d.ts = max(d.pfrac, pf), max(d.qfrac, qf), d.levels+1, max(d.ts, ts)
		more, ok = s.More(']')
		if !ok {
			return dst, s.Fail(field, venue.ErrSyntax)
		}
		if !more {
			return dst, nil
		}
	}
}

// finish checks a book message as a whole and fills m.
func (d *book) finish(m *venue.Message, depth int) error {
	switch {
	case d.ticker || (d.snap && d.upd) || (!d.snap && !d.upd):
		return fault.Field(0, "", venue.ErrBadField)
	case d.snap && d.haveCS:
		return fault.Field(0, "c", venue.ErrBadField) // snapshots carry no checksum
	case d.upd && !d.haveCS:
		return fault.Field(0, "c", venue.ErrMissingField)
	case depth == 0:
		return fault.Field(0, "channelName", venue.ErrBadField)
	}
	m.Snapshot, m.Depth = d.snap, depth
	m.Checksum, m.HasChecksum = d.cs, d.haveCS
	// An update's time is its latest level's. A snapshot has none: its levels carry the
	// times they last changed, hours ago for a quiet far level.
	if d.upd {
		m.ExchNs = d.ts
	}
	if d.levels > 0 {
		m.Wire = venue.Wire{PriceFrac: int8(d.pfrac), QtyFrac: int8(d.qfrac), Known: true}
	}
	return nil
}

// tickerSide reads a ticker's "a" or "b": [price, whole lot volume, lot volume].
func (d *book) tickerSide(s *venue.Scanner, m *venue.Message, bid bool) error {
	field := "a"
	if bid {
		field = "b"
	}
	s.I++ // '['
	p, _, ok := s.Decimal(m.Scale.Price)
	if !ok || !s.Expect(',') {
		return s.Fail(field, venue.ErrBadField)
	}
	if _, ok := s.Int(); !ok || !s.Expect(',') {
		return s.Fail(field, venue.ErrBadField)
	}
	q, _, ok := s.Decimal(m.Scale.Qty)
	if !ok || !s.Expect(']') {
		return s.Fail(field, venue.ErrBadField)
	}
	if bid {
		m.BidPrice, m.BidQty = p, q
		d.tickerHave |= 2
	} else {
		m.AskPrice, m.AskQty = p, q
		d.tickerHave |= 1
	}
	return nil
}

// tickerDone checks a ticker had both sides. Kraken's ticker carries no time.
func (d *book) tickerDone(m *venue.Message) error {
	if d.snap || d.upd || d.haveCS {
		return fault.Field(0, "", venue.ErrBadField)
	}
	if d.tickerHave != 3 {
		f := "a"
		if d.tickerHave&2 == 0 {
			f = "b"
		}
		return fault.Field(0, f, venue.ErrMissingField)
	}
	return nil
}

// trades reads a trade list: [["price","volume","time","b"|"s","l"|"m","misc"],...].
func trades(s *venue.Scanner, m *venue.Message) error {
	s.I++ // '['
	if s.Close(']') {
		return s.Fail("trade", venue.ErrMissingField)
	}
	for {
		if !s.Expect('[') {
			return s.Fail("trade", venue.ErrBadField)
		}
		var t venue.Trade
		var ok bool
		if t.Price, _, ok = s.Decimal(m.Scale.Price); !ok || t.Price <= 0 || !s.Expect(',') {
			return s.Fail("price", venue.ErrBadField)
		}
		if t.Qty, _, ok = s.Decimal(m.Scale.Qty); !ok || t.Qty <= 0 || !s.Expect(',') {
			return s.Fail("volume", venue.ErrBadField)
		}
		if t.TxNs, _, ok = s.Decimal(9); !ok || t.TxNs <= 0 || !s.Expect(',') {
			return s.Fail("time", venue.ErrBadField)
		}
		side, _, ok := s.Str()
		switch {
		case ok && string(side) == "b":
		case ok && string(side) == "s":
			t.BuyerMaker = true // the taker sold
		default:
			return s.Fail("side", venue.ErrBadField)
		}
		// The order type and the miscellaneous field (and anything Kraken appends):
		// checked and passed over.
		for {
			more, ok := s.More(']')
			if !ok {
				return s.Fail("trade", venue.ErrSyntax)
			}
			if !more {
				break
			}
			if !s.Skip() {
				return s.Fail("trade", venue.ErrSyntax)
			}
		}
		m.Trades = append(m.Trades, t)
		m.ExchNs = max(m.ExchNs, t.TxNs)
		more, ok := s.More(']')
		if !ok {
			return s.Fail("trade", venue.ErrSyntax)
		}
		if !more {
			return nil
		}
	}
}
