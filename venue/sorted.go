package venue

import "sort"

// SortedBook is a small order book kept as two sorted slices, best level first: the book
// a venue's own tools keep (the feed's checksum Verifier, the exchange simulator), where
// books are a few hundred levels deep and clarity beats speed. The refinery has its own.
type SortedBook struct {
	bids, asks []Level
}

// Reset replaces the book with a snapshot's levels, given in any order: a price given
// twice keeps its last quantity, zero quantities are dropped.
func (b *SortedBook) Reset(bids, asks []Level) {
	b.bids, b.asks = b.bids[:0], b.asks[:0]
	for _, l := range bids {
		b.Set(true, l)
	}
	for _, l := range asks {
		b.Set(false, l)
	}
}

// Set applies one level: the new absolute quantity at a price (0 deletes; deleting a
// price the book does not hold is normal).
func (b *SortedBook) Set(bid bool, l Level) {
	side := &b.asks
	better := func(p int64) bool { return p < l.Price }
	if bid {
		side = &b.bids
		better = func(p int64) bool { return p > l.Price }
	}
	s := *side
	i := sort.Search(len(s), func(i int) bool { return !better(s[i].Price) })
	switch {
	case i < len(s) && s[i].Price == l.Price:
		if l.Qty == 0 {
			*side = append(s[:i], s[i+1:]...)
		} else {
			s[i].Qty = l.Qty
		}
	case l.Qty != 0:
		s = append(s, Level{})
		copy(s[i+1:], s[i:])
		s[i] = l
		*side = s
	}
}

// Trim drops the levels past depth on each side (depth <= 0 keeps all).
func (b *SortedBook) Trim(depth int) {
	if depth <= 0 {
		return
	}
	if len(b.bids) > depth {
		b.bids = b.bids[:depth]
	}
	if len(b.asks) > depth {
		b.asks = b.asks[:depth]
	}
}

// Top returns a side's best n levels (fewer when it holds fewer), best first. The slice
// is the book's own: valid until the next change.
func (b *SortedBook) Top(bid bool, n int) []Level {
	s := b.asks
	if bid {
		s = b.bids
	}
	if n >= 0 && len(s) > n {
		s = s[:n]
	}
	return s
}

// Depth returns the number of bid and ask levels.
func (b *SortedBook) Depth() (bids, asks int) { return len(b.bids), len(b.asks) }
