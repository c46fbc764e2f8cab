package okx

import (
	"hash/crc32"
	"strconv"

	"github.com/chronicle/chronicle/venue"
)

// ChecksumLevels is the number of levels a side OKX's book checksum covers.
const ChecksumLevels = 25

// ChecksumDepth: OKX checks the top 25 levels of each side.
func (Venue) ChecksumDepth() int { return ChecksumLevels }

// Checksum is OKX's book checksum (docs-v5, "Checksum" under the order book channel): the
// best 25 bids and asks interleaved as bid price:bid size:ask price:ask size:..., a side
// that runs out leaving the other to continue alone, prices and sizes as OKX writes them
// (as few digits as the value needs: 30316, 5.16, 0.0002), all joined by colons; CRC32
// (IEEE) of that string, which OKX sends as a signed 32-bit integer (compare the same 32
// bits). It allocates nothing.
func (Venue) Checksum(bids, asks []venue.Level, sc venue.Scale, _ venue.Wire) uint32 {
	// The whole string in one buffer (50 levels of two numbers of at most 21 bytes and
	// their colons fit in 2,200 bytes): one CRC pass over it.
	var buf [2200]byte
	b := buf[:0]
	for i := 0; i < ChecksumLevels; i++ {
		if i >= len(bids) && i >= len(asks) {
			break
		}
		for _, side := range [2][]venue.Level{bids, asks} {
			if i < len(side) {
				if len(b) > 0 {
					b = append(b, ':')
				}
				b = AppendNumber(b, side[i].Price, sc.Price)
				b = append(b, ':')
				b = AppendNumber(b, side[i].Qty, sc.Qty)
			}
		}
	}
	return crc32.ChecksumIEEE(b)
}

// AppendPiece writes one level's piece of the checksum string: price:size.
func (Venue) AppendPiece(dst []byte, l venue.Level, sc venue.Scale, _ venue.Wire) []byte {
	dst = AppendNumber(dst, l.Price, sc.Price)
	dst = append(dst, ':')
	return AppendNumber(dst, l.Qty, sc.Qty)
}

// ChecksumPieces is Checksum from the levels' pieces kept by the caller: the same
// interleaving, the pieces copied rather than written.
func (Venue) ChecksumPieces(bids, asks *venue.Pieces) uint32 {
	var buf [2200]byte
	b := buf[:0]
	for i := 0; i < ChecksumLevels; i++ {
		if i >= bids.Len() && i >= asks.Len() {
			break
		}
		if i < bids.Len() {
			if len(b) > 0 {
				b = append(b, ':')
			}
			b = append(b, bids.Piece(i)...)
		}
		if i < asks.Len() {
			if len(b) > 0 {
				b = append(b, ':')
			}
			b = append(b, asks.Piece(i)...)
		}
	}
	return crc32.ChecksumIEEE(b)
}

// AppendNumber writes a fixed-point value as OKX does: the integer part, and a fraction
// only as long as its last non-zero digit (302388 at 1 decimal is 30238.8; 30316 at 0 is
// 30316; 0 is 0).
func AppendNumber(dst []byte, v int64, decimals uint8) []byte {
	if v < 0 {
		dst = append(dst, '-')
		v = -v
	}
	if decimals == 0 {
		return strconv.AppendInt(dst, v, 10)
	}
	p := venue.Pow10(int(decimals))
	dst = strconv.AppendInt(dst, v/p, 10)
	frac := v % p
	if frac == 0 {
		return dst
	}
	n := int(decimals)
	for frac%10 == 0 {
		frac /= 10
		n--
	}
	dst = append(dst, '.')
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], frac, 10)
	for i := len(d); i < n; i++ {
		dst = append(dst, '0')
	}
	return append(dst, d...)
}
