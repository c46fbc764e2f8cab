package binance

import (
	"bytes"

	"github.com/chronicle/chronicle/fault"
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/venue"
)

// The refinery's decoder: one pass over a combined-stream message that reads every field
// the message kind has. Keys that mean different things in different messages ("a" is an
// aggregate trade id, an ask price or the ask levels; "b" a bid price or the bid levels)
// are told apart by the JSON type of their value, so the pass needs no look-ahead for the
// event type, which Binance does not always send first. No allocation on success.

// fields seen in the data object
const (
	fE uint32 = 1 << iota
	fT
	fS
	fFirst // U
	fLast  // u
	fPrev  // pu
	fTradeID
	fAggID
	fPrice
	fQty
	fFirstTrade
	fLastTrade
	fMaker
	fBidLevels
	fAskLevels
	fBidPrice
	fBidQty
	fAskPrice
	fAskQty
	fKind     // "e"
	fBidOrder // a numeric "b": a trade's buyer order id
)

var fieldNames = [...]string{"E", "T", "s", "U", "u", "pu", "t", "a", "p", "q", "f", "l", "m", "b", "a", "b", "B", "a", "A", "e"}

// required fields per kind, before the venue's own exceptions
func (v Venue) required(k venue.Kind) uint32 {
	switch k {
	case venue.KindDepth:
		r := fE | fS | fFirst | fLast | fBidLevels | fAskLevels
		if !v.m.spot {
			r |= fPrev
		}
		return r
	case venue.KindTrade:
		return fE | fT | fS | fTradeID | fPrice | fQty | fMaker
	case venue.KindAggTrade:
		return fE | fT | fS | fAggID | fPrice | fQty | fFirstTrade | fLastTrade | fMaker
	case venue.KindBookTicker:
		r := fS | fLast | fBidPrice | fBidQty | fAskPrice | fAskQty
		if !v.m.spot { // spot tickers carry neither the event type nor a time
			r |= fE | fKind
		}
		return r
	}
	return 0
}

// Decode decodes a whole combined-stream message into m: the one-pass fast path for the
// compact messages Binance sends (fast.go), and the general scanner below for anything
// else, which accepts or refuses exactly what the fast path would have, and says why.
func (v Venue) Decode(msg []byte, m *venue.Message) error {
	*m = venue.Message{Bids: m.Bids[:0], Asks: m.Asks[:0]}
	var d dataScan
	if !fastDecode(msg, m, &d, v.m.shapes) {
		*m = venue.Message{Bids: m.Bids[:0], Asks: m.Asks[:0]}
		d = dataScan{}
		if err := slowDecode(msg, m, &d); err != nil {
			return err
		}
	}
	return v.finish(m, &d)
}

// dataScan is what a pass over a message found, before the rules of its kind are applied.
type dataScan struct {
	have    uint32 // fields seen (f* bits)
	kindE   venue.Kind
	ids     dataIDs
	sawData bool
	dataOff int // offset of the data object, for errors about the message as a whole
}

// slowDecode is the general pass: any JSON spacing and member order, every value checked
// against the whole grammar, errors that name the field and offset.
func slowDecode(msg []byte, m *venue.Message, d *dataScan) error {
	s := scanner{b: msg}
	err := s.members(func(key []byte) (bool, error) {
		if bytes.IndexByte(key, '\\') >= 0 {
			return false, s.fail(string(key), venue.ErrBadField) // Binance never escapes keys
		}
		switch {
		case bytes.Equal(key, keyStream):
			raw, esc, ok := s.str()
			if !ok || esc || len(raw) == 0 || m.Stream != nil {
				return false, s.fail("stream", venue.ErrBadField)
			}
			m.Stream = raw
		case bytes.Equal(key, keyData):
			if s.peek() != '{' || d.sawData {
				return false, s.fail("data", venue.ErrBadField)
			}
			d.sawData, d.dataOff = true, s.i
			var err error
			d.have, d.kindE, err = decodeData(&s, m, &d.ids)
			if err != nil {
				return false, err
			}
		default:
			return false, s.other(key)
		}
		return false, nil
	})
	return s.whole(err)
}

// finish applies the rules of the message's kind to what a pass found.
func (v Venue) finish(m *venue.Message, d *dataScan) error {
	if m.Stream == nil || !d.sawData {
		return fault.Field(0, "", venue.ErrNotEnvelope)
	}
	have, kindE, ids, dataOff := d.have, d.kindE, &d.ids, d.dataOff
	m.Kind = kindOfStream(m.Stream)
	if m.Kind == venue.KindOther {
		// A stream Chronicle does not refine (kline, markPrice...).
		*m = venue.Message{Event: venue.Event{Stream: m.Stream, Kind: venue.KindOther}, Bids: m.Bids[:0], Asks: m.Asks[:0]}
		return nil
	}
	if have&fKind != 0 && kindE != m.Kind {
		return fault.Field(dataOff, "e", venue.ErrBadField)
	}
	if have&fBidOrder != 0 && (m.Kind == venue.KindDepth || m.Kind == venue.KindBookTicker) {
		return fault.Field(dataOff, "b", venue.ErrBadField) // a number where levels or a price belong
	}
	if missing := v.required(m.Kind) &^ have; missing != 0 {
		return fault.Field(dataOff, fieldNames[lowBit(missing)], venue.ErrMissingField)
	}
	bad := func(f string) error { return fault.Field(dataOff, f, venue.ErrBadField) }
	switch m.Kind {
	case venue.KindDepth, venue.KindBookTicker:
		m.ID = ids.u
	case venue.KindTrade:
		m.ID = ids.t
	case venue.KindAggTrade:
		m.ID = ids.a
	}
	// Keep the fields of the message's kind only (the Message contract).
	switch m.Kind {
	case venue.KindDepth:
		switch {
		case m.First > m.ID:
			return bad("U")
		case m.Prev > m.ID:
			return bad("pu")
		}
		if v.m.spot {
			m.Prev = 0
		}
		m.Price, m.Qty, m.BuyerMaker, m.FirstTrade, m.LastTrade = 0, 0, false, 0, 0
		m.BidPrice, m.BidQty, m.AskPrice, m.AskQty = 0, 0, 0, 0
	case venue.KindTrade, venue.KindAggTrade:
		switch {
		case m.Price <= 0:
			return bad("p")
		case m.Qty <= 0:
			return bad("q")
		}
		if m.Kind == venue.KindAggTrade {
			if m.FirstTrade > m.LastTrade {
				return bad("f")
			}
		} else {
			m.FirstTrade, m.LastTrade = 0, 0
		}
		m.First, m.Prev, m.Bids, m.Asks = 0, 0, m.Bids[:0], m.Asks[:0]
		m.BidPrice, m.BidQty, m.AskPrice, m.AskQty = 0, 0, 0, 0
	case venue.KindBookTicker:
		switch {
		case m.BidPrice < 0:
			return bad("b")
		case m.BidQty < 0:
			return bad("B")
		case m.AskPrice < 0:
			return bad("a")
		case m.AskQty < 0:
			return bad("A")
		}
		m.First, m.Prev, m.Bids, m.Asks = 0, 0, m.Bids[:0], m.Asks[:0]
		m.Price, m.Qty, m.BuyerMaker, m.FirstTrade, m.LastTrade = 0, 0, false, 0, 0
	}
	return nil
}

func lowBit(x uint32) int {
	for i := 0; i < 32; i++ {
		if x&(1<<i) != 0 {
			return i
		}
	}
	return 0
}

// dataIDs keeps the id fields apart until the kind is known.
type dataIDs struct{ u, t, a int64 }

// decodeData walks the data object, storing every known field by its value's type.
func decodeData(s *scanner, m *venue.Message, ids *dataIDs) (have uint32, kindE venue.Kind, err error) {
	err = s.members(func(key []byte) (bool, error) {
		if bytes.IndexByte(key, '\\') >= 0 {
			return false, s.fail(string(key), venue.ErrBadField) // Binance never escapes keys
		}
		if len(key) > 2 {
			return false, s.other(key)
		}
		c := s.peek()
		switch string(key) {
		case "e":
			raw, esc, ok := s.str()
			if !ok || esc {
				return false, s.fail("e", venue.ErrBadField)
			}
			kindE = kindOf(raw)
			have |= fKind
		case "E", "T":
			v, ok := s.int()
			if !ok || v <= 0 || v > maxMillis {
				return false, s.fail(string(key), venue.ErrBadField)
			}
			if key[0] == 'E' {
				m.ExchNs, have = v*1e6, have|fE
			} else {
				m.TxNs, have = v*1e6, have|fT
			}
		case "s":
			raw, esc, ok := s.str()
			if !ok || esc || len(raw) == 0 {
				return false, s.fail("s", venue.ErrBadField)
			}
			m.Symbol, have = raw, have|fS
		case "U", "u", "pu", "t", "f", "l":
			v, ok := s.int()
			if !ok || v < 0 {
				return false, s.fail(string(key), venue.ErrBadField)
			}
			switch string(key) {
			case "U":
				m.First, have = v, have|fFirst
			case "u":
				ids.u, have = v, have|fLast
			case "pu":
				m.Prev, have = v, have|fPrev
			case "t":
				ids.t, have = v, have|fTradeID
			case "f":
				m.FirstTrade, have = v, have|fFirstTrade
			case "l":
				m.LastTrade, have = v, have|fLastTrade
			}
		case "a", "b":
			ask := key[0] == 'a'
			switch {
			case c == '[':
				var err error
				// A repeated key replaces the list, as JSON decoders do.
				if ask {
					m.Asks, err = levels(s, m.Asks[:0], "a")
					have |= fAskLevels
				} else {
					m.Bids, err = levels(s, m.Bids[:0], "b")
					have |= fBidLevels
				}
				if err != nil {
					return false, err
				}
			case c == '"':
				v, err := decimal(s, string(key))
				if err != nil {
					return false, err
				}
				if ask {
					m.AskPrice, have = v, have|fAskPrice
				} else {
					m.BidPrice, have = v, have|fBidPrice
				}
			case ask && (c == '-' || c >= '0' && c <= '9'):
				v, ok := s.int()
				if !ok || v < 0 {
					return false, s.fail("a", venue.ErrBadField)
				}
				ids.a, have = v, have|fAggID
			case c == '-' || c >= '0' && c <= '9':
				// An order id (older spot trades carried buyer and seller order ids).
				if !s.number() {
					return false, s.fail("b", venue.ErrBadField)
				}
				have |= fBidOrder
			default:
				return false, s.fail(string(key), venue.ErrBadField)
			}
		case "B", "A", "p", "q":
			v, err := decimal(s, string(key))
			if err != nil {
				return false, err
			}
			switch key[0] {
			case 'B':
				m.BidQty, have = v, have|fBidQty
			case 'A':
				m.AskQty, have = v, have|fAskQty
			case 'p':
				m.Price, have = v, have|fPrice
			case 'q':
				m.Qty, have = v, have|fQty
			}
		case "m":
			v, ok := s.boolean()
			if !ok {
				return false, s.fail("m", venue.ErrBadField)
			}
			m.BuyerMaker, have = v, have|fMaker
		default:
			return false, s.other(key)
		}
		return false, nil
	})
	return have, kindE, err
}

// maxMillis bounds exchange timestamps (2262-04-11) so that ms -> ns cannot overflow.
const maxMillis = (1<<63 - 1) / 1_000_000

// decimal reads a quoted exact decimal at the Binance scale.
func decimal(s *scanner, field string) (int64, error) {
	s.ws()
	if v, next, ok := quickDecimal(s.b, s.i); ok {
		s.i = next
		return v, nil
	}
	start := s.i
	raw, esc, ok := s.str()
	if !ok || esc || !plainDecimal(raw) {
		s.i = start
		return 0, s.fail(field, venue.ErrBadField)
	}
	v, err := format.ParseDecimal(raw, Decimals)
	if err != nil {
		s.i = start
		return 0, s.fail(field, venue.ErrBadField)
	}
	return v, nil
}

// plainDecimal reports -?[0-9]+(\.[0-9]+)?: how Binance writes prices and sizes.
func plainDecimal(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 0 {
		return false
	}
	if i == len(b) {
		return true
	}
	if b[i] != '.' || i+1 == len(b) {
		return false
	}
	for _, c := range b[i+1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8}

// quickDecimal is the common case of decimal in one pass: at b[i] a quote, digits, at
// most one '.', at most Decimals fraction digits, at most 18 digits once scaled (so no
// overflow is possible), a closing quote. Anything else (a sign, exponent, escape, extra
// zeros) returns ok=false, and the caller takes the general path, which accepts or
// rejects exactly as format.ParseDecimal does.
func quickDecimal(b []byte, i int) (v int64, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, i, false
	}
	i++
	digits, frac := 0, -1
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			v = v*10 + int64(c-'0')
			digits++
			if frac >= 0 {
				frac++
			}
		case c == '.' && frac < 0 && digits > 0:
			frac = 0
		case c == '"':
			if frac < 0 {
				frac = 0
			} else if frac == 0 {
				return 0, i, false // "1." is not a decimal
			}
			// 18 digits after scaling always fit an int64.
			if digits == 0 || frac > Decimals || digits+Decimals-frac > 18 {
				return 0, i, false
			}
			return v * pow10[Decimals-frac], i + 1, true
		default:
			return 0, i, false
		}
	}
	return 0, i, false
}

// levels reads [["price","qty"],...] (extra elements in a level are checked and
// skipped) into dst.
func levels(s *scanner, dst []venue.Level, field string) ([]venue.Level, error) {
	if !s.expect('[') {
		return dst, s.fail(field, venue.ErrBadField)
	}
	if s.peek() == ']' {
		s.i++
		return dst, nil
	}
	for {
		// The compact form Binance sends, ["2681.59","7.118"], in one pass; anything
		// else (spaces, extra elements, unusual numbers) takes the general path.
		if p, q, next, ok := quickLevel(s.b, s.i); ok {
			s.i = next
			dst = append(dst, venue.Level{Price: p, Qty: q})
		} else {
			if !s.expect('[') {
				return dst, s.fail(field, venue.ErrBadField)
			}
			p, err := decimal(s, field)
			if err != nil {
				return dst, err
			}
			if !s.expect(',') {
				return dst, s.fail(field, venue.ErrBadField)
			}
			q, err := decimal(s, field)
			if err != nil {
				return dst, err
			}
			if p <= 0 || q < 0 {
				return dst, s.fail(field, venue.ErrBadField)
			}
			for s.peek() == ',' {
				s.i++
				if !s.value(2) {
					return dst, s.fail(field, venue.ErrSyntax)
				}
			}
			if !s.expect(']') {
				return dst, s.fail(field, venue.ErrBadField)
			}
			dst = append(dst, venue.Level{Price: p, Qty: q})
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return dst, nil
		default:
			return dst, s.fail(field, venue.ErrSyntax)
		}
	}
}

// quickLevel reads a compact level `["price","qty"]` at b[i]: ok=false when the bytes
// there are anything else, or the price is not positive.
func quickLevel(b []byte, i int) (p, q int64, next int, ok bool) {
	if i+1 >= len(b) || b[i] != '[' {
		return 0, 0, i, false
	}
	p, i, ok = quickDecimal(b, i+1)
	if !ok || p <= 0 || i >= len(b) || b[i] != ',' {
		return 0, 0, i, false
	}
	q, i, ok = quickDecimal(b, i+1)
	if !ok || i >= len(b) || b[i] != ']' {
		return 0, 0, i, false
	}
	return p, q, i + 1, true
}

// DecodeSnapshot decodes a whole REST depth snapshot body. An error body
// ({"code":-1121,"msg":...}) is venue.ErrSnapshotError.
func (v Venue) DecodeSnapshot(body []byte, snap *venue.BookSnapshot) error {
	*snap = venue.BookSnapshot{Bids: snap.Bids[:0], Asks: snap.Asks[:0]}
	s := scanner{b: body}
	var haveID, haveBids, haveAsks, isErr bool
	err := s.members(func(key []byte) (bool, error) {
		var err error
		switch string(key) {
		case "lastUpdateId":
			snap.LastUpdateID, err = lastUpdateID(&s)
			haveID = true
		case "E":
			v, ok := s.int()
			if !ok || v <= 0 || v > maxMillis {
				return false, s.fail("E", venue.ErrBadField)
			}
			snap.ExchNs = v * 1e6
		case "symbol":
			raw, esc, ok := s.str()
			if !ok || esc || !validSymbol(string(raw)) {
				return false, s.fail("symbol", venue.ErrBadField)
			}
			snap.Symbol = string(raw)
		case "bids":
			snap.Bids, err = levels(&s, snap.Bids[:0], "bids")
			haveBids = true
		case "asks":
			snap.Asks, err = levels(&s, snap.Asks[:0], "asks")
			haveAsks = true
		case "code":
			isErr = true
			fallthrough
		default:
			return false, s.other(key)
		}
		return false, err
	})
	if err := s.whole(err); err != nil {
		return err
	}
	switch {
	case !haveID:
		return noUpdateID(isErr)
	case !haveBids:
		return fault.Field(0, "bids", venue.ErrMissingField)
	case !haveAsks:
		return fault.Field(0, "asks", venue.ErrMissingField)
	}
	return nil
}
