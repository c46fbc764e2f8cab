package venuefuzz

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/chronicle/chronicle/venue"
)

// CheckPieces: the checksum from kept pieces (venue.Pieces) equals cs.Checksum of the same
// levels, whether the pieces are written fresh, updated from a book that differed (levels
// gone, added, resized, moved), or updated from pieces written at another scale; on the
// levels as given and sorted best first (where the merge walk reuses most pieces).
func CheckPieces(t *testing.T, cs venue.PieceChecksummer, bids, asks []venue.Level, sc venue.Scale, w venue.Wire) {
	t.Helper()
	sorted := func(side []venue.Level, bid bool) []venue.Level {
		s := slices.Clone(side)
		slices.SortFunc(s, func(a, b venue.Level) int {
			if bid {
				a, b = b, a
			}
			return int(a.Price>>1 - b.Price>>1)
		})
		return s
	}
	// An earlier book: every third level resized, the second dropped, one level added.
	earlier := func(side []venue.Level) []venue.Level {
		var e []venue.Level
		for i, l := range side {
			switch {
			case i == 1:
			case i%3 == 0:
				e = append(e, venue.Level{Price: l.Price, Qty: l.Qty + 1})
			default:
				e = append(e, l)
			}
		}
		if len(side) > 0 {
			e = append(e, venue.Level{Price: side[len(side)-1].Price + 1, Qty: 7})
		}
		return e
	}
	other := sc // another scale, within the venue's range
	if other.Price > 0 {
		other.Price--
	} else {
		other.Price++
	}
	for _, sides := range [][2][]venue.Level{{bids, asks}, {sorted(bids, true), sorted(asks, false)}} {
		b, a := sides[0], sides[1]
		want := cs.Checksum(b, a, sc, w)
		var pb, pa venue.Pieces
		pb.Update(b, true, cs, sc, w)
		pa.Update(a, false, cs, sc, w)
		if got := cs.ChecksumPieces(&pb, &pa); got != want {
			t.Fatalf("checksum from fresh pieces %d, want %d", got, want)
		}
		eb, ea := earlier(b), earlier(a)
		pb.Update(eb, true, cs, other, w)
		pa.Update(ea, false, cs, other, w)
		pb.Update(eb, true, cs, sc, w)
		pa.Update(ea, false, cs, sc, w)
		if got, want := cs.ChecksumPieces(&pb, &pa), cs.Checksum(eb, ea, sc, w); got != want {
			t.Fatalf("checksum from pieces kept across a change of scale %d, want %d", got, want)
		}
		pb.Update(b, true, cs, sc, w)
		pa.Update(a, false, cs, sc, w)
		if got := cs.ChecksumPieces(&pb, &pa); got != want {
			t.Fatalf("checksum from updated pieces %d, want %d", got, want)
		}
	}
}

// Levels reads fuzz bytes as up to most levels, nine bytes each: a side (low bit of the
// first byte: 0 bid, 1 ask), a price from 1 and a quantity from minQty (little-endian
// uint32s added to 1 and minQty).
func Levels(raw []byte, most int, minQty int64) (bids, asks []venue.Level) {
	for i := 0; i+9 <= len(raw) && len(bids)+len(asks) < most; i += 9 {
		l := venue.Level{Price: int64(binary.LittleEndian.Uint32(raw[i+1:])) + 1, Qty: int64(binary.LittleEndian.Uint32(raw[i+5:])) + minQty}
		if raw[i]&1 == 0 {
			bids = append(bids, l)
		} else {
			asks = append(asks, l)
		}
	}
	return bids, asks
}
