package bookview

import "github.com/chronicle/chronicle/format/bookindex"

// Level is one price level: price and quantity in the book header's fixed point.
type Level = bookindex.Level

// side is one side of a book: levels in blocks of at most blockMax, each sorted, the
// blocks in order, so that the best level is the last of the last block. Books of real
// venues change anywhere in their first thousand levels: a block bounds what an insert
// or a delete moves (a flat sorted slice moved half the book each time, a B-tree costs a
// call per comparison). key orders the levels: the price for bids, its bitwise
// complement for asks (a descending order that cannot overflow).
type side struct {
	blocks []*block
	n      int
	ask    bool
}

type block struct {
	keys []int64
	qtys []int64
}

const blockMax = 64

func (s *side) key(price int64) int64 {
	if s.ask {
		return ^price
	}
	return price
}

func (s *side) unkey(k int64) int64 {
	if s.ask {
		return ^k
	}
	return k
}

// find returns the block that holds k or would: the first whose last key is at or above
// it, else the last.
func (s *side) find(k int64) int {
	bs := s.blocks
	last := len(bs) - 1
	if k >= bs[last].keys[0] { // at the touch: the common case
		return last
	}
	lo, hi := 0, last // the first block in [lo, last) whose last key is >= k, else last
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b := bs[m]; b.keys[len(b.keys)-1] < k {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// search is the first index of keys at or above k (len(keys) if none).
func search(keys []int64, k int64) int {
	lo, hi := 0, len(keys)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if keys[m] < k {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// set gives the level at price the quantity qty; 0 deletes it (deleting an absent level
// is normal in venue feeds).
func (s *side) set(price, qty int64) {
	k := s.key(price)
	if len(s.blocks) == 0 {
		if qty != 0 {
			s.blocks = append(s.blocks, &block{keys: append(make([]int64, 0, blockMax), k), qtys: append(make([]int64, 0, blockMax), qty)})
			s.n++
		}
		return
	}
	bi := s.find(k)
	b := s.blocks[bi]
	n := len(b.keys)
	i := search(b.keys, k)
	if i < n && b.keys[i] == k {
		if qty != 0 {
			b.qtys[i] = qty
			return
		}
		copy(b.keys[i:], b.keys[i+1:])
		copy(b.qtys[i:], b.qtys[i+1:])
		b.keys, b.qtys = b.keys[:n-1], b.qtys[:n-1]
		s.n--
		if n == 1 {
			s.blocks = append(s.blocks[:bi], s.blocks[bi+1:]...)
		}
		return
	}
	if qty == 0 {
		return
	}
	if n == blockMax { // split, then insert into the half that holds k
		h := blockMax / 2
		nb := &block{keys: append(make([]int64, 0, blockMax), b.keys[h:]...), qtys: append(make([]int64, 0, blockMax), b.qtys[h:]...)}
		b.keys, b.qtys = b.keys[:h], b.qtys[:h]
		s.blocks = append(s.blocks, nil)
		copy(s.blocks[bi+2:], s.blocks[bi+1:])
		s.blocks[bi+1] = nb
		if i > h {
			b, i = nb, i-h
		}
		n = len(b.keys)
	}
	b.keys, b.qtys = append(b.keys, 0), append(b.qtys, 0)
	copy(b.keys[i+1:], b.keys[i:n])
	copy(b.qtys[i+1:], b.qtys[i:n])
	b.keys[i], b.qtys[i] = k, qty
	s.n++
}

func (s *side) reset() { s.blocks, s.n = s.blocks[:0], 0 }

// each calls fn for up to n levels from the best down (all when n < 0) until it returns false.
func (s *side) each(n int, fn func(price, qty int64) bool) {
	for bi := len(s.blocks) - 1; bi >= 0 && n != 0; bi-- {
		b := s.blocks[bi]
		for i := len(b.keys) - 1; i >= 0 && n != 0; i-- {
			if !fn(s.unkey(b.keys[i]), b.qtys[i]) {
				return
			}
			n--
		}
	}
}

// best returns the best level, ok false for an empty side.
func (s *side) best() (Level, bool) {
	if len(s.blocks) == 0 {
		return Level{}, false
	}
	b := s.blocks[len(s.blocks)-1]
	return Level{Price: s.unkey(b.keys[len(b.keys)-1]), Qty: b.qtys[len(b.keys)-1]}, true
}

// top fills price and qty with the best len(price) levels, best first, zeros past the
// last level.
func (s *side) top(price, qty []int64) {
	i := 0
	s.each(len(price), func(p, q int64) bool { price[i], qty[i] = p, q; i++; return true })
	clear(price[i:])
	clear(qty[i:])
}

// levels returns up to depth levels (all when depth <= 0), best first.
func (s *side) levels(depth int) []Level {
	if depth <= 0 || depth > s.n {
		depth = s.n
	}
	out := make([]Level, 0, depth)
	s.each(depth, func(p, q int64) bool { out = append(out, Level{Price: p, Qty: q}); return true })
	return out
}

// fill replaces the side with levels given best first (as lwwSide.levels returns them),
// in blocks three quarters full so that the next inserts do not split at once.
func (s *side) fill(levels []Level) {
	s.blocks, s.n = s.blocks[:0], len(levels)
	const per = blockMax * 3 / 4
	for i := len(levels); i > 0; i -= per {
		lo := max(0, i-per)
		b := &block{keys: make([]int64, 0, blockMax), qtys: make([]int64, 0, blockMax)}
		for j := i - 1; j >= lo; j-- { // worst to best: ascending keys
			b.keys = append(b.keys, s.key(levels[j].Price))
			b.qtys = append(b.qtys, levels[j].Qty)
		}
		s.blocks = append(s.blocks, b)
	}
}

func (s *side) clone() side {
	c := side{blocks: make([]*block, len(s.blocks)), n: s.n, ask: s.ask}
	for i, b := range s.blocks {
		c.blocks[i] = &block{keys: append(make([]int64, 0, blockMax), b.keys...), qtys: append(make([]int64, 0, blockMax), b.qtys...)}
	}
	return c
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
func (b *Book) Len() (bids, asks int) { return b.bids.n, b.asks.n }

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
