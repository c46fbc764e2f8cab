package bookindex

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/chronicle/chronicle/format"
)

// encodeRecords lays records out as a book file's data section does.
func encodeRecords(recs []format.BookRecord) []byte {
	data := make([]byte, len(recs)*format.BookRecordSize)
	for i := range recs {
		recs[i].Put(data[i*format.BookRecordSize:])
	}
	return data
}

// bookRecords makes n records of a book that changes: snapshot runs of many levels (some
// flagged BOOK_INVALID), depth updates on both sides (deletes included, of absent levels
// too), book_invalid records, trades and tickers between them, times that go back, and
// prices and sizes of every magnitude.
func bookRecords(rng *rand.Rand, n int) ([]byte, []format.BookRecord) {
	var recs []format.BookRecord
	ts := int64(1723161600_000_000_000)
	tick := []int64{1, 10, 1_000_000}[rng.IntN(3)]
	mid := rng.Int64N(1<<40) * tick
	if rng.IntN(8) == 0 {
		mid = math.MaxInt64 - 1000*tick // prices near the edge of int64
	}
	level := func(fl uint16, t int64, j int) format.BookRecord {
		side := format.FlagBid
		p := mid - int64(1+rng.IntN(60))*tick
		if rng.IntN(2) == 0 {
			side, p = format.FlagAsk, mid+int64(rng.IntN(60))*tick
		}
		q := rng.Int64N(50) * 1000
		if rng.IntN(50) == 0 {
			q = -q // nonsense, kept exactly
		}
		return format.BookRecord{TypeID: format.TypeLevel, Flags: fl | side, ExchTs: t, RecvTs: t + 5, Seq: uint64(j), Price: p, Qty: q}
	}
	for len(recs) < n {
		ts += rng.Int64N(30_000_000)
		t := ts - rng.Int64N(200_000_000)
		switch x := rng.IntN(40); {
		case x == 0:
			fl := format.FlagSnapshot
			if rng.IntN(4) == 0 {
				fl |= format.FlagBookInvalid
			}
			k := rng.IntN(300)
			recs = append(recs, format.BookRecord{TypeID: format.TypeSnapshotBegin, Flags: fl, ExchTs: t, Aux0: int64(k)})
			if fl&format.FlagBookInvalid == 0 {
				for j := range k {
					recs = append(recs, level(format.FlagSnapshot, t, j))
				}
			}
			recs = append(recs, format.BookRecord{TypeID: format.TypeSnapshotEnd, Flags: format.FlagSnapshot | format.FlagLast, ExchTs: t, Seq: 9})
		case x < 25:
			k := 1 + rng.IntN(12)
			for j := range k {
				var fl uint16
				if j == k-1 {
					fl = format.FlagLast
				}
				recs = append(recs, level(fl, t, len(recs)))
				if rng.IntN(10) == 0 {
					recs = append(recs, format.BookRecord{TypeID: format.TypeTrade, ExchTs: t + 1})
				}
			}
		case x < 30:
			recs = append(recs, format.BookRecord{TypeID: format.TypeTrade, Flags: format.FlagLast, ExchTs: t})
		case x < 37:
			recs = append(recs, format.BookRecord{TypeID: format.TypeBBO, Flags: format.FlagLast, ExchTs: t})
		case x == 37:
			recs = append(recs, format.BookRecord{TypeID: format.TypeBookInvalid, Flags: format.FlagBookInvalid | format.FlagLast, ExchTs: t, Qty: int64(1 + rng.IntN(5))})
		default:
			recs = append(recs, format.BookRecord{TypeID: 42, ExchTs: t}) // a type from the future
		}
	}
	recs = recs[:n]
	return encodeRecords(recs), recs
}

// replayTo is the test's own replay of records [0, end) with maps: the state a checkpoint
// at end must hold, whether end is an event boundary, and the time of each event start.
func replayTo(recs []format.BookRecord, end int) (st BookState, boundary bool) {
	bids, asks := map[int64]int64{}, map[int64]int64{}
	boundary = true
	for _, r := range recs[:end] {
		switch r.TypeID {
		case format.TypeSnapshotBegin:
			bids, asks = map[int64]int64{}, map[int64]int64{}
			if r.Flags&format.FlagBookInvalid == 0 {
				st.Flags |= StateKnown | StateSeeded
				st.Reason, st.Since = 0, 0
			} else if st.Flags&StateKnown != 0 {
				st.Flags &^= StateKnown
				st.Reason, st.Since = 0, r.ExchTs
			}
			boundary = false
		case format.TypeSnapshotEnd:
			st.LastTs, st.LastRecv, st.LastSeq, st.LastFlags = r.ExchTs, r.RecvTs, r.Seq, r.Flags
			boundary = true
		case format.TypeBookInvalid:
			bids, asks = map[int64]int64{}, map[int64]int64{}
			st.Flags &^= StateKnown
			st.Reason, st.Since = r.Qty, r.ExchTs
			st.LastTs, st.LastRecv, st.LastSeq, st.LastFlags = r.ExchTs, r.RecvTs, r.Seq, r.Flags
			boundary = true
		case format.TypeLevel:
			if st.Flags&StateKnown != 0 {
				m := bids
				if r.Flags&format.FlagAsk != 0 {
					m = asks
				}
				if r.Qty == 0 {
					delete(m, r.Price)
				} else {
					m[r.Price] = r.Qty
				}
			}
			last := r.Flags&format.FlagSnapshot == 0 && r.Flags&format.FlagLast != 0
			if last {
				st.LastTs, st.LastRecv, st.LastSeq, st.LastFlags = r.ExchTs, r.RecvTs, r.Seq, r.Flags
			}
			boundary = last
		}
	}
	if st.Flags&StateKnown != 0 {
		for p, q := range bids {
			st.Bids = append(st.Bids, Level{p, q})
		}
		for p, q := range asks {
			st.Asks = append(st.Asks, Level{p, q})
		}
		SortBest(st.Bids, false)
		SortBest(st.Asks, true)
	}
	return st, boundary
}

// eventStarts returns the record and time of every book event's first record.
func eventStarts(recs []format.BookRecord) (at []int, ts []int64) {
	open := false
	for i, r := range recs {
		if !isBookType(r.TypeID) {
			continue
		}
		if !open {
			at, ts = append(at, i), append(ts, r.ExchTs)
		}
		open = !endsEvent(r.TypeID, r.Flags)
	}
	return at, ts
}

// TestBooks: every checkpoint holds the state a replay of the records before it leaves,
// sits at the first event boundary at or after its stride point, and counts what comes
// before it; MinTs, Find and Limit say where the events at or before any instant can be;
// the file round-trips; the streaming builder, fed in pieces, gives the same index.
func TestBooks(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		n              int
		stride, offset int64
	}{{0, 64, 4096}, {1, 64, 4096}, {3000, 1, 0}, {3000, 2, 64}, {700, 16, 4096}, {5000, 64, 4096}, {5000, 100, 0}, {20000, 256, 4096}, {40000, DefaultStride, 4096}} {
		data, recs := bookRecords(rng, tc.n)
		bb := BooksBuilder{Stride: tc.stride, DataOffset: tc.offset}
		bb.Add(data)
		b := bb.Books()
		if b.Records != int64(tc.n) || b.Stride != tc.stride || len(b.Entries) < 1 {
			t.Fatalf("n=%d: %d records, stride %d, %d entries", tc.n, b.Records, b.Stride, len(b.Entries))
		}
		starts, startTs := eventStarts(recs)
		var depth uint64
		di := 0
		for k, c := range b.Entries {
			want, boundary := replayTo(recs, int(c.Record))
			got, err := b.State(k)
			if err != nil {
				t.Fatalf("n=%d checkpoint %d: %v", tc.n, k, err)
			}
			if !reflect.DeepEqual(got, &want) {
				t.Fatalf("n=%d checkpoint %d at record %d:\n got %+v\nwant %+v", tc.n, k, c.Record, got, &want)
			}
			if !boundary {
				t.Fatalf("n=%d checkpoint %d at record %d is inside an event", tc.n, k, c.Record)
			}
			// The stride point: the first record at a file offset multiple of stride*64.
			if off := tc.offset + int64(c.Target)*64; k > 0 && (off%(tc.stride*64) >= 64 || c.Target > c.Record) {
				t.Fatalf("n=%d checkpoint %d: target %d (offset %d) is not a stride point before record %d", tc.n, k, c.Target, off, c.Record)
			}
			for i := int(c.Target); k > 0 && i < int(c.Record); i++ {
				if _, b := replayTo(recs, i); b && slices.Contains(starts, i) {
					t.Fatalf("n=%d checkpoint %d: an event starts at %d, between its target %d and record %d", tc.n, k, i, c.Target, c.Record)
				}
			}
			for ; di < int(c.Record); di++ {
				if IsDepthUpdate(recs[di].TypeID, recs[di].Flags) {
					depth++
				}
			}
			if c.Depth != depth {
				t.Fatalf("n=%d checkpoint %d: %d depth updates before, want %d", tc.n, k, c.Depth, depth)
			}
			end := int64(tc.n)
			if k+1 < len(b.Entries) {
				end = int64(b.Entries[k+1].Record)
			}
			m := int64(math.MaxInt64)
			for j, at := range starts {
				if int64(at) >= int64(c.Record) && int64(at) < end {
					m = min(m, startTs[j])
				}
			}
			if c.MinTs != m {
				t.Fatalf("n=%d checkpoint %d: MinTs %d, want %d", tc.n, k, c.MinTs, m)
			}
			// Checkpoints are at most a stride apart, an event allowing.
			if k > 0 && int64(c.Target)-int64(b.Entries[k-1].Record) > tc.stride && tc.stride > 300 {
				t.Fatalf("n=%d checkpoint %d: %d records after the last", tc.n, k, int64(c.Target)-int64(b.Entries[k-1].Record))
			}
		}
		// Find: the last checkpoint after which an event at or before t starts; every event
		// at or before t starts before Limit of it.
		for range 300 {
			if len(startTs) == 0 {
				break
			}
			t0 := startTs[rng.IntN(len(startTs))] + rng.Int64N(3) - 1
			k := b.Find(t0)
			lim := b.Limit(k)
			for j, at := range starts {
				if startTs[j] <= t0 && int64(at) >= lim {
					t.Fatalf("n=%d: t %d: checkpoint %d limit %d, but the event at %d (time %d) is at or before t", tc.n, t0, k, lim, at, startTs[j])
				}
			}
			if k > 0 {
				found := false
				for j, at := range starts {
					found = found || startTs[j] <= t0 && uint64(at) >= b.Entries[k].Record
				}
				if !found {
					t.Fatalf("n=%d: t %d: checkpoint %d has no event at or before t after it", tc.n, t0, k)
				}
			}
		}
		// The file round-trips; the streaming builder agrees.
		file, err := MarshalBooks(b)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := OpenBooks(bytes.NewReader(file), int64(len(file)), "books.idx")
		if err != nil {
			t.Fatalf("n=%d: %v", tc.n, err)
		}
		if !reflect.DeepEqual(rb.Entries, b.Entries) || !reflect.DeepEqual(rb.suffix, b.suffix) || rb.Records != b.Records || rb.Stride != b.Stride {
			t.Fatalf("n=%d: the file does not round-trip", tc.n)
		}
		for k := range rb.Entries {
			x, err1 := rb.State(k)
			y, err2 := b.State(k)
			if err1 != nil || err2 != nil || !reflect.DeepEqual(x, y) {
				t.Fatalf("n=%d: state %d differs after a round trip: %v %v", tc.n, k, err1, err2)
			}
		}
		var sb Builder
		sb.DataOffset, sb.BooksStride = tc.offset, tc.stride
		for off := 0; off < len(data); {
			k := min(len(data)-off, (1+rng.IntN(500))*format.BookRecordSize)
			if err := sb.Add(data[off : off+k]); err != nil {
				t.Fatal(err)
			}
			if rng.IntN(4) == 0 {
				sb.Books() // a growing book's index, taken now and then
			}
			off += k
		}
		if got := sb.Books(); !reflect.DeepEqual(got.Entries, b.Entries) {
			t.Fatalf("n=%d: the streaming builder's checkpoints differ", tc.n)
		}
	}
}

// TestBuildIndexWrites: BuildIndex gives all four files and Write puts them in index/,
// where ReadBooks finds the book index.
func TestBuildIndexWrites(t *testing.T) {
	data, _ := bookRecords(rand.New(rand.NewPCG(1, 1)), 50_000)
	ix, err := BuildIndex(data, 50_000, format.HeaderSize)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ix.Write(dir); err != nil {
		t.Fatal(err)
	}
	b, f, err := ReadBooks(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !reflect.DeepEqual(b.Entries, ix.Books.Entries) || len(b.Entries) < 3 {
		t.Fatalf("read back %d checkpoints, built %d", len(b.Entries), len(ix.Books.Entries))
	}
	if _, err := ReadEvents(dir); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptBooks: each damage a reader relies on being told about is refused with
// ErrCorrupt naming the file and an offset, checksums resealed so the content checks run.
func TestCorruptBooks(t *testing.T) {
	data, _ := bookRecords(rand.New(rand.NewPCG(7, 8)), 3000)
	b, err := BuildBooks(data, 3000, 4096)
	if err != nil {
		t.Fatal(err)
	}
	b.Stride = 64 // several checkpoints from a small book
	bb := BooksBuilder{Stride: 64, DataOffset: 4096}
	bb.Add(data)
	b = bb.Books()
	good, err := MarshalBooks(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Entries) < 5 {
		t.Fatalf("%d checkpoints", len(b.Entries))
	}
	le := binary.LittleEndian
	table := func(f []byte) []byte { return f[HeaderSize : HeaderSize+len(b.Entries)*BooksEntrySize] }
	reseal := func(f []byte) {
		le.PutUint32(f[40:], crc32.Checksum(table(f), castagnoli))
		le.PutUint32(f[44:], crc32.Checksum(f[:44], castagnoli))
	}
	e := func(i, field int) int { return HeaderSize + i*BooksEntrySize + field }
	known := -1 // a checkpoint of a known book with levels on both sides
	for k, c := range b.Entries {
		if c.Bids > 2 && c.Asks > 2 {
			known = k
			break
		}
	}
	if known < 0 {
		t.Fatal("no checkpoint with levels")
	}
	st := func(f []byte, k int) []byte {
		c := b.Entries[k]
		base := HeaderSize + len(b.Entries)*BooksEntrySize
		return f[base+int(c.Off) : base+int(c.Off)+int(c.Len)]
	}
	resealState := func(f []byte, k int) { le.PutUint32(f[e(k, 44):], crc32.Checksum(st(f, k), castagnoli)); reseal(f) }
	for _, tc := range []struct {
		name  string
		mut   func(f []byte) []byte
		state int // -1: OpenBooks fails; else State(state) fails
	}{
		{"magic", func(f []byte) []byte { f[1] = 'X'; return f }, -1},
		{"count past the file", func(f []byte) []byte {
			le.PutUint64(f[16:], 1<<20)
			le.PutUint32(f[44:], crc32.Checksum(f[:44], castagnoli))
			return f
		}, -1},
		{"too many entries", func(f []byte) []byte {
			le.PutUint64(f[16:], MaxBookEntries+1)
			le.PutUint32(f[44:], crc32.Checksum(f[:44], castagnoli))
			return f
		}, -1},
		{"table checksum", func(f []byte) []byte { f[e(1, 0)]++; return f }, -1},
		{"first not at 0", func(f []byte) []byte { le.PutUint64(f[e(0, 0):], 1); reseal(f); return f }, -1},
		{"records out of order", func(f []byte) []byte { le.PutUint64(f[e(2, 0):], b.Entries[1].Record); reseal(f); return f }, -1},
		{"record past the book", func(f []byte) []byte {
			k := len(b.Entries) - 1
			le.PutUint64(f[e(k, 0):], 3000)
			reseal(f)
			return f
		}, -1},
		{"target after record", func(f []byte) []byte { le.PutUint64(f[e(2, 8):], b.Entries[2].Record+1); reseal(f); return f }, -1},
		{"target before the last record", func(f []byte) []byte { le.PutUint64(f[e(2, 8):], b.Entries[1].Record); reseal(f); return f }, -1},
		{"depth falls", func(f []byte) []byte {
			le.PutUint64(f[e(2, 16):], 0)
			le.PutUint64(f[e(3, 16):], 0)
			le.PutUint64(f[e(1, 16):], 5)
			reseal(f)
			return f
		}, -1},
		{"depth jumps", func(f []byte) []byte {
			le.PutUint64(f[e(2, 16):], b.Entries[1].Depth+b.Entries[2].Record)
			reseal(f)
			return f
		}, -1},
		{"state past the end", func(f []byte) []byte { le.PutUint64(f[e(1, 32):], uint64(len(f))); reseal(f); return f }, -1},
		{"state too short", func(f []byte) []byte { le.PutUint32(f[e(1, 40):], 10); reseal(f); return f }, -1},
		{"levels cannot fit", func(f []byte) []byte { le.PutUint32(f[e(known, 48):], 1<<30); reseal(f); return f }, -1},
		{"stride 0", func(f []byte) []byte { le.PutUint64(f[32:], 0); reseal(f); return f }, -1},
		{"state checksum", func(f []byte) []byte { st(f, known)[50]++; return f }, known},
		{"reserved flags", func(f []byte) []byte { st(f, known)[0] |= 8; resealState(f, known); return f }, known},
		{"levels of an unknown book", func(f []byte) []byte { st(f, known)[0] &^= StateKnown; resealState(f, known); return f }, known},
		{"fewer levels than said", func(f []byte) []byte {
			le.PutUint32(f[e(known, 48):], b.Entries[known].Bids+1)
			resealState(f, known)
			return f
		}, known},
		{"more bytes than levels", func(f []byte) []byte {
			le.PutUint32(f[e(known, 52):], b.Entries[known].Asks-1)
			resealState(f, known)
			return f
		}, known},
		{"zero step", func(f []byte) []byte {
			s := st(f, known)
			_, n := binary.Varint(s[stateFixed:])
			s[stateFixed+n] = 0
			resealState(f, known)
			return f
		}, known},
	} {
		f := tc.mut(slices.Clone(good))
		ib, err := OpenBooks(bytes.NewReader(f), int64(len(f)), "books.idx")
		if tc.state >= 0 && err == nil {
			_, err = ib.State(tc.state)
		}
		if !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte("books.idx: offset ")) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// FuzzBooks: any bytes as a book index are refused or give checkpoints whose states are
// refused or well formed (each side strictly from its best, no empty level); any bytes as
// records give an index that round-trips through its file.
func FuzzBooks(f *testing.F) {
	data, _ := bookRecords(rand.New(rand.NewPCG(9, 9)), 400)
	bb := BooksBuilder{Stride: 16, DataOffset: 4096}
	bb.Add(data)
	good, _ := MarshalBooks(bb.Books())
	f.Add(good, data[:64*40])
	f.Add(good[:200], []byte{})
	f.Fuzz(func(t *testing.T, file, recs []byte) {
		if b, err := OpenBooks(bytes.NewReader(file), int64(len(file)), "books.idx"); err == nil {
			for k := range min(len(b.Entries), 64) {
				s, err := b.State(k)
				if err != nil {
					if !errors.Is(err, ErrCorrupt) {
						t.Fatalf("state %d: %v", k, err)
					}
					continue
				}
				for i, side := range [][]Level{s.Bids, s.Asks} {
					for j := range side {
						if side[j].Qty == 0 || j > 0 && (i == 0) != (side[j].Price < side[j-1].Price) {
							t.Fatalf("state %d: side %d level %d out of order or empty: %v", k, i, j, side)
						}
					}
				}
				if uint32(len(s.Bids)) != b.Entries[k].Bids || uint32(len(s.Asks)) != b.Entries[k].Asks {
					t.Fatalf("state %d: %d+%d levels, entry says %d+%d", k, len(s.Bids), len(s.Asks), b.Entries[k].Bids, b.Entries[k].Asks)
				}
			}
			b.Find(int64(len(file)))
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("open: %v", err)
		}
		n := int64(len(recs) / 64)
		bb := BooksBuilder{Stride: 8, DataOffset: 4096}
		bb.Add(recs)
		b := bb.Books()
		file2, err := MarshalBooks(b)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := OpenBooks(bytes.NewReader(file2), int64(len(file2)), "books.idx")
		if err != nil || rb.Records != n || !reflect.DeepEqual(rb.Entries, b.Entries) {
			t.Fatalf("round trip of %d records: %v", n, err)
		}
		for k := range rb.Entries {
			x, err1 := rb.State(k)
			y, err2 := b.State(k)
			if err1 != nil || err2 != nil || !reflect.DeepEqual(x, y) {
				t.Fatalf("state %d: %v %v", k, err1, err2)
			}
		}
	})
}
