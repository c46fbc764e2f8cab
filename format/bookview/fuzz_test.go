package bookview

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"slices"
	"testing"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookindex"
)

// fuzzBook turns fuzz bytes into a book file: every 6 bytes one record (type, flags, a
// price near 1000, a quantity, a time step that may go back), so the fuzzer explores runs,
// gaps, partial events and disorder.
func fuzzBook(in []byte) ([]byte, int64) {
	h := format.NewBookHeader("v", "s", 1, 20240809)
	hdr, _ := h.MarshalBinary()
	ts := int64(1723161600_000_000_000) + 1e9
	var recs []byte
	for i := 0; i+6 <= len(in) && len(recs) < 64*4096; i += 6 {
		r := format.BookRecord{TypeID: uint16(in[i]%7 + 1), Flags: uint16(in[i+1]), ExchTs: ts, Price: 1000 + int64(int8(in[i+2])), Qty: int64(in[i+3] % 4),
			Aux0: int64(in[i+4] % 8)}
		ts += int64(int8(in[i+5])) * 1e6
		var b [64]byte
		r.Put(b[:])
		recs = append(recs, b[:]...)
	}
	n := int64(len(recs) / 64)
	binary.LittleEndian.PutUint64(hdr[24:], uint64(int64(len(hdr))+int64(len(recs)))) // committed
	return append(hdr, recs...), n
}

// FuzzViews: for any records, every view's bytes read at arbitrary offsets and lengths
// equal one whole render, the top-N rows equal the iterator's, the book at any instant
// is answered without a panic, and a fuzzed events index is either refused (ErrCorrupt at
// open or read) or maps rows as the book's own index does.
func FuzzViews(f *testing.F) {
	f.Add([]byte{3, 4, 0, 0, 2, 1, 0, 5, 0, 1, 0, 1, 0, 9, 2, 1, 0, 1, 4, 12, 0, 0, 0, 1}, []byte{}, uint16(7), uint16(100))
	f.Add(bytes.Repeat([]byte{0, 9, 3, 1, 0, 1, 1, 3, 9, 2, 0, 0, 5, 6, 0, 0, 0, 0}, 40), []byte{}, uint16(0), uint16(4000))
	// Checkpoints every few records: replays start from the book index's states.
	oldStride, oldGap := booksStride, reseatGap
	booksStride, reseatGap = 5, 7
	defer func() { booksStride, reseatGap = oldStride, oldGap }()
	f.Fuzz(func(t *testing.T, in, idx []byte, off, length uint16) {
		file, n := fuzzBook(in)
		src := bytes.NewReader(file)
		p, err := Open(src, int64(len(file)), "fuzz", Indexes{SnapsOf: -1})
		if err != nil {
			t.Fatalf("open a well-formed book: %v", err)
		}
		for _, v := range []View{{Kind: KindTop, N: 3}, {Kind: KindTrades}, {Kind: KindBBO}} {
			vf := p.OpenView(v, nil)
			whole := make([]byte, vf.Size())
			if k, err := vf.ReadAt(whole, 0); int64(k) != vf.Size() || err != nil && err != io.EOF {
				t.Fatalf("%s: read %d of %d: %v", v.Name(), k, vf.Size(), err)
			}
			o := int64(off) % (vf.Size() + 1)
			part := make([]byte, length)
			k, err := vf.ReadAt(part, o)
			if err != nil && err != io.EOF || !bytes.Equal(part[:k], whole[o:o+int64(k)]) || o+int64(k) != min(vf.Size(), o+int64(length)) {
				t.Fatalf("%s: read %d at %d: %d bytes, %v", v.Name(), length, o, k, err)
			}
			if v.Kind == KindTop {
				it := p.Top(3, math.MinInt64, math.MaxInt64)
				var rows []byte
				for it.Next() {
					rows = append(rows, encodeRow(it.Row())...)
				}
				if !bytes.Equal(rows, whole[v.DataOffset():]) {
					t.Fatalf("top3: the file's rows differ from the iterator's")
				}
			}
		}
		// The book at instants around every event equals the reference's (and BooksAt's).
		recs := make([]format.BookRecord, n)
		for i := range recs {
			recs[i] = format.DecodeBook(file[len(file)-int(n)*64+i*64:])
		}
		rf := newRef(recs)
		var ts []int64
		for _, e := range rf.events {
			ts = append(ts, e.ts-1, e.ts, e.ts+int64(off))
		}
		slices.Sort(ts)
		lo, hi, _ := p.Day()
		walk := rf.walker()
		for _, t0 := range ts {
			if t0 < lo || t0 >= hi {
				continue
			}
			got, err := p.BookAt(t0, 0)
			if e := sameState(got, err, walk(t0)); e != nil {
				t.Fatalf("book at %d: %v (want %+v)", t0, e, walk(t0))
			}
		}
		walk = rf.walker()
		p.BooksAt(ts, 0, func(t0 int64, got *State, err error) error {
			if t0 >= lo && t0 < hi {
				if e := sameState(got, err, walk(t0)); e != nil {
					t.Fatalf("BooksAt %d: %v", t0, e)
				}
			}
			return nil
		})
		// A fuzzed events index for this book.
		ev, err := bookindex.ParseEvents(idx, "events.idx")
		if err != nil || ev.Records != n {
			return
		}
		q, err := Open(src, int64(len(file)), "fuzz", Indexes{Time: p.st.Load().time, Snapshots: p.Snapshots(), SnapsOf: n, Events: ev})
		if err != nil {
			return
		}
		for _, v := range []View{{Kind: KindTop, N: 2}, {Kind: KindTrades}} {
			vf := q.OpenView(v, nil)
			b := make([]byte, min(vf.Size(), 1<<20))
			if _, err := vf.ReadAt(b, 0); err != nil && err != io.EOF && !errors.Is(err, bookindex.ErrCorrupt) && !errors.Is(err, ErrBadArgument) {
				t.Fatalf("%s with a fuzzed index: %v", v.Name(), err)
			}
		}
	})
}
