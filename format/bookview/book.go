package bookview

import "sort"

// Level is one price level: price and quantity in the book header's fixed point.
type Level struct {
	Price int64
	Qty   int64
}

// side is one side of a book, sorted so that the best level is last: market data changes
// mostly near the touch, so inserts and deletes there move few entries. key orders the
// levels: the price for bids, its bitwise complement for asks (a descending order that
// cannot overflow).
type side struct {
	keys []int64
	qtys []int64
	ask  bool
}

func (s *side) key(price int64) int64 {
	if s.ask {
		return ^price
	}
	return price
}

// set gives the level at price the quantity qty; 0 deletes it (deleting an absent level
// is normal in venue feeds).
func (s *side) set(price, qty int64) {
	k := s.key(price)
	n := len(s.keys)
	// Search from the best end first: most changes are within a few levels of it.
	i := n
	for j := 0; j < 8 && i > 0 && s.keys[i-1] > k; j++ {
		i--
	}
	if i > 0 && s.keys[i-1] > k {
		i = sort.Search(i, func(x int) bool { return s.keys[x] > k })
	}
	// keys[i-1] <= k < keys[i]
	if i > 0 && s.keys[i-1] == k {
		if qty == 0 {
			s.keys = append(s.keys[:i-1], s.keys[i:]...)
			s.qtys = append(s.qtys[:i-1], s.qtys[i:]...)
		} else {
			s.qtys[i-1] = qty
		}
		return
	}
	if qty == 0 {
		return
	}
	s.keys = append(s.keys, 0)
	s.qtys = append(s.qtys, 0)
	copy(s.keys[i+1:], s.keys[i:n])
	copy(s.qtys[i+1:], s.qtys[i:n])
	s.keys[i], s.qtys[i] = k, qty
}

func (s *side) reset() { s.keys, s.qtys = s.keys[:0], s.qtys[:0] }

func (s *side) price(i int) int64 {
	if s.ask {
		return ^s.keys[i]
	}
	return s.keys[i]
}

// best returns the best level, ok false for an empty side.
func (s *side) best() (Level, bool) {
	n := len(s.keys)
	if n == 0 {
		return Level{}, false
	}
	return Level{s.price(n - 1), s.qtys[n-1]}, true
}

// top fills price and qty with the best len(price) levels, best first, zeros past the
// last level.
func (s *side) top(price, qty []int64) {
	n := len(s.keys)
	for i := range price {
		if i < n {
			price[i], qty[i] = s.price(n-1-i), s.qtys[n-1-i]
		} else {
			price[i], qty[i] = 0, 0
		}
	}
}

// levels returns up to depth levels (all when depth <= 0), best first.
func (s *side) levels(depth int) []Level {
	n := len(s.keys)
	if depth <= 0 || depth > n {
		depth = n
	}
	out := make([]Level, depth)
	for i := range out {
		out[i] = Level{s.price(n - 1 - i), s.qtys[n-1-i]}
	}
	return out
}

func (s *side) clone() side {
	return side{keys: append([]int64(nil), s.keys...), qtys: append([]int64(nil), s.qtys...), ask: s.ask}
}

// Book is an L2 order book: bids and asks by price.
type Book struct {
	bids, asks side
}

// NewBook returns an empty book.
func NewBook() *Book { return &Book{asks: side{ask: true}} }

// Set changes one level of a side; qty 0 deletes it.
func (b *Book) Set(bid bool, price, qty int64) {
	if bid {
		b.bids.set(price, qty)
	} else {
		b.asks.set(price, qty)
	}
}

// Reset empties the book.
func (b *Book) Reset() {
	b.bids.reset()
	b.asks.reset()
}

// Len returns the number of bid and ask levels.
func (b *Book) Len() (bids, asks int) { return len(b.bids.keys), len(b.asks.keys) }

// BestBid and BestAsk return the touch, ok false for an empty side.
func (b *Book) BestBid() (Level, bool) { return b.bids.best() }
func (b *Book) BestAsk() (Level, bool) { return b.asks.best() }

// Crossed reports a book whose best bid is at or above its best ask (both sides present),
// as the refinery flags it.
func (b *Book) Crossed() bool {
	bb, ok1 := b.bids.best()
	ba, ok2 := b.asks.best()
	return ok1 && ok2 && bb.Price >= ba.Price
}

// Bids and Asks return up to depth levels (all when depth <= 0), best first.
func (b *Book) Bids(depth int) []Level { return b.bids.levels(depth) }
func (b *Book) Asks(depth int) []Level { return b.asks.levels(depth) }

// Clone returns an independent copy.
func (b *Book) Clone() *Book { return &Book{bids: b.bids.clone(), asks: b.asks.clone()} }
