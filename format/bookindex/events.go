package bookindex

import (
	"encoding/binary"
	"fmt"
	"path/filepath"

	"github.com/chronicle/chronicle/format"
)

// The event-ordinal index (index/events.idx, kind 3) maps the rows of a partition's views
// (one per depth update, trade or bbo record) to the records that hold them. Each entry is
// an anchor: a record number and how many depth updates, trades and bbo records come before
// it. Anchors sit at every snapshot run (a book replay can start there) and at every
// Stride-th record (a scan for trades or bbo rows never reads more than Stride records),
// and the last entry is the end of the book with the totals. Byte layout:
// docs/format/index.md.
const (
	EventsName      = "events.idx"
	KindEvents      = 3
	EventsEntrySize = 40
	// DefaultStride is the record distance of stride anchors: 16384 records, 1 MiB, one
	// cold frame.
	DefaultStride = 16384
	// MaxEventEntries bounds an events index before a reader allocates: every snapshot run
	// of MaxSnapshots plus a stride anchor per MiB of a 4 TiB book.
	MaxEventEntries = MaxSnapshots + 4<<20
)

// Anchor flags.
const (
	AnchorSnapshot = 1 << 0 // the record is a snapshot_begin: a book replay can start here
	AnchorValid    = 1 << 1 // that run restates a known book (not flagged BOOK_INVALID)
	AnchorStride   = 1 << 2 // the record number is a multiple of the stride
	AnchorEnd      = 1 << 3 // one past the last record: the counts are the totals
)

// Anchor is one entry of an events index: counts of the view rows in records [0, Record).
type Anchor struct {
	Record uint64
	Depth  uint64 // depth updates: non-snapshot level records flagged LAST
	Trades uint64 // trade records
	BBO    uint64 // bbo records
	Flags  uint32
}

// Events is an event-ordinal index. Entries are in record order, the first at record 0,
// the last (AnchorEnd) at Records. It is never modified once built.
type Events struct {
	Stride  int64
	Records int64
	Anchors []Anchor
}

// Totals is the end anchor: the view row counts of the whole book.
func (e *Events) Totals() Anchor { return e.Anchors[len(e.Anchors)-1] }

// IsDepthUpdate reports whether a record ends an applied depth update (a row of the top-N
// views and of meta.json's depth_updates).
func IsDepthUpdate(typeID, flags uint16) bool {
	return typeID == format.TypeLevel && flags&format.FlagSnapshot == 0 && flags&format.FlagLast != 0
}

// BuildEvents builds the events index of n canonical records held in data.
func BuildEvents(data []byte, n int64) (*Events, error) {
	if int64(len(data)) < n*format.BookRecordSize {
		return nil, fmt.Errorf("%w: %d records need %d bytes, have %d", ErrCorrupt, n, n*format.BookRecordSize, len(data))
	}
	var b EventsBuilder
	b.Add(data[:n*format.BookRecordSize])
	return b.Events(), nil
}

// EventsBuilder builds an events index from records added in file order, in any number of
// calls: the refinery's index of a sealed book, and the mount's of a book still growing.
type EventsBuilder struct {
	stride  int64
	n       int64
	cur     Anchor
	anchors []Anchor
}

// NewEventsBuilder continues an index: e's anchors are kept and records are added from
// e.Records on (nil starts from an empty book with DefaultStride).
func NewEventsBuilder(e *Events) *EventsBuilder {
	b := &EventsBuilder{}
	if e != nil {
		b.stride, b.n = e.Stride, e.Records
		b.anchors = append([]Anchor(nil), e.Anchors[:len(e.Anchors)-1]...)
		b.cur = e.Totals()
		b.cur.Flags = 0
	}
	return b
}

// Records is the number of records added so far.
func (b *EventsBuilder) Records() int64 { return b.n }

// Add indexes whole records (len(data) a multiple of 64; a partial tail is ignored).
func (b *EventsBuilder) Add(data []byte) {
	if b.stride == 0 {
		b.stride = DefaultStride
	}
	le := binary.LittleEndian
	for off := 0; off+format.BookRecordSize <= len(data); off += format.BookRecordSize {
		r := data[off:]
		typ, fl := le.Uint16(r[0:]), le.Uint16(r[2:])
		var flags uint32
		if b.n%b.stride == 0 {
			flags |= AnchorStride
		}
		if typ == format.TypeSnapshotBegin {
			flags |= AnchorSnapshot
			if fl&format.FlagBookInvalid == 0 {
				flags |= AnchorValid
			}
		}
		if flags != 0 {
			a := b.cur
			a.Record, a.Flags = uint64(b.n), flags
			b.anchors = append(b.anchors, a)
		}
		switch {
		case IsDepthUpdate(typ, fl):
			b.cur.Depth++
		case typ == format.TypeTrade:
			b.cur.Trades++
		case typ == format.TypeBBO:
			b.cur.BBO++
		}
		b.n++
	}
}

// Events returns the index of the records added so far (a new value each call).
func (b *EventsBuilder) Events() *Events {
	stride := b.stride
	if stride == 0 {
		stride = DefaultStride
	}
	end := b.cur
	end.Record, end.Flags = uint64(b.n), AnchorEnd
	as := make([]Anchor, len(b.anchors), len(b.anchors)+1)
	copy(as, b.anchors)
	return &Events{Stride: stride, Records: b.n, Anchors: append(as, end)}
}

// MarshalEvents encodes an events index file.
func MarshalEvents(e *Events) []byte {
	buf := make([]byte, len(e.Anchors)*EventsEntrySize)
	le := binary.LittleEndian
	for i, a := range e.Anchors {
		b := buf[i*EventsEntrySize:]
		le.PutUint64(b[0:], a.Record)
		le.PutUint64(b[8:], a.Depth)
		le.PutUint64(b[16:], a.Trades)
		le.PutUint64(b[24:], a.BBO)
		le.PutUint32(b[32:], a.Flags)
	}
	return append(header(KindEvents, EventsEntrySize, uint64(len(e.Anchors)), uint64(e.Records), e.Stride, buf), buf...)
}

// ParseEvents decodes an events index file; name labels errors. Besides the envelope it
// checks what readers rely on: anchors in strictly increasing record order from record 0
// to an end anchor at the record count, counts that never decrease nor grow faster than
// the records between two anchors, a stride anchor at every multiple of the stride.
func ParseEvents(b []byte, name string) (*Events, error) {
	e, count, records, stride, fail, err := parseStrided(b, name, KindEvents, EventsEntrySize, MaxEventEntries, "anchor")
	if err != nil {
		return nil, err
	}
	if count == 0 {
		return nil, fmt.Errorf("%s: offset 16: %w: no entries (an empty book has its end anchor)", name, ErrCorrupt)
	}
	// Every multiple of the stride below records has its anchor: count them before
	// allocating anything from the entries.
	if want := (int64(records)+stride-1)/stride + 1; int64(count) < want {
		return nil, fmt.Errorf("%s: offset 16: %w: %d anchors, a book of %d records has at least %d", name, ErrCorrupt, count, records, want)
	}
	out := &Events{Stride: stride, Records: int64(records), Anchors: make([]Anchor, count)}
	le := binary.LittleEndian
	for i := range out.Anchors {
		r := e[i*EventsEntrySize:]
		a := Anchor{Record: le.Uint64(r[0:]), Depth: le.Uint64(r[8:]), Trades: le.Uint64(r[16:]), BBO: le.Uint64(r[24:]), Flags: le.Uint32(r[32:])}
		if le.Uint32(r[36:]) != 0 || a.Flags&^uint32(AnchorSnapshot|AnchorValid|AnchorStride|AnchorEnd) != 0 {
			return nil, fail(i, "reserved bits set (flags %#x)", a.Flags)
		}
		if a.Flags&AnchorValid != 0 && a.Flags&AnchorSnapshot == 0 {
			return nil, fail(i, "valid flag without a snapshot")
		}
		last := i == len(out.Anchors)-1
		if (a.Flags&AnchorEnd != 0) != last {
			return nil, fail(i, "end flag %v on anchor %d of %d", a.Flags&AnchorEnd != 0, i, count)
		}
		if last && a.Record != records || !last && a.Record >= records {
			return nil, fail(i, "record %d, book of %d records", a.Record, records)
		}
		stridePoint := int64(a.Record)%stride == 0 && !last
		if (a.Flags&AnchorStride != 0) != stridePoint {
			return nil, fail(i, "stride flag %v at record %d (stride %d)", a.Flags&AnchorStride != 0, a.Record, stride)
		}
		if !last && a.Flags&(AnchorStride|AnchorSnapshot) == 0 {
			return nil, fail(i, "anchor at record %d is neither a stride point nor a snapshot", a.Record)
		}
		if i == 0 {
			if a.Record != 0 || a.Depth != 0 || a.Trades != 0 || a.BBO != 0 {
				return nil, fail(i, "first anchor at record %d with counts %d/%d/%d, want record 0 and none", a.Record, a.Depth, a.Trades, a.BBO)
			}
		} else {
			p := out.Anchors[i-1]
			if a.Record <= p.Record {
				return nil, fail(i, "record %d after %d", a.Record, p.Record)
			}
			if ns := (p.Record/uint64(stride) + 1) * uint64(stride); ns < a.Record {
				return nil, fail(i, "stride point %d between records %d and %d has no anchor", ns, p.Record, a.Record)
			}
			if a.Depth < p.Depth || a.Trades < p.Trades || a.BBO < p.BBO ||
				(a.Depth-p.Depth)+(a.Trades-p.Trades)+(a.BBO-p.BBO) > a.Record-p.Record {
				return nil, fail(i, "counts %d/%d/%d after %d/%d/%d over %d records", a.Depth, a.Trades, a.BBO, p.Depth, p.Trades, p.BBO, a.Record-p.Record)
			}
		}
		out.Anchors[i] = a
	}
	return out, nil
}

// ReadEvents reads partDir/index/events.idx.
func ReadEvents(partDir string) (*Events, error) {
	p := filepath.Join(partDir, Dir, EventsName)
	b, err := readFile(p, HeaderSize+MaxEventEntries*EventsEntrySize)
	if err != nil {
		return nil, err
	}
	return ParseEvents(b, p)
}

// Seek returns the index of the last anchor at or before a row of a view: for depth rows
// (snapshot true) the last snapshot anchor, or the first anchor, with at most row depth
// updates before it; otherwise the last anchor of any kind with at most row rows of
// count(a) before it. The rows of that anchor's stretch are counted from it.
func (e *Events) Seek(row uint64, snapshot bool, count func(Anchor) uint64) int {
	// Binary search for the last anchor with count <= row, then step back to a usable one.
	lo, hi := 0, max(0, len(e.Anchors)-2) // the end anchor is never a start
	for lo < hi {
		m := (lo + hi + 1) / 2
		if count(e.Anchors[m]) <= row {
			lo = m
		} else {
			hi = m - 1
		}
	}
	if snapshot {
		for lo > 0 && e.Anchors[lo].Flags&AnchorSnapshot == 0 {
			lo--
		}
	}
	return lo
}
