package venue

// PieceChecksummer is a Checksummer whose string is made of one piece per level, each
// written from that level alone (and the scale and wire form): OKX's "price:size", Kraken's
// price and volume digits. A piece once written stays right while its level keeps its
// price and quantity, so a caller that checks after every update keeps the pieces of the
// top levels (Pieces) and writes only those of the levels that changed: most updates move
// one or two of the 20-50 levels a checksum reads, and formatting the numbers was most of
// its cost.
type PieceChecksummer interface {
	Checksummer
	// AppendPiece writes the checksum string's piece of one level.
	AppendPiece(dst []byte, l Level, sc Scale, w Wire) []byte
	// ChecksumPieces is Checksum of the top levels whose pieces bids and asks hold
	// (Pieces.Update with the same scale and wire form).
	ChecksumPieces(bids, asks *Pieces) uint32
}

// Pieces holds the checksum pieces of one side's top levels, best first, and the levels
// they were written from. The zero value is empty and ready.
type Pieces struct {
	levels []Level
	end    []int // piece i is buf[end[i-1]:end[i]] (end[-1] = 0)
	buf    []byte
	sc     Scale
	w      Wire

	// The arrays of the previous generation, reused by the next Update.
	levels2 []Level
	end2    []int
	buf2    []byte
}

// Len is the number of levels held.
func (p *Pieces) Len() int { return len(p.levels) }

// Piece is the piece of the i-th best level.
func (p *Pieces) Piece(i int) []byte {
	from := 0
	if i > 0 {
		from = p.end[i-1]
	}
	return p.buf[from:p.end[i]]
}

// Head is the pieces of the n best levels (all of them if fewer), concatenated.
func (p *Pieces) Head(n int) []byte {
	if n >= len(p.end) {
		return p.buf
	}
	if n <= 0 {
		return p.buf[:0]
	}
	return p.buf[:p.end[n-1]]
}

// Update makes p hold the pieces of top (one side's best levels, best first; bid tells
// which way prices run), at the scale sc written as w. A level already held with the same
// price and quantity keeps its piece; the others are written by cs.AppendPiece. Both
// lists are sorted, so one merge walk finds them.
func (p *Pieces) Update(top []Level, bid bool, cs PieceChecksummer, sc Scale, w Wire) {
	old, oldEnd, oldBuf := p.levels, p.end, p.buf
	if p.sc != sc || p.w != w {
		old = nil // the pieces were written at another scale or wire form
	}
	lv, end, buf := p.levels2[:0], p.end2[:0], p.buf2[:0]
	j := 0
	for _, l := range top {
		for j < len(old) && (bid && old[j].Price > l.Price || !bid && old[j].Price < l.Price) {
			j++
		}
		if j < len(old) && old[j] == l {
			from := 0
			if j > 0 {
				from = oldEnd[j-1]
			}
			buf = append(buf, oldBuf[from:oldEnd[j]]...)
			j++
		} else {
			buf = cs.AppendPiece(buf, l, sc, w)
		}
		lv = append(lv, l)
		end = append(end, len(buf))
	}
	p.levels2, p.end2, p.buf2 = p.levels, p.end, p.buf
	p.levels, p.end, p.buf = lv, end, buf
	p.sc, p.w = sc, w
}

// Reset empties p (its arrays are kept).
func (p *Pieces) Reset() {
	p.levels, p.end, p.buf = p.levels[:0], p.end[:0], p.buf[:0]
}
