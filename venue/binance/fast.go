package binance

import (
	"encoding/binary"
	"math/bits"

	"github.com/chronicle/chronicle/venue"
)

// The fast path of Decode: one pass over a message written the way Binance writes them
// (no spaces, the stream first, keys and strings without escapes, decimals in quotes),
// specialised to the kind its stream name announces: it reads only the keys that kind has,
// turns decimals straight into fixed point and skips the members it does not read (string,
// number and literal values) while checking their grammar. It builds no strings and calls
// no function values. On anything else (spaces, escapes, a repeated or unexpected key, a
// nested unknown value, an unusual number) it gives up and returns false, and Decode starts
// again with the general scanner, which decides and explains. So the fast path only ever
// accepts what the general one accepts, with the same fields, which FuzzFastPath checks.

// fastDecode reads msg into m and d; false means "not in the form this path reads".
func fastDecode(b []byte, m *venue.Message, d *dataScan, shapes *kindShapes) bool {
	const head = `{"stream":"`
	if len(b) < len(head)+16 || string(b[:len(head)]) != head {
		return false
	}
	i := len(head)
	start := i
	at := -1 // the first '@', which ends the symbol part
	for ; i < len(b); i++ {
		c := b[i]
		if c > '\\' {
			continue // lower-case letters and '_', most of a stream name
		}
		if c == '"' {
			break
		}
		if c == '\\' || c < 0x20 {
			return false
		}
		if c == '@' && at < 0 {
			at = i
		}
	}
	if i == start || i >= len(b) || at < 0 {
		return false
	}
	m.Stream = b[start:i:i]
	kind := kindNamedFast(b[at+1 : i])
	if kind == venue.KindOther {
		return false
	}
	const mid = `","data":{`
	if i+len(mid) > len(b) || string(b[i:i+len(mid)]) != mid {
		return false
	}
	i += len(mid) - 1
	d.sawData, d.dataOff = true, i
	i++
	if shapes != nil {
		for _, sh := range shapes[kind] {
			if j, ok := fastShape(b, i, m, d, sh, kind); ok {
				return j+1 == len(b) && b[j] == '}'
			}
			*m = venue.Message{Event: venue.Event{Stream: m.Stream}, Bids: m.Bids[:0], Asks: m.Asks[:0]}
			*d = dataScan{sawData: true, dataOff: d.dataOff}
		}
	}
	var ok bool
	switch kind {
	case venue.KindDepth:
		i, ok = fastDepth(b, i, m, d)
	default:
		i, ok = fastEvent(b, i, m, d, kind)
	}
	// The data object is closed; the envelope closes right after it, and nothing follows.
	return ok && i+1 == len(b) && b[i] == '}'
}

// kindNamedFast is kindOfStream given what follows the stream's first '@'.
func kindNamedFast(rest []byte) venue.Kind {
	for j, c := range rest {
		if c == '@' {
			rest = rest[:j]
			break
		}
	}
	return kindNamed(rest)
}

// key reads a member's key at b[i] (its opening quote) and the colon after it: the key's
// bytes and the offset of its value.
func key(b []byte, i int) (k []byte, next int, ok bool) {
	if i+4 <= len(b) && b[i] == '"' && b[i+2] == '"' && b[i+3] == ':' {
		if c := b[i+1]; c != '\\' && c != '"' && c >= 0x20 {
			return b[i+1 : i+2], i + 4, true // the one-letter keys of every message
		}
	}
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	i++
	start := i
	for ; i < len(b); i++ {
		c := b[i]
		if c == '"' {
			break
		}
		if c == '\\' || c < 0x20 {
			return nil, i, false
		}
	}
	if i+1 >= len(b) || b[i+1] != ':' {
		return nil, i, false
	}
	return b[start:i], i + 2, true
}

// after reads what follows a member's value: a comma and the next key (more=true), or the
// object's closing brace (next is then past it).
func after(b []byte, i int) (next int, more, ok bool) {
	if i < len(b) {
		switch b[i] {
		case ',':
			return i + 1, true, true
		case '}':
			return i + 1, false, true
		}
	}
	return i, false, false
}

// set marks field f seen; a repeated key is left to the general path (it replaces or
// refuses by rules of its own).
func set(d *dataScan, f uint32) bool {
	if d.have&f != 0 {
		return false
	}
	d.have |= f
	return true
}

// fastDepth reads a depth update's data object from its first key.
func fastDepth(b []byte, i int, m *venue.Message, d *dataScan) (int, bool) {
	for {
		k, j, ok := key(b, i)
		if !ok {
			return i, false
		}
		i = j
		switch len(k) {
		case 1:
			switch k[0] {
			case 'b', 'a':
				if i >= len(b) || b[i] != '[' {
					return i, false
				}
				if k[0] == 'b' {
					if !set(d, fBidLevels) {
						return i, false
					}
					m.Bids, i, ok = fastLevels(b, i, m.Bids)
				} else {
					if !set(d, fAskLevels) {
						return i, false
					}
					m.Asks, i, ok = fastLevels(b, i, m.Asks)
				}
			case 'E', 'T', 'U', 'u', 'e', 's':
				i, ok = fastCommon(b, i, k[0], m, d, venue.KindDepth)
			default:
				i, ok = fastOther(b, i, k)
			}
		case 2:
			if k[0] == 'p' && k[1] == 'u' {
				var v int64
				if v, i, ok = fastUint(b, i); ok && set(d, fPrev) {
					m.Prev = v
				} else {
					ok = false
				}
			} else {
				i, ok = fastOther(b, i, k)
			}
		default:
			i, ok = fastOther(b, i, k)
		}
		if !ok {
			return i, false
		}
		var more bool
		if i, more, ok = after(b, i); !ok {
			return i, false
		}
		if !more {
			return i, true
		}
	}
}

// fastEvent reads the data object of a trade, an aggregated trade or a book ticker.
func fastEvent(b []byte, i int, m *venue.Message, d *dataScan, kind venue.Kind) (int, bool) {
	for {
		k, j, ok := key(b, i)
		if !ok {
			return i, false
		}
		i = j
		if len(k) != 1 {
			if len(k) == 2 && isKnown2(k) {
				return i, false // "pu" on a trade: the general path judges
			}
			if i, ok = fastOther(b, i, k); !ok {
				return i, false
			}
		} else {
			var v int64
			switch c := k[0]; c {
			case 'E', 'T', 'e', 's':
				i, ok = fastCommon(b, i, c, m, d, kind)
			case 'p', 'q':
				if kind == venue.KindBookTicker {
					return i, false
				}
				f := fPrice
				if c == 'q' {
					f = fQty
				}
				if v, i, ok = fastDecimal(b, i); ok && set(d, f) {
					if c == 'p' {
						m.Price = v
					} else {
						m.Qty = v
					}
				} else {
					ok = false
				}
			case 'b', 'B', 'a', 'A':
				if kind == venue.KindBookTicker {
					var f uint32
					switch c {
					case 'b':
						f = fBidPrice
					case 'B':
						f = fBidQty
					case 'a':
						f = fAskPrice
					default:
						f = fAskQty
					}
					if v, i, ok = fastDecimal(b, i); ok && set(d, f) {
						switch c {
						case 'b':
							m.BidPrice = v
						case 'B':
							m.BidQty = v
						case 'a':
							m.AskPrice = v
						default:
							m.AskQty = v
						}
					} else {
						ok = false
					}
				} else if c == 'a' && kind == venue.KindAggTrade {
					if v, i, ok = fastUint(b, i); ok && set(d, fAggID) {
						d.ids.a = v
					} else {
						ok = false
					}
				} else if c == 'B' || c == 'A' {
					// A trade never has these; the general path reads them as prices.
					return i, false
				} else {
					return i, false // buyer or seller order ids on a trade: rare, general path
				}
			case 't':
				if kind != venue.KindTrade {
					return i, false
				}
				if v, i, ok = fastUint(b, i); ok && set(d, fTradeID) {
					d.ids.t = v
				} else {
					ok = false
				}
			case 'f', 'l':
				if kind != venue.KindAggTrade {
					return i, false
				}
				f := fFirstTrade
				if c == 'l' {
					f = fLastTrade
				}
				if v, i, ok = fastUint(b, i); ok && set(d, f) {
					if c == 'f' {
						m.FirstTrade = v
					} else {
						m.LastTrade = v
					}
				} else {
					ok = false
				}
			case 'm':
				if kind == venue.KindBookTicker || !set(d, fMaker) {
					return i, false
				}
				switch {
				case i+4 <= len(b) && string(b[i:i+4]) == "true":
					m.BuyerMaker, i = true, i+4
				case i+5 <= len(b) && string(b[i:i+5]) == "false":
					m.BuyerMaker, i = false, i+5
				default:
					return i, false
				}
			case 'u':
				if kind != venue.KindBookTicker {
					return i, false
				}
				if v, i, ok = fastUint(b, i); ok && set(d, fLast) {
					d.ids.u = v
				} else {
					ok = false
				}
			case 'U':
				return i, false
			default:
				i, ok = fastOther(b, i, k)
			}
			if !ok {
				return i, false
			}
		}
		var more bool
		if i, more, ok = after(b, i); !ok {
			return i, false
		}
		if !more {
			return i, true
		}
	}
}

// isKnown2 reports the two-letter keys the general path reads ("pu").
func isKnown2(k []byte) bool { return k[0] == 'p' && k[1] == 'u' }

// fastCommon reads the members every kind may have: E, T, e, s, and a depth update's U and u.
func fastCommon(b []byte, i int, c byte, m *venue.Message, d *dataScan, kind venue.Kind) (int, bool) {
	var v int64
	var ok bool
	switch c {
	case 'E', 'T':
		if v, i, ok = fastUint(b, i); !ok || v <= 0 || v > maxMillis {
			return i, false
		}
		if c == 'E' {
			if !set(d, fE) {
				return i, false
			}
			m.ExchNs = v * 1e6
		} else {
			if !set(d, fT) {
				return i, false
			}
			m.TxNs = v * 1e6
		}
	case 'U', 'u':
		if v, i, ok = fastUint(b, i); !ok {
			return i, false
		}
		if c == 'U' {
			if !set(d, fFirst) {
				return i, false
			}
			m.First = v
		} else {
			if !set(d, fLast) {
				return i, false
			}
			d.ids.u = v
		}
	case 'e', 's':
		if c == 'e' {
			if ev := eventName[kind]; i+len(ev) <= len(b) && string(b[i:i+len(ev)]) == ev {
				if !set(d, fKind) {
					return i, false
				}
				d.kindE = kind
				return i + len(ev), true
			}
		}
		raw, j, ok := fastString(b, i)
		if !ok {
			return i, false
		}
		i = j
		if c == 'e' {
			if !set(d, fKind) {
				return i, false
			}
			d.kindE = kindOf(raw)
		} else {
			if len(raw) == 0 || !set(d, fS) {
				return i, false
			}
			m.Symbol = raw
		}
	}
	return i, true
}

// eventName is each kind's event type as it appears in a message, quotes included.
// (KindOther never reaches the fast path; its entry matches no JSON value.)
var eventName = [...]string{venue.KindDepth: `"depthUpdate"`, venue.KindTrade: `"trade"`, venue.KindAggTrade: `"aggTrade"`,
	venue.KindBookTicker: `"bookTicker"`, venue.KindOther: "\x00"}

// fastString reads a string without escapes at b[i]: its bytes and the offset after it.
func fastString(b []byte, i int) (raw []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	i++
	start := i
	for ; i < len(b); i++ {
		c := b[i]
		if c == '"' {
			return b[start:i:i], i + 1, true
		}
		if c == '\\' || c < 0x20 {
			return nil, i, false
		}
	}
	return nil, i, false
}

// fastUint reads a non-negative integer of at most 18 digits without a leading zero that a
// comma or a closing brace ends (so no fraction, exponent or overflow is possible).
func fastUint(b []byte, i int) (v int64, next int, ok bool) {
	if i+16 <= len(b) {
		return uintSWAR(b, i)
	}
	start := i
	for ; i < len(b); i++ {
		c := b[i] - '0'
		if c > 9 {
			break
		}
		v = v*10 + int64(c)
	}
	n := i - start
	if n == 0 || n > 18 || (n > 1 && b[start] == '0') || i >= len(b) || (b[i] != ',' && b[i] != '}') {
		return 0, i, false
	}
	return v, i, true
}

// fastDecimal reads a quoted decimal at the Binance scale: quickDecimal's rules (digits, at
// most one point with digits on both sides, at most Decimals fraction digits, at most 18
// digits once scaled), written as two digit loops (which beat reading eight bytes at a time
// on prices and sizes of a few digits).
func fastDecimal(b []byte, i int) (v int64, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, i, false
	}
	i++
	start := i
	for ; i < len(b); i++ {
		c := b[i] - '0'
		if c > 9 {
			break
		}
		v = v*10 + int64(c)
	}
	n := i - start
	if n == 0 || n > 18-Decimals || i >= len(b) {
		return 0, i, false
	}
	if b[i] == '"' {
		return v * 1e8, i + 1, true
	}
	if b[i] != '.' {
		return 0, i, false
	}
	i++
	if d, ok := frac8(b, i); ok {
		return v*1e8 + d, i + 9, true
	}
	fs := i
	for ; i < len(b); i++ {
		c := b[i] - '0'
		if c > 9 {
			break
		}
		v = v*10 + int64(c)
	}
	f := i - fs
	if f == 0 || f > Decimals || i >= len(b) || b[i] != '"' {
		return 0, i, false
	}
	return v * pow10[Decimals-f], i + 1, true
}

// fastLevels reads a list of compact levels [["price","qty"],...] at b[i] into dst: both
// decimals of a level are read in this function's body (fastDecimal's rules), with digit
// loops, which beat reading eight bytes at a time on sizes of a few digits
// (BenchmarkLevelsAB).
func fastLevels(b []byte, i int, dst []venue.Level) ([]venue.Level, int, bool) {
	i++ // '['
	n := len(b)
	if i < n && b[i] == ']' {
		return dst, i + 1, true
	}
	le := binary.LittleEndian
	for {
		if i+2 > n || le.Uint16(b[i:]) != '['|'"'<<8 {
			return dst, i, false
		}
		i += 2
		var p, q int64
		s := i
		for ; i < n; i++ {
			c := b[i] - '0'
			if c > 9 {
				break
			}
			p = p*10 + int64(c)
		}
		if d := i - s; d == 0 || d > 18-Decimals || i >= n {
			return dst, i, false
		}
		f := 0
		if b[i] == '.' {
			i++
			if d, ok := frac8(b, i); ok {
				p, i, f = p*1e8+d, i+8, 8
			} else {
				s = i
				for ; i < n; i++ {
					c := b[i] - '0'
					if c > 9 {
						break
					}
					p = p*10 + int64(c)
				}
				if f = i - s; f == 0 || f > Decimals {
					return dst, i, false
				}
			}
		}
		p *= pow10[Decimals-f]
		if i+4 > n || le.Uint32(b[i:])&0xFFFFFF != '"'|','<<8|'"'<<16 || p <= 0 {
			return dst, i, false
		}
		i += 3
		s = i
		for ; i < n; i++ {
			c := b[i] - '0'
			if c > 9 {
				break
			}
			q = q*10 + int64(c)
		}
		if d := i - s; d == 0 || d > 18-Decimals || i >= n {
			return dst, i, false
		}
		f = 0
		if b[i] == '.' {
			i++
			if d, ok := frac8(b, i); ok {
				q, i, f = q*1e8+d, i+8, 8
			} else {
				s = i
				for ; i < n; i++ {
					c := b[i] - '0'
					if c > 9 {
						break
					}
					q = q*10 + int64(c)
				}
				if f = i - s; f == 0 || f > Decimals {
					return dst, i, false
				}
			}
		}
		q *= pow10[Decimals-f]
		if i+3 > n || le.Uint16(b[i:]) != '"'|']'<<8 {
			return dst, i, false
		}
		i += 2
		dst = append(dst, venue.Level{Price: p, Qty: q})
		switch b[i] {
		case ',':
			i++
		case ']':
			return dst, i + 1, true
		default:
			return dst, i, false
		}
	}
}

// fastOther passes over the value of a member the decoder does not read: a string without
// escapes, a number, true, false or null. The general path checks anything else.
func fastOther(b []byte, i int, k []byte) (int, bool) {
	if len(k) <= 2 && isKnown(k) {
		return i, false // a key the general path reads for another kind: it judges
	}
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		_, j, ok := fastString(b, i)
		return j, ok
	case c == '-' || c >= '0' && c <= '9':
		s := scanner{b: b, i: i}
		if !s.number() {
			return i, false
		}
		return s.i, true
	case c == 't':
		return i + 4, i+4 <= len(b) && string(b[i:i+4]) == "true"
	case c == 'f':
		return i + 5, i+5 <= len(b) && string(b[i:i+5]) == "false"
	case c == 'n':
		return i + 4, i+4 <= len(b) && string(b[i:i+4]) == "null"
	}
	return i, false
}

// isKnown reports the keys the general path reads in some kind of message.
func isKnown(k []byte) bool {
	if len(k) == 2 {
		return k[0] == 'p' && k[1] == 'u'
	}
	if len(k) == 1 {
		switch k[0] {
		case 'e', 'E', 'T', 's', 'U', 'u', 't', 'f', 'l', 'a', 'b', 'B', 'A', 'p', 'q', 'm':
			return true
		}
	}
	return false
}

// digits8 reads the decimal digits that open w (8 bytes): their value and how many (0-8).
// Bytes after the first non-digit do not matter.
func digits8(w []byte) (uint64, int) {
	x := binary.LittleEndian.Uint64(w)
	// A byte is a digit when its high nibble is 3 and stays 3 once 6 is added (a carry out
	// of a non-digit byte can only disturb the bytes after it).
	nd := (x&0xF0F0F0F0F0F0F0F0 ^ 0x3030303030303030) | ((x+0x0606060606060606)&0xF0F0F0F0F0F0F0F0 ^ 0x3030303030303030)
	n := bits.TrailingZeros64(nd) >> 3 // 8 when every byte is a digit
	// The digits less '0', shifted to the top so that the bytes after them become leading
	// zeros (a borrow from a non-digit byte only reaches the bytes after it); then pairs,
	// quads and halves are combined, the first byte being the most significant.
	return combine8((x - 0x3030303030303030) << (64 - 8*uint(n))), n
}

// uintSWAR is fastUint eight digits at a time, where 16 bytes are readable: ids and
// millisecond times have 10 to 13 digits, which a digit loop reads at a dependent multiply
// per digit.
func uintSWAR(b []byte, i int) (v int64, next int, ok bool) {
	if i+16 > len(b) {
		return 0, i, false
	}
	start := i
	d, n := digits8(b[i : i+8])
	v = int64(d)
	i += n
	if n == 8 {
		d, n = digits8(b[i : i+8])
		v = v*pow10[n] + int64(d)
		i += n
		if n == 8 {
			return 0, i, false
		}
	}
	n = i - start
	if n == 0 || (n > 1 && b[start] == '0') || (b[i] != ',' && b[i] != '}') {
		return 0, i, false
	}
	return v, i, true
}

// frac8 reads exactly eight digits at b[i] followed by a quote (spot's prices and sizes
// carry eight decimals): their value in one go.
func frac8(b []byte, i int) (int64, bool) {
	if i+9 > len(b) || b[i+8] != '"' {
		return 0, false
	}
	x := binary.LittleEndian.Uint64(b[i:])
	if (x&0xF0F0F0F0F0F0F0F0^0x3030303030303030)|((x+0x0606060606060606)&0xF0F0F0F0F0F0F0F0^0x3030303030303030) != 0 {
		return 0, false
	}
	return int64(combine8(x - 0x3030303030303030)), true
}

// combine8 is the value of eight digit values, one a byte, the first byte the most
// significant: pairs, quads and halves combined by three multiply-adds.
func combine8(d uint64) uint64 {
	d = (d*10 + d>>8) & 0x00FF00FF00FF00FF
	d = (d*100 + d>>16) & 0x0000FFFF0000FFFF
	return (d*10000 + d>>32) & 0x00000000FFFFFFFF
}
