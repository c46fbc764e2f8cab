package okx

import (
	"github.com/chronicle/chronicle/venue"
)

// The fast path of DecodeAt, for book messages written as OKX writes them: no spaces,
// {"arg":{"channel":"books","instId":"ID"},"action":"snapshot"|"update","data":[{"asks":
// [levels],"bids":[levels],"ts":"ms","checksum":N(,"seqId":N,"prevSeqId":N)}]}, each level
// ["price","size"(,"digits"...)]. One pass with no key lookups or general value scanning:
// structure is matched byte for byte and decimals go straight to fixed point
// (venue.Scanner.Decimal). On anything else (spaces, escapes, another key or key order, a
// repeated field, another channel) it gives up and returns false, and DecodeAt starts again
// with the general decoder, which decides and explains. So it only accepts what the general
// decoder accepts, with the same fields: FuzzFastPath checks it on anything,
// TestFastPathCapture on every message of the capture.

// fastBook decodes msg into m; false means "not in the form this path reads" (m is then
// to be decoded again from scratch).
func fastBook(b []byte, m *venue.Message, scales *venue.Scales) bool {
	const head = `{"arg":{"channel":"`
	if len(b) < 64 || string(b[:len(head)]) != head || string(b[len(b)-3:]) != "}]}" {
		return false
	}
	end := len(b) - 3 // the data object's closing brace
	i := len(head)
	cs := i
	for i < end && b[i] != '"' {
		i++
	}
	c, known := channelNamed(b[cs:i])
	if !known || c.kind != venue.KindDepth {
		return false
	}
	const mid = `","instId":"`
	if i+len(mid) > end || string(b[i:i+len(mid)]) != mid {
		return false
	}
	ch := b[cs:i:i]
	i += len(mid)
	is := i
	for i < end && instChar(b[i]) {
		i++
	}
	if i == is {
		return false
	}
	inst := b[is:i:i]
	const act = `"},"action":"`
	if i+len(act) > end || string(b[i:i+len(act)]) != act {
		return false
	}
	i += len(act)
	snap := false
	switch {
	case i+len(`update","data":[{"asks":[`) <= end && string(b[i:i+len(`update","data":[{"asks":[`)]) == `update","data":[{"asks":[`:
		i += len(`update","data":[{"asks":[`) - 1
	case i+len(`snapshot","data":[{"asks":[`) <= end && string(b[i:i+len(`snapshot","data":[{"asks":[`)]) == `snapshot","data":[{"asks":[`:
		i += len(`snapshot","data":[{"asks":[`) - 1
		snap = true
	default:
		return false
	}

	*m = venue.Message{Bids: m.Bids[:0], Asks: m.Asks[:0], Trades: m.Trades[:0]}
	m.Stream, m.Inst, m.Symbol = ch, inst, inst
	m.Kind, m.Snapshot, m.Depth = venue.KindDepth, snap, c.depth
	m.Wire = venue.Wire{PriceFrac: -1, QtyFrac: -1, Known: true}
	m.Scale = DefaultScale
	if scales != nil {
		m.Scale = scales.Of(inst)
	}
	s := venue.Scanner{B: b[:end], I: i}
	var ok bool
	if m.Asks, ok = fastLevels(&s, m.Asks, m.Scale); !ok {
		return false
	}
	const bids = `,"bids":[`
	if s.I+len(bids) > end || string(b[s.I:s.I+len(bids)]) != bids {
		return false
	}
	s.I += len(bids) - 1
	if m.Bids, ok = fastLevels(&s, m.Bids, m.Scale); !ok {
		return false
	}
	const ts = `,"ts":"`
	if s.I+len(ts) > end || string(b[s.I:s.I+len(ts)]) != ts {
		return false
	}
	s.I += len(ts) - 1
	v, ok := s.QuotedInt()
	if !ok || v <= 0 || v > maxMillis {
		return false
	}
	m.ExchNs = v * 1e6
	// ,"checksum":N then, in any order, ,"seqId":N,"prevSeqId":N; each at most once.
	var have uint8 // 1 checksum, 2 seqId, 4 prevSeqId
	for s.I < end {
		if b[s.I] != ',' || s.I+2 >= end || b[s.I+1] != '"' {
			return false
		}
		k := s.I + 2
		for k < end && b[k] != '"' {
			k++
		}
		if k+1 >= end || b[k+1] != ':' {
			return false
		}
		key := b[s.I+2 : k]
		s.I = k + 2
		v, ok := s.Int()
		if !ok {
			return false
		}
		switch string(key) {
		case "checksum":
			if have&1 != 0 || v < -1<<31 || v > 1<<31-1 {
				return false
			}
			m.Checksum, m.HasChecksum = uint32(int32(v)), v != 0
			have |= 1
		case "seqId":
			if have&2 != 0 || v < -1 {
				return false
			}
			m.ID = v
			have |= 2
		case "prevSeqId":
			if have&4 != 0 || v < -1 {
				return false
			}
			m.Prev = v
			have |= 4
		default:
			return false
		}
	}
	// decodeBook's checks of the ids.
	haveSeq, havePrev := have&2 != 0, have&4 != 0
	return haveSeq == havePrev && (!haveSeq || m.ID >= 0 && (snap || m.Prev >= 0))
}

// instChar: the characters of instrument ids as OKX writes them (BTC-USDT, BTC-USD-220527).
func instChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c >= 'a' && c <= 'z' || c == '_'
}

// fastLevels reads a level list from s (at its '[') and passes its closing ']':
// ["price","size"] then any further elements written as quoted digits ("0","2"), no
// spaces. The checks on each number are levels'.
func fastLevels(s *venue.Scanner, dst []venue.Level, sc venue.Scale) ([]venue.Level, bool) {
	b := s.B
	dst = dst[:0]
	s.I++ // '['
	if s.I < len(b) && b[s.I] == ']' {
		s.I++
		return dst, true
	}
	for {
		if s.I+1 >= len(b) || b[s.I] != '[' || b[s.I+1] != '"' {
			return dst, false
		}
		s.I++
		p, _, ok := s.Decimal(sc.Price)
		if !ok || p <= 0 || s.I+1 >= len(b) || b[s.I] != ',' || b[s.I+1] != '"' {
			return dst, false
		}
		s.I++
		q, _, ok := s.Decimal(sc.Qty)
		if !ok {
			return dst, false
		}
		// The further elements (liquidated orders, orders): quoted digits.
		for s.I+1 < len(b) && b[s.I] == ',' && b[s.I+1] == '"' {
			j := s.I + 2
			for j < len(b) && b[j]-'0' < 10 {
				j++
			}
			if j >= len(b) || b[j] != '"' {
				return dst, false
			}
			s.I = j + 1
		}
		if s.I+1 >= len(b) || b[s.I] != ']' {
			return dst, false
		}
		dst = append(dst, venue.Level{Price: p, Qty: q})
		switch b[s.I+1] {
		case ',':
			s.I += 2
		case ']':
			s.I += 2
			return dst, true
		default:
			return dst, false
		}
	}
}
