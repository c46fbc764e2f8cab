package kraken

import (
	"hash/crc32"
	"strconv"

	"github.com/chronicle/chronicle/venue"
)

// ChecksumLevels is the number of levels a side Kraken's book checksum covers, whatever
// the subscribed depth.
const ChecksumLevels = 10

// ChecksumDepth: Kraken checks the top 10 levels of each side.
func (Venue) ChecksumDepth() int { return ChecksumLevels }

// Checksum is Kraken's book checksum (docs.kraken.com, "Spot Websockets (v1) Book
// Checksum"): the best 10 asks, lowest price first, then the best 10 bids, highest first;
// for each level its price then its volume as the websocket writes them with the decimal
// point removed and leading zeros stripped, all concatenated; CRC32 (IEEE) of that string
// as an unsigned 32-bit integer. Kraken pads every price of a pair to a fixed number of
// fraction digits (and volumes to 8), which w carries: a value at scale sc is written as
// the integer it is at w's digits. It allocates nothing.
func (Venue) Checksum(bids, asks []venue.Level, sc venue.Scale, w venue.Wire) uint32 {
	pf, qf := int(sc.Price), int(sc.Qty)
	if w.Known {
		pf, qf = int(w.PriceFrac), int(w.QtyFrac)
	}
	// The whole string in one buffer (20 levels of two numbers of at most 19 digits fit
	// in 800 bytes): one CRC pass over it runs the table-free path, many small ones don't.
	var buf [800]byte
	b := buf[:0]
	for _, side := range [2][]venue.Level{asks, bids} {
		for i, l := range side {
			if i == ChecksumLevels {
				break
			}
			b = appendDigits(b, l.Price, int(sc.Price), pf)
			b = appendDigits(b, l.Qty, int(sc.Qty), qf)
		}
	}
	return crc32.ChecksumIEEE(b)
}

// AppendPiece writes one level's piece of the checksum string: its price's digits then
// its volume's.
func (Venue) AppendPiece(dst []byte, l venue.Level, sc venue.Scale, w venue.Wire) []byte {
	pf, qf := int(sc.Price), int(sc.Qty)
	if w.Known {
		pf, qf = int(w.PriceFrac), int(w.QtyFrac)
	}
	dst = appendDigits(dst, l.Price, int(sc.Price), pf)
	return appendDigits(dst, l.Qty, int(sc.Qty), qf)
}

// ChecksumPieces is Checksum from the levels' pieces kept by the caller: the asks' pieces
// then the bids', each side's already one run of bytes.
func (Venue) ChecksumPieces(bids, asks *venue.Pieces) uint32 {
	return crc32.Update(crc32.ChecksumIEEE(asks.Head(ChecksumLevels)), crc32.IEEETable, bids.Head(ChecksumLevels))
}

// appendDigits writes v (at scale decimals) as the digits of its wire form with frac
// fraction digits, the point and leading zeros removed: the integer v * 10^(frac-decimals).
func appendDigits(dst []byte, v int64, decimals, frac int) []byte {
	switch {
	case frac > decimals && frac-decimals <= 18:
		v *= venue.Pow10(frac - decimals)
	case frac < decimals:
		v /= venue.Pow10(decimals - frac)
	}
	if v == 0 {
		return dst // "0.000" has no digit left once the leading zeros go
	}
	return strconv.AppendInt(dst, v, 10)
}
