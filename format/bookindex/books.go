package bookindex

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"

	"github.com/chronicle/chronicle/format"
)

// The book index (index/books.idx, kind 4) holds the whole book, as a replay of the records
// in file order leaves it, at checkpoints about every Stride records: the first event
// boundary at or after each file offset that is a multiple of Stride*64 bytes (1 MiB, one
// cold frame, by default). The book at any instant is then a checkpoint's book and a
// replay of less than a stride of records (and, cold, of the one frame that holds them),
// where the snapshot runs alone left up to a minute of records to replay. The states are
// large (about 3 bytes a level), so readers keep the table of entries and read one state
// at a time by its offset. Byte layout: docs/format/index.md.
const (
	BooksName      = "books.idx"
	KindBooks      = 4
	BooksEntrySize = 56
	// MaxBookEntries bounds a book index before a reader allocates its table: one
	// checkpoint per stride of a 4 TiB book at the default stride.
	MaxBookEntries = 4<<20 + 1
	// MaxStateBytes bounds one checkpoint's state (64 million levels and more).
	MaxStateBytes = 1 << 30

	stateFixed = 48 // the fixed part of a state: flags ... since
)

// State flags.
const (
	StateKnown  = 1 << 0 // the book is known (a valid snapshot run and no gap since)
	StateSeeded = 1 << 1 // a valid snapshot run came before the checkpoint
)

// Level is one price level: price and quantity in the book header's fixed point.
type Level struct {
	Price int64
	Qty   int64
}

// BookState is what a replay of records [0, Record) in file order leaves
// (docs/format/views.md): whether the book is known and, when it is not, why and since
// when; the last book event applied; and every level, best first.
type BookState struct {
	Flags            uint32 // StateKnown, StateSeeded
	Reason, Since    int64  // the book is unknown: book_invalid reason (0: none given), since when (0: unknown)
	LastTs, LastRecv int64  // the last book event applied (0: none)
	LastSeq          uint64
	LastFlags        uint16
	Bids, Asks       []Level // best first; none when the book is not known
}

// Checkpoint is one entry of a book index.
type Checkpoint struct {
	Record uint64 // the state is that of records [0, Record); an event boundary
	Target uint64 // the stride point it stands for: Record is the first event boundary at or after it
	Depth  uint64 // depth updates in [0, Record)
	// MinTs is the smallest exchange time of a book event that starts in [Record, the
	// next entry's Record) (MaxInt64 when none does).
	MinTs      int64
	Off        uint64 // the state's offset in the payload (after the table)
	Len        uint32 // and its size
	CRC        uint32 // CRC-32C of the state
	Bids, Asks uint32 // levels of each side
}

// Books is a book index: its table, and where to read the states.
type Books struct {
	Stride  int64
	Records int64
	Entries []Checkpoint
	suffix  []int64 // suffix[k]: the smallest MinTs of entries k...
	src     io.ReaderAt
	base    int64 // offset of the payload in src
	name    string
}

// StatesSize is the bytes of the states (held in memory when the index was built, not
// read from a file).
func (b *Books) StatesSize() int64 {
	var n int64
	for _, c := range b.Entries {
		n = max(n, int64(c.Off)+int64(c.Len))
	}
	return n
}

// Find returns the last checkpoint after which some book event at or before t starts:
// a replay for the book at t (docs/format/views.md: the events up to the last one, in file
// order, whose time is at or before t) starts there, and reads no event that starts at or
// after Limit(k). 0 (record 0, the empty book) when no such checkpoint exists.
func (b *Books) Find(t int64) int {
	// suffix is non-decreasing: the last entry with suffix <= t.
	k, _ := slices.BinarySearchFunc(b.suffix, t, func(s, t int64) int {
		if s <= t {
			return -1
		}
		return 1
	})
	return max(k-1, 0)
}

// Limit is where the replay from checkpoint k may stop reading, for the instants Find
// sends to k: the next entry's Target (no event starts between it and that entry's
// Record), or the record count.
func (b *Books) Limit(k int) int64 {
	if k+1 < len(b.Entries) {
		return int64(b.Entries[k+1].Target)
	}
	return b.Records
}

// ByDepth returns the last checkpoint at or after record from with at most row depth
// updates before it, -1 if none.
func (b *Books) ByDepth(row, from uint64) int {
	k, _ := slices.BinarySearchFunc(b.Entries, row, func(c Checkpoint, row uint64) int {
		if c.Depth <= row {
			return -1
		}
		return 1
	})
	k--
	if k < 0 || b.Entries[k].Record < from {
		return -1
	}
	return k
}

// State reads and decodes checkpoint k's state.
func (b *Books) State(k int) (*BookState, error) {
	c := b.Entries[k]
	buf := make([]byte, c.Len)
	off := b.base + int64(c.Off)
	if n, err := b.src.ReadAt(buf, off); n < len(buf) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%s: read checkpoint %d at offset %d: %w", b.name, k, off, err)
	}
	if crc32.Checksum(buf, castagnoli) != c.CRC {
		return nil, fmt.Errorf("%s: offset %d: %w: checkpoint %d: state checksum mismatch", b.name, off, ErrCorrupt, k)
	}
	s, err := decodeState(buf, c.Bids, c.Asks)
	if err != nil {
		return nil, fmt.Errorf("%s: offset %d: %w: checkpoint %d: %v", b.name, off, ErrCorrupt, k, err)
	}
	return s, nil
}

// MarshalBooks encodes a book index file.
func MarshalBooks(b *Books) ([]byte, error) {
	table := make([]byte, len(b.Entries)*BooksEntrySize)
	var payload int64
	le := binary.LittleEndian
	for i, c := range b.Entries {
		e := table[i*BooksEntrySize:]
		le.PutUint64(e[0:], c.Record)
		le.PutUint64(e[8:], c.Target)
		le.PutUint64(e[16:], c.Depth)
		le.PutUint64(e[24:], uint64(c.MinTs))
		le.PutUint64(e[32:], c.Off)
		le.PutUint32(e[40:], c.Len)
		le.PutUint32(e[44:], c.CRC)
		le.PutUint32(e[48:], c.Bids)
		le.PutUint32(e[52:], c.Asks)
		payload = max(payload, int64(c.Off)+int64(c.Len))
	}
	out := append(header(KindBooks, BooksEntrySize, uint64(len(b.Entries)), uint64(b.Records), b.Stride, table), table...)
	start := len(out)
	out = append(out, make([]byte, payload)...)
	if n, err := b.src.ReadAt(out[start:], b.base); int64(n) < payload {
		return nil, fmt.Errorf("%s: read states: %w", b.name, err)
	}
	return out, nil
}

// OpenBooks reads a book index's header and table from r (size bytes; name labels
// errors) and checks what readers rely on; states are read from r when asked for.
func OpenBooks(r io.ReaderAt, size int64, name string) (*Books, error) {
	var hdr [HeaderSize]byte
	if size < HeaderSize {
		return nil, fmt.Errorf("%s: offset 0: %w: %d bytes, shorter than the header", name, ErrCorrupt, size)
	}
	if n, err := r.ReadAt(hdr[:], 0); n < HeaderSize {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	// The header, and its count against the file's size, before the table is read.
	count, _, _, err := checkHeader(hdr[:], name, KindBooks, BooksEntrySize, MaxBookEntries)
	if err != nil {
		return nil, err
	}
	if int64(count)*BooksEntrySize > size-HeaderSize {
		return nil, fmt.Errorf("%s: offset 16: %w: %d entries need %d bytes, the file has %d", name, ErrCorrupt, count, HeaderSize+count*BooksEntrySize, size)
	}
	b := make([]byte, HeaderSize+int64(count)*BooksEntrySize)
	if n, err := r.ReadAt(b, 0); n < len(b) {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return ParseBooks(b, r, size, name)
}

// ParseBooks decodes a book index's header and table (b: exactly those bytes of a file of
// size bytes, whose states src serves).
func ParseBooks(b []byte, src io.ReaderAt, size int64, name string) (*Books, error) {
	le := binary.LittleEndian
	e, count, records, stride, fail, err := parseStrided(b, name, KindBooks, BooksEntrySize, MaxBookEntries, "checkpoint")
	if err != nil {
		return nil, err
	}
	if count == 0 {
		return nil, fmt.Errorf("%s: offset 16: %w: no entries (every book index has the empty book at record 0)", name, ErrCorrupt)
	}
	base := int64(HeaderSize) + int64(count)*BooksEntrySize
	if size < base {
		return nil, fmt.Errorf("%s: offset 16: %w: %d entries need %d bytes, the file has %d", name, ErrCorrupt, count, base, size)
	}
	out := &Books{Stride: stride, Records: int64(records), Entries: make([]Checkpoint, count), suffix: make([]int64, count), src: src, base: base, name: name}
	for i := range out.Entries {
		r := e[i*BooksEntrySize:]
		c := Checkpoint{Record: le.Uint64(r[0:]), Target: le.Uint64(r[8:]), Depth: le.Uint64(r[16:]), MinTs: int64(le.Uint64(r[24:])),
			Off: le.Uint64(r[32:]), Len: le.Uint32(r[40:]), CRC: le.Uint32(r[44:]), Bids: le.Uint32(r[48:]), Asks: le.Uint32(r[52:])}
		switch {
		case i == 0 && (c.Record != 0 || c.Target != 0 || c.Depth != 0):
			return nil, fail(i, "the first entry is at record %d (target %d, %d depth updates), want the empty book at 0", c.Record, c.Target, c.Depth)
		case i > 0 && c.Record >= records:
			return nil, fail(i, "record %d, book of %d records", c.Record, records)
		case c.Target > c.Record:
			return nil, fail(i, "target %d after its record %d", c.Target, c.Record)
		case c.Off > uint64(size-base) || uint64(c.Len) > uint64(size-base)-c.Off:
			return nil, fail(i, "state at %d+%d past the end of the file (%d bytes of states)", c.Off, c.Len, size-base)
		case c.Len < stateFixed || c.Len > MaxStateBytes:
			return nil, fail(i, "state of %d bytes", c.Len)
		case (uint64(c.Bids)+uint64(c.Asks))*2 > uint64(c.Len-stateFixed):
			return nil, fail(i, "%d+%d levels cannot fit %d bytes", c.Bids, c.Asks, c.Len)
		}
		if i > 0 {
			p := out.Entries[i-1]
			if c.Target <= p.Record {
				return nil, fail(i, "record %d, target %d, after record %d", c.Record, c.Target, p.Record)
			}
			if c.Depth < p.Depth || c.Depth-p.Depth > c.Record-p.Record {
				return nil, fail(i, "%d depth updates after %d over %d records", c.Depth, p.Depth, c.Record-p.Record)
			}
		}
		out.Entries[i] = c
	}
	m := int64(math.MaxInt64)
	for i := len(out.Entries) - 1; i >= 0; i-- {
		m = min(m, out.Entries[i].MinTs)
		out.suffix[i] = m
	}
	return out, nil
}

// ReadBooks opens partDir/index/books.idx (close it with the returned file when done
// with the index).
func ReadBooks(partDir string) (*Books, *os.File, error) {
	p := filepath.Join(partDir, Dir, BooksName)
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err == nil {
		var b *Books
		if b, err = OpenBooks(f, st.Size(), p); err == nil {
			return b, f, nil
		}
	}
	f.Close()
	return nil, nil, err
}

// encodeState appends a state: a fixed part, then each side's levels, prices as steps
// from the best in units of their greatest common divisor, quantities in units of theirs.
func encodeState(dst []byte, s *BookState) []byte {
	le := binary.LittleEndian
	var f [stateFixed]byte
	le.PutUint32(f[0:], s.Flags)
	le.PutUint16(f[4:], s.LastFlags)
	le.PutUint64(f[8:], uint64(s.LastTs))
	le.PutUint64(f[16:], uint64(s.LastRecv))
	le.PutUint64(f[24:], s.LastSeq)
	le.PutUint64(f[32:], uint64(s.Reason))
	le.PutUint64(f[40:], uint64(s.Since))
	dst = append(dst, f[:]...)
	for _, side := range [2][]Level{s.Bids, s.Asks} {
		if len(side) == 0 {
			continue
		}
		var step, unit uint64
		for i, l := range side {
			if i > 0 {
				step = gcd(step, absDiff(l.Price, side[i-1].Price))
			}
			unit = gcd(unit, absInt(l.Qty))
		}
		step, unit = max(step, 1), max(unit, 1)
		if unit > math.MaxInt64 {
			unit = 1
		}
		dst = binary.AppendVarint(dst, side[0].Price)
		dst = binary.AppendUvarint(dst, step)
		dst = binary.AppendUvarint(dst, unit)
		for i := 1; i < len(side); i++ {
			dst = binary.AppendUvarint(dst, absDiff(side[i].Price, side[i-1].Price)/step)
		}
		for _, l := range side {
			dst = binary.AppendVarint(dst, l.Qty/int64(unit))
		}
	}
	return dst
}

// decodeState decodes a state of bids+asks levels, checking that it is whole and well
// ordered: each side strictly from the best, no empty level.
func decodeState(b []byte, bids, asks uint32) (*BookState, error) {
	if len(b) < stateFixed {
		return nil, fmt.Errorf("state of %d bytes", len(b))
	}
	le := binary.LittleEndian
	s := &BookState{Flags: le.Uint32(b[0:]), LastFlags: le.Uint16(b[4:]), LastTs: int64(le.Uint64(b[8:])), LastRecv: int64(le.Uint64(b[16:])),
		LastSeq: le.Uint64(b[24:]), Reason: int64(le.Uint64(b[32:])), Since: int64(le.Uint64(b[40:]))}
	if s.Flags&^uint32(StateKnown|StateSeeded) != 0 || le.Uint16(b[6:]) != 0 {
		return nil, fmt.Errorf("reserved bits set (flags %#x)", s.Flags)
	}
	if s.Flags&StateKnown == 0 && bids+asks > 0 {
		return nil, fmt.Errorf("%d levels of a book that is not known", bids+asks)
	}
	if uint64(bids)+uint64(asks) > uint64(len(b)-stateFixed)/2 {
		return nil, fmt.Errorf("%d+%d levels cannot fit %d bytes", bids, asks, len(b))
	}
	r := b[stateFixed:]
	levels := make([]Level, int(bids)+int(asks)) // one allocation for both sides
	for si, count := range [2]uint32{bids, asks} {
		if count == 0 {
			continue
		}
		ask := si == 1
		side := levels[:count]
		levels = levels[count:]
		p, n1 := binary.Varint(r)
		if n1 <= 0 {
			return nil, fmt.Errorf("bad varint (price)")
		}
		step, n2 := binary.Uvarint(r[n1:])
		if n2 <= 0 {
			return nil, fmt.Errorf("bad varint (step)")
		}
		unit, n3 := binary.Uvarint(r[n1+n2:])
		if n3 <= 0 {
			return nil, fmt.Errorf("bad varint (unit)")
		}
		r = r[n1+n2+n3:]
		if step == 0 || unit == 0 || unit > math.MaxInt64 {
			return nil, fmt.Errorf("price step %d, quantity unit %d", step, unit)
		}
		side[0].Price = p
		prev := uint64(p)
		for i := 1; i < len(side); i++ {
			var d uint64
			if len(r) > 0 && r[0] < 0x80 { // a step of less than 128 ticks: most of them
				d, r = uint64(r[0]), r[1:]
			} else {
				var n int
				if d, n = binary.Uvarint(r); n <= 0 {
					return nil, fmt.Errorf("level %d: bad varint (price step)", i)
				}
				r = r[n:]
			}
			hi, diff := bits.Mul64(d, step)
			room := prev + 1<<63 // how far a bid may fall: prev - MinInt64
			if ask {
				room = uint64(math.MaxInt64) - prev
			}
			if d == 0 || hi != 0 || diff > room {
				return nil, fmt.Errorf("level %d: price out of order or out of range", i)
			}
			if ask {
				prev += diff
			} else {
				prev -= diff
			}
			side[i].Price = int64(prev)
		}
		for i := range side {
			// A zigzag varint, decoded here: binary.Varint is a call per level.
			var u uint64
			var sh uint
			k := 0
			for ; k < len(r) && k < binary.MaxVarintLen64; k++ {
				u |= uint64(r[k]&0x7f) << sh
				if r[k] < 0x80 {
					break
				}
				sh += 7
			}
			if k == len(r) || k == binary.MaxVarintLen64 || k == binary.MaxVarintLen64-1 && r[k] > 1 {
				return nil, fmt.Errorf("level %d: bad varint (quantity)", i)
			}
			r = r[k+1:]
			m := int64(u >> 1)
			if u&1 != 0 {
				m = ^m
			}
			if m == 0 {
				return nil, fmt.Errorf("level %d: quantity 0", i)
			}
			if unit == 1 {
				side[i].Qty = m
				continue
			}
			q, ok := mulInt(m, unit)
			if !ok {
				return nil, fmt.Errorf("level %d: quantity %d x %d", i, m, unit)
			}
			side[i].Qty = q
		}
		if ask {
			s.Asks = side
		} else {
			s.Bids = side
		}
	}
	if len(r) != 0 {
		return nil, fmt.Errorf("%d bytes after the levels", len(r))
	}
	return s, nil
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func absDiff(a, b int64) uint64 {
	if a > b {
		return uint64(a) - uint64(b)
	}
	return uint64(b) - uint64(a)
}

func absInt(a int64) uint64 {
	if a < 0 {
		return -uint64(a)
	}
	return uint64(a)
}

// mulInt is m*u when it fits an int64.
func mulInt(m int64, u uint64) (int64, bool) {
	hi, lo := bits.Mul64(absInt(m), u)
	switch {
	case hi != 0:
		return 0, false
	case m >= 0 && lo <= math.MaxInt64:
		return int64(lo), true
	case m < 0 && lo <= 1<<63:
		return int64(-lo), true
	}
	return 0, false
}

// BooksBuilder builds a book index from records added in file order, in any number of
// calls: it replays the book as docs/format/views.md defines it (a valid snapshot run
// restates it, an invalid run or a book_invalid makes it unknown, depth updates change it
// while it is known) and keeps its state at each checkpoint.
type BooksBuilder struct {
	// Stride is the distance of checkpoints in records (DefaultStride when 0); DataOffset
	// the file offset of record 0 (the book header's size): checkpoints stand for the
	// records at file offsets that are multiples of Stride*64 bytes, the cold tier's
	// frames at the default stride. Set both before the first Add.
	Stride     int64
	DataOffset int64

	n       int64
	next    int64 // the next stride point
	open    bool  // the last book record did not end its event
	depth   uint64
	curMin  int64 // MinTs of the last entry so far
	st      BookState
	sides   [2]LevelTable
	entries []Checkpoint
	payload []byte
}

func (b *BooksBuilder) init() {
	if b.Stride <= 0 {
		b.Stride = DefaultStride
	}
	b.curMin = math.MaxInt64
	b.emit(0, 0)
	b.next = b.target(b.frame(0) + 1)
}

// frame is the stride point at or before record n (target(frame(n)) <= n < target(frame(n)+1)).
func (b *BooksBuilder) frame(n int64) int64 {
	return (n*format.BookRecordSize + b.DataOffset) / (b.Stride * format.BookRecordSize)
}

// target is the record of stride point k: the first at a file offset of at least
// k*Stride*64 bytes.
func (b *BooksBuilder) target(k int64) int64 {
	off := k*b.Stride*format.BookRecordSize - b.DataOffset
	return max(0, (off+format.BookRecordSize-1)/format.BookRecordSize)
}

// emit closes the last entry and adds a checkpoint at record i for stride point target.
func (b *BooksBuilder) emit(i, target int64) {
	if len(b.entries) > 0 {
		b.entries[len(b.entries)-1].MinTs = b.curMin
	}
	b.curMin = math.MaxInt64
	s := b.st
	if s.Flags&StateKnown != 0 {
		s.Bids, s.Asks = b.sides[0].Levels(nil, false), b.sides[1].Levels(nil, true)
	}
	off := len(b.payload)
	b.payload = encodeState(b.payload, &s)
	st := b.payload[off:]
	b.entries = append(b.entries, Checkpoint{Record: uint64(i), Target: uint64(target), Depth: b.depth, MinTs: math.MaxInt64,
		Off: uint64(off), Len: uint32(len(st)), CRC: crc32.Checksum(st, castagnoli), Bids: uint32(len(s.Bids)), Asks: uint32(len(s.Asks))})
}

// Records is the number of records added so far.
func (b *BooksBuilder) Records() int64 { return b.n }

// Add indexes whole records (len(data) a multiple of 64; a partial tail is ignored).
func (b *BooksBuilder) Add(data []byte) {
	if b.entries == nil {
		b.init()
	}
	le := binary.LittleEndian
	for off := 0; off+format.BookRecordSize <= len(data); off += format.BookRecordSize {
		r := data[off:]
		if b.n >= b.next && !b.open {
			// The first event boundary at or after a stride point (or several, past an
			// event longer than a stride).
			k := b.frame(b.n)
			b.emit(b.n, b.target(k))
			b.next = b.target(k + 1)
		}
		typ, fl := le.Uint16(r[0:]), le.Uint16(r[2:])
		b.n++
		if !isBookType(typ) {
			continue
		}
		ts := int64(le.Uint64(r[8:]))
		if !b.open {
			b.curMin = min(b.curMin, ts)
		}
		b.open = !endsEvent(typ, fl)
		b.apply(typ, fl, ts, r)
		if IsDepthUpdate(typ, fl) {
			b.depth++
		}
	}
}

// apply is one record's effect on the replay (bookview's replayer does the same).
func (b *BooksBuilder) apply(typ, fl uint16, ts int64, r []byte) {
	le := binary.LittleEndian
	s := &b.st
	note := func() {
		s.LastTs, s.LastRecv, s.LastSeq, s.LastFlags = ts, int64(le.Uint64(r[16:])), le.Uint64(r[24:]), fl
	}
	switch typ {
	case format.TypeSnapshotBegin:
		b.sides[0].Reset()
		b.sides[1].Reset()
		if fl&format.FlagBookInvalid == 0 {
			s.Flags |= StateKnown | StateSeeded
			s.Reason, s.Since = 0, 0
		} else if s.Flags&StateKnown != 0 {
			s.Flags &^= StateKnown
			s.Reason, s.Since = 0, ts
		}
	case format.TypeSnapshotEnd:
		note()
	case format.TypeBookInvalid:
		b.sides[0].Reset()
		b.sides[1].Reset()
		s.Flags &^= StateKnown
		s.Reason, s.Since = int64(le.Uint64(r[40:])), ts
		note()
	case format.TypeLevel:
		if side := fl & (format.FlagBid | format.FlagAsk); s.Flags&StateKnown != 0 && side != 0 {
			b.sides[side>>1].Set(int64(le.Uint64(r[32:])), int64(le.Uint64(r[40:]))) // FlagBid 1 -> 0, FlagAsk 2 (or both: an ask) -> 1
		}
		if fl&format.FlagSnapshot == 0 && fl&format.FlagLast != 0 {
			note()
		}
	}
}

// Books returns the index of the records added so far (a new value each call; the states
// are shared, never changed).
func (b *BooksBuilder) Books() *Books {
	if b.entries == nil {
		b.init()
	}
	es := slices.Clone(b.entries)
	es[len(es)-1].MinTs = b.curMin
	payload := b.payload[:len(b.payload):len(b.payload)]
	out := &Books{Stride: b.Stride, Records: b.n, Entries: es, suffix: make([]int64, len(es)), src: bytes.NewReader(payload), name: BooksName}
	m := int64(math.MaxInt64)
	for i := len(es) - 1; i >= 0; i-- {
		m = min(m, es[i].MinTs)
		out.suffix[i] = m
	}
	return out
}

// BuildBooks builds the book index of n canonical records held in data, the records of a
// file whose header is dataOffset bytes.
func BuildBooks(data []byte, n, dataOffset int64) (*Books, error) {
	if int64(len(data)) < n*format.BookRecordSize {
		return nil, fmt.Errorf("%w: %d records need %d bytes, have %d", ErrCorrupt, n, n*format.BookRecordSize, len(data))
	}
	b := BooksBuilder{DataOffset: dataOffset}
	b.Add(data[:n*format.BookRecordSize])
	return b.Books(), nil
}

// isBookType reports whether records of a type change the book.
func isBookType(t uint16) bool {
	return t == format.TypeLevel || t == format.TypeSnapshotBegin || t == format.TypeSnapshotEnd || t == format.TypeBookInvalid
}

// endsEvent reports whether a book record is the last of its event: a depth update's LAST
// level, a run's snapshot_end, a book_invalid.
func endsEvent(typ, fl uint16) bool {
	switch typ {
	case format.TypeLevel:
		return fl&format.FlagSnapshot == 0 && fl&format.FlagLast != 0
	case format.TypeSnapshotEnd, format.TypeBookInvalid:
		return true
	}
	return false
}
