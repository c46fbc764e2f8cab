package bookindex

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/chronicle/chronicle/format"
)

// Builder indexes records added in file order, in any number of calls, without holding
// them: the three files of index/ for a book read through any io.ReaderAt (a cold or
// remote book that has no index, a book still growing). Its results equal Build's and
// BuildEvents' over the same records.
type Builder struct {
	// DataOffset is the file offset of the first record (the book header's size) and
	// BooksStride the checkpoint distance of the book index (DefaultStride when 0); set
	// them before the first Add.
	DataOffset, BooksStride int64

	n     int64
	base  int64    // second of lo[0] and last[0]
	lo    []uint64 // first record reaching each second (by the running maximum of times)
	last  []int64  // last record with its time in each second, -1 for none
	maxS  int64    // largest second seen
	snaps []Snapshot
	ev    EventsBuilder
	books BooksBuilder
	err   error
}

// Records is the number of records added so far.
func (b *Builder) Records() int64 { return b.n }

// Err is the error that stopped indexing (times spanning more than MaxSeconds).
func (b *Builder) Err() error { return b.err }

// Add indexes whole records (len(data) a multiple of 64; a partial tail is ignored).
func (b *Builder) Add(data []byte) error {
	if b.err != nil {
		return b.err
	}
	whole := len(data) / format.BookRecordSize * format.BookRecordSize
	le := binary.LittleEndian
	for off := 0; off < whole; off += format.BookRecordSize {
		r := data[off:]
		i := b.n + int64(off/format.BookRecordSize)
		ts := int64(le.Uint64(r[8:]))
		s := floorSec(ts)
		if err := b.cover(s); err != nil {
			b.err = err
			return err
		}
		b.last[s-b.base] = i
		for ; b.maxS < s; b.maxS++ {
			b.lo[b.maxS+1-b.base] = uint64(i)
		}
		if le.Uint16(r[0:]) == format.TypeSnapshotBegin {
			b.snaps = append(b.snaps, Snapshot{ExchTs: ts, Record: uint64(i), Seq: le.Uint64(r[24:]),
				Levels: uint32(min(max(int64(le.Uint64(r[48:])), 0), math.MaxUint32)), Flags: le.Uint16(r[2:])})
		}
	}
	if b.books.Records() == 0 {
		b.books.DataOffset, b.books.Stride = b.DataOffset, b.BooksStride
	}
	b.ev.Add(data[:whole])
	b.books.Add(data[:whole])
	b.n += int64(whole / format.BookRecordSize)
	return nil
}

// cover extends the per-second arrays to hold second s. Seconds added before the first
// one are reached by record 0 (every earlier record is at a later second), seconds added
// after the last wait for the record that reaches them.
func (b *Builder) cover(s int64) error {
	if len(b.lo) == 0 {
		b.base, b.maxS = s, s
		b.lo, b.last = []uint64{0}, []int64{-1}
		return nil
	}
	if s < b.base {
		if b.base+int64(len(b.lo))-s > MaxSeconds {
			return fmt.Errorf("%w: exchange times span more than %d s", ErrCorrupt, MaxSeconds)
		}
		k := b.base - s
		b.lo = append(make([]uint64, k, k+int64(len(b.lo))), b.lo...)
		last := make([]int64, k, k+int64(len(b.last)))
		for j := range last {
			last[j] = -1
		}
		b.last = append(last, b.last...)
		b.base = s
	}
	for end := b.base + int64(len(b.lo)); end <= s; end++ {
		if end-b.base+1 > MaxSeconds {
			return fmt.Errorf("%w: exchange times span more than %d s", ErrCorrupt, MaxSeconds)
		}
		b.lo, b.last = append(b.lo, 0), append(b.last, -1)
	}
	return nil
}

// Time returns the time index of the records added so far (a new value each call).
func (b *Builder) Time() *Time {
	t := &Time{Base: b.base, Records: b.n}
	if b.n == 0 {
		return &Time{}
	}
	t.Lo = append([]uint64(nil), b.lo...)
	t.Hi = make([]uint64, len(b.last))
	hi := int64(0)
	for s, l := range b.last {
		hi = max(hi, l+1)
		t.Hi[s] = uint64(hi)
	}
	return t
}

// Snapshots returns the snapshot runs found so far (a copy).
func (b *Builder) Snapshots() []Snapshot { return append([]Snapshot(nil), b.snaps...) }

// Events returns the events index of the records added so far.
func (b *Builder) Events() *Events { return b.ev.Events() }

// Books returns the book index of the records added so far.
func (b *Builder) Books() *Books {
	if b.books.Records() == 0 {
		b.books.DataOffset, b.books.Stride = b.DataOffset, b.BooksStride
	}
	return b.books.Books()
}
