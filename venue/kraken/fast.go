package kraken

import (
	"math"

	"github.com/chronicle/chronicle/venue"
)

// The fast path of DecodeAt, for book messages (nearly all of a book capture's bytes)
// written as Kraken writes them: no spaces, [channelID,{"a"|"b"|"as"|"bs":[levels],...
// (,"c":"checksum")}(,{...}),"book-N","PAIR"], each level ["price","volume","time"
// (,"r")]. One pass with no key lookups or general value scanning: structure is matched
// byte for byte and decimals go straight to fixed point (venue.Scanner.Decimal). On
// anything else (spaces, another key, an empty list, a repeated checksum, a snapshot mixed
// with an update, another channel) it gives up and returns false, and
// DecodeAt starts again with the general decoder, which decides and explains. So it only
// accepts what the general decoder accepts, with the same fields: FuzzFastPath checks it
// on anything, TestFastPathCapture on every message of the capture.

// fastBook decodes msg into m; false means "not in the form this path reads" (m is then
// to be decoded again from scratch).
func fastBook(b []byte, m *venue.Message, scales *venue.Scales) bool {
	// The envelope's end: ,"book-N","PAIR"]
	n := len(b)
	if n < 16 || b[0] != '[' || b[n-1] != ']' || b[n-2] != '"' {
		return false
	}
	pe := n - 2 // the pair's closing quote
	ps := pe - 1
	for ps > 0 && b[ps] != '"' {
		ps--
	}
	ne := ps - 2 // the channel name's closing quote
	if ne < 2 || b[ps-1] != ',' || b[ne] != '"' {
		return false
	}
	ns := ne - 1
	for ns > 0 && b[ns] != '"' {
		ns--
	}
	pair, name := b[ps+1:pe:pe], b[ns+1:ne:ne]
	depth := bookDepth(name)
	if depth == 0 || ns < 2 || b[ns-1] != ',' || b[ns-2] != '}' || !validPair(string(pair)) {
		return false
	}
	end := ns - 1 // the payloads end before the comma of the names

	// [channelID, : a JSON integer without sign or leading zeros, as Scanner.Int reads.
	i := 1
	for i < end && b[i]-'0' < 10 {
		i++
	}
	if i == 1 || i-1 > 18 || b[1] == '0' && i > 2 || b[i] != ',' {
		return false
	}
	i++

	*m = venue.Message{Bids: m.Bids[:0], Asks: m.Asks[:0], Trades: m.Trades[:0]}
	m.Scale = DefaultScale
	if scales != nil {
		m.Scale = scales.Of(pair)
	}
	var d book
	s := venue.Scanner{B: b[:end]}
	for {
		// An object: {"a"|"b"|"as"|"bs":[levels], ...(,"c":"checksum")}
		if i >= end || b[i] != '{' {
			return false
		}
		i++
		for {
			if i+6 > end || b[i] != '"' {
				return false
			}
			if b[i+1] == 'c' {
				if b[i+2] != '"' || b[i+3] != ':' || d.haveCS {
					return false
				}
				s.I = i + 4
				v, ok := s.QuotedInt()
				if !ok || v > math.MaxUint32 {
					return false
				}
				d.cs, d.haveCS = uint32(v), true
			} else {
				if b[i+1] != 'a' && b[i+1] != 'b' {
					return false
				}
				ask := b[i+1] == 'a'
				j := i + 2
				if b[j] == 's' {
					d.snap = true
					j++
				} else {
					d.upd = true
				}
				if j+3 > end || b[j] != '"' || b[j+1] != ':' || b[j+2] != '[' || b[j+3] != '[' {
					return false
				}
				s.I = j + 3
				var ok bool
				if ask {
					m.Asks, ok = d.fastLevels(&s, m.Asks, m.Scale)
				} else {
					m.Bids, ok = d.fastLevels(&s, m.Bids, m.Scale)
				}
				if !ok {
					return false
				}
			}
			i = s.I
			if i >= end {
				return false
			}
			if b[i] == '}' {
				break
			}
			if b[i] != ',' {
				return false
			}
			i++
		}
		i++
		if i == end {
			break
		}
		if b[i] != ',' {
			return false
		}
		i++
	}
	if d.snap == d.upd || d.snap == d.haveCS {
		return false // both kinds, or neither; a snapshot with a checksum, an update without
	}
	m.Stream, m.Inst, m.Symbol = name, pair, pair
	m.Kind = venue.KindDepth
	return d.finish(m, depth) == nil
}

// fastLevels reads levels from s (at the first level's '[') to the list's closing ']',
// which it passes: ["price","volume","time"] or ["price","volume","time","r"], no spaces.
// The checks on each number are levelList's.
func (d *book) fastLevels(s *venue.Scanner, dst []venue.Level, sc venue.Scale) ([]venue.Level, bool) {
	b := s.B
	for {
		if s.I+1 >= len(b) || b[s.I] != '[' || b[s.I+1] != '"' {
			return dst, false
		}
		s.I++
		p, pf, ok := s.Decimal(sc.Price)
		if !ok || p <= 0 || s.I >= len(b) || b[s.I] != ',' || s.I+1 >= len(b) || b[s.I+1] != '"' {
			return dst, false
		}
		s.I++
		q, qf, ok := s.Decimal(sc.Qty)
		if !ok || s.I+1 >= len(b) || b[s.I] != ',' || b[s.I+1] != '"' {
			return dst, false
		}
		s.I++
		ts, _, ok := s.Decimal(9)
		if !ok || ts <= 0 || s.I >= len(b) {
			return dst, false
		}
		switch {
		case b[s.I] == ']':
			s.I++
		case s.I+5 <= len(b) && string(b[s.I:s.I+5]) == `,"r"]`:
			s.I += 5
		default:
			return dst, false
		}
		dst = append(dst, venue.Level{Price: p, Qty: q})
		d.pfrac, d.qfrac, d.levels, d.ts = max(d.pfrac, pf), max(d.qfrac, qf), d.levels+1, max(d.ts, ts)
		if s.I >= len(b) {
			return dst, false
		}
		switch b[s.I] {
		case ',':
			s.I++
		case ']':
			s.I++
			return dst, true
		default:
			return dst, false
		}
	}
}
