package binance

import (
	"encoding/binary"

	"github.com/chronicle/chronicle/venue"
)

// Shapes: Binance writes each kind of message with the same members in the same order
// (one order per market). A shape is that order; the fast path checks each member's key
// with one eight-byte comparison (`,"s":` and the like) and reads its value by the field
// the shape says it is, with no key to scan, no dispatch on its letters and no duplicate
// to look for. A message that strays from the shape at any point is read again by the
// member loop of fast.go (and anything that one cannot read, by the general scanner).

// shapeOp says what a member's value is and where it goes.
type shapeOp uint8

const (
	opEvent      shapeOp = iota // "e": the event type of the stream's kind
	opExch                      // "E": event time, ms
	opTx                        // "T": transaction time, ms
	opSymbol                    // "s"
	opFirst                     // "U"
	opLast                      // "u"
	opPrev                      // "pu"
	opTradeID                   // "t"
	opAggID                     // "a" (aggregated trade id)
	opFirstTrade                // "f"
	opLastTrade                 // "l"
	opPrice                     // "p"
	opQty                       // "q"
	opBidPrice                  // "b" (ticker)
	opBidQty                    // "B"
	opAskPrice                  // "a" (ticker)
	opAskQty                    // "A"
	opMaker                     // "m"
	opBids                      // "b" (levels)
	opAsks                      // "a" (levels)
	opSkipString                // a member the refinery does not read, a string ("ps", "X")
	opSkipBool                  // one that is true or false ("M")
)

// opField is the field bit each op sets (0: none).
var opField = [...]uint32{opEvent: fKind, opExch: fE, opTx: fT, opSymbol: fS, opFirst: fFirst, opLast: fLast, opPrev: fPrev,
	opTradeID: fTradeID, opAggID: fAggID, opFirstTrade: fFirstTrade, opLastTrade: fLastTrade, opPrice: fPrice, opQty: fQty,
	opBidPrice: fBidPrice, opBidQty: fBidQty, opAskPrice: fAskPrice, opAskQty: fAskQty, opMaker: fMaker,
	opBids: fBidLevels, opAsks: fAskLevels, opSkipString: 0, opSkipBool: 0}

// shapeStep is one member: its key as it appears before the value (`"e":` first,
// `,"s":` after), packed for a masked eight-byte comparison, and its op.
type shapeStep struct {
	word, mask uint64
	n          int
	op         shapeOp
}

// kindShapes are a market's shapes by kind.
type kindShapes [venue.KindBookTicker + 1][]*shape

// shape is the member order of one kind of message.
type shape struct {
	steps []shapeStep
	have  uint32
}

// member is one entry of a shape's definition: a key and its op.
type member struct {
	key string
	op  shapeOp
}

func newShape(ms ...member) *shape {
	sh := &shape{}
	for i, m := range ms {
		lit := `,"` + m.key + `":`
		if i == 0 {
			lit = lit[1:]
		}
		if len(lit) > 8 {
			panic("binance: shape key too long: " + m.key)
		}
		var w [8]byte
		copy(w[:], lit)
		mask := ^uint64(0) >> (64 - 8*len(lit))
		sh.steps = append(sh.steps, shapeStep{word: binary.LittleEndian.Uint64(w[:]) & mask, mask: mask, n: len(lit), op: m.op})
		sh.have |= opField[m.op]
	}
	return sh
}

// The shapes of each market, by kind (checked against the captures by TestShapesCover).
var (
	futuresShapes = kindShapes{
		venue.KindDepth: {newShape(member{"e", opEvent}, member{"E", opExch}, member{"T", opTx}, member{"s", opSymbol},
			member{"U", opFirst}, member{"u", opLast}, member{"pu", opPrev}, member{"b", opBids}, member{"a", opAsks})},
		venue.KindTrade: {newShape(member{"e", opEvent}, member{"E", opExch}, member{"T", opTx}, member{"s", opSymbol},
			member{"t", opTradeID}, member{"p", opPrice}, member{"q", opQty}, member{"X", opSkipString}, member{"m", opMaker})},
		venue.KindAggTrade: {newShape(member{"e", opEvent}, member{"E", opExch}, member{"a", opAggID}, member{"s", opSymbol},
			member{"p", opPrice}, member{"q", opQty}, member{"f", opFirstTrade}, member{"l", opLastTrade}, member{"T", opTx},
			member{"m", opMaker})},
		venue.KindBookTicker: {newShape(member{"e", opEvent}, member{"u", opLast}, member{"s", opSymbol}, member{"b", opBidPrice},
			member{"B", opBidQty}, member{"a", opAskPrice}, member{"A", opAskQty}, member{"T", opTx}, member{"E", opExch})},
	}
	coinmShapes = kindShapes{
		venue.KindDepth: {newShape(member{"e", opEvent}, member{"E", opExch}, member{"T", opTx}, member{"s", opSymbol},
			member{"ps", opSkipString}, member{"U", opFirst}, member{"u", opLast}, member{"pu", opPrev}, member{"b", opBids},
			member{"a", opAsks})},
		venue.KindTrade:    futuresShapes[venue.KindTrade],
		venue.KindAggTrade: futuresShapes[venue.KindAggTrade],
		venue.KindBookTicker: {newShape(member{"u", opLast}, member{"e", opEvent}, member{"s", opSymbol}, member{"ps", opSkipString},
			member{"b", opBidPrice}, member{"B", opBidQty}, member{"a", opAskPrice}, member{"A", opAskQty}, member{"T", opTx},
			member{"E", opExch})},
	}
	spotShapes = kindShapes{
		venue.KindDepth: {newShape(member{"e", opEvent}, member{"E", opExch}, member{"s", opSymbol}, member{"U", opFirst},
			member{"u", opLast}, member{"b", opBids}, member{"a", opAsks})},
		venue.KindTrade: {newShape(member{"e", opEvent}, member{"E", opExch}, member{"s", opSymbol}, member{"t", opTradeID},
			member{"p", opPrice}, member{"q", opQty}, member{"T", opTx}, member{"m", opMaker}, member{"M", opSkipBool})},
		venue.KindAggTrade: {newShape(member{"e", opEvent}, member{"E", opExch}, member{"a", opAggID}, member{"s", opSymbol},
			member{"p", opPrice}, member{"q", opQty}, member{"f", opFirstTrade}, member{"l", opLastTrade}, member{"T", opTx},
			member{"m", opMaker}, member{"M", opSkipBool})},
		venue.KindBookTicker: {newShape(member{"u", opLast}, member{"s", opSymbol}, member{"b", opBidPrice}, member{"B", opBidQty},
			member{"a", opAskPrice}, member{"A", opAskQty})},
	}
)

// fastShape reads a data object from its first key by the shape sh; false when the message
// strays from it.
func fastShape(b []byte, i int, m *venue.Message, d *dataScan, sh *shape, kind venue.Kind) (int, bool) {
	le := binary.LittleEndian
	var v int64
	var raw []byte
	ok := true
	for k := range sh.steps {
		st := &sh.steps[k]
		if i+8 > len(b) || le.Uint64(b[i:])&st.mask != st.word {
			return i, false
		}
		i += st.n
		switch st.op {
		case opEvent:
			ev := eventName[kind]
			if ok = i+len(ev) <= len(b) && string(b[i:i+len(ev)]) == ev; ok {
				d.kindE, i = kind, i+len(ev)
			}
		case opExch, opTx:
			if v, i, ok = fastUint(b, i); ok && v > 0 && v <= maxMillis {
				if st.op == opExch {
					m.ExchNs = v * 1e6
				} else {
					m.TxNs = v * 1e6
				}
			} else {
				ok = false
			}
		case opSymbol:
			if raw, i, ok = fastString(b, i); ok && len(raw) > 0 {
				m.Symbol = raw
			} else {
				ok = false
			}
		case opFirst:
			m.First, i, ok = fastUint(b, i)
		case opLast:
			d.ids.u, i, ok = fastUint(b, i)
		case opPrev:
			m.Prev, i, ok = fastUint(b, i)
		case opTradeID:
			d.ids.t, i, ok = fastUint(b, i)
		case opAggID:
			d.ids.a, i, ok = fastUint(b, i)
		case opFirstTrade:
			m.FirstTrade, i, ok = fastUint(b, i)
		case opLastTrade:
			m.LastTrade, i, ok = fastUint(b, i)
		case opPrice:
			m.Price, i, ok = fastDecimal(b, i)
		case opQty:
			m.Qty, i, ok = fastDecimal(b, i)
		case opBidPrice:
			m.BidPrice, i, ok = fastDecimal(b, i)
		case opBidQty:
			m.BidQty, i, ok = fastDecimal(b, i)
		case opAskPrice:
			m.AskPrice, i, ok = fastDecimal(b, i)
		case opAskQty:
			m.AskQty, i, ok = fastDecimal(b, i)
		case opMaker, opSkipBool:
			var t bool
			switch {
			case i+4 <= len(b) && string(b[i:i+4]) == "true":
				t, i = true, i+4
			case i+5 <= len(b) && string(b[i:i+5]) == "false":
				i += 5
			default:
				ok = false
			}
			if st.op == opMaker {
				m.BuyerMaker = t
			}
		case opBids, opAsks:
			if ok = i < len(b) && b[i] == '['; ok {
				if st.op == opBids {
					m.Bids, i, ok = fastLevels(b, i, m.Bids)
				} else {
					m.Asks, i, ok = fastLevels(b, i, m.Asks)
				}
			}
		case opSkipString:
			_, i, ok = fastString(b, i)
		}
		if !ok {
			return i, false
		}
	}
	if i >= len(b) || b[i] != '}' {
		return i, false
	}
	d.have = sh.have
	return i + 1, true
}
