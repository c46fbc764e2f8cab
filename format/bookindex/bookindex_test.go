package bookindex

import (
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// writeBook writes n records whose exchange times wander forward with small reorderings
// (as a refinery's trades and depth updates do) and returns them.
func writeBook(t *testing.T, dir string, rng *rand.Rand, n int) []format.BookRecord {
	t.Helper()
	a, err := format.Create(filepath.Join(dir, BookName), format.NewBookHeader("v", "s", 1, 20240808), format.Options{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var recs []format.BookRecord
	ts := int64(1723161600_000_000_000) - 5e9
	for i := 0; i < n; i++ {
		ts += rng.Int64N(40_000_000)
		r := format.BookRecord{TypeID: format.TypeTrade, ExchTs: ts - rng.Int64N(300_000_000), Seq: uint64(i)}
		if i%97 == 0 {
			r.TypeID, r.Aux0 = format.TypeSnapshotBegin, int64(i%5)
		}
		if err := a.AppendBook(&r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	return recs
}

func build(t *testing.T, dir string) (*Time, []Snapshot) {
	t.Helper()
	m, err := format.MapFile(filepath.Join(dir, BookName))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	h, err := format.ReadHeader(m, m.Size(), "book")
	if err != nil {
		t.Fatal(err)
	}
	ti, snaps, err := Build(m.Bytes()[h.HeaderSize:], h.Records())
	if err != nil {
		t.Fatal(err)
	}
	return ti, snaps
}

func readRange(t *testing.T, dir string, start, end int64) []uint64 {
	t.Helper()
	var got []uint64
	if err := ReadRange(dir, start, end, func(r *format.BookRecord) error { got = append(got, r.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func filter(recs []format.BookRecord, start, end int64) []uint64 {
	var out []uint64
	for _, r := range recs {
		if r.ExchTs >= start && r.ExchTs < end {
			out = append(out, r.Seq)
		}
	}
	return out
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRangeEqualsFilter: for random intervals, a read through the index returns exactly
// the records a full scan keeps, with the index covering all, part or none of the book.
func TestRangeEqualsFilter(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(testenv.Seed(t)), 1))
	dir := t.TempDir()
	recs := writeBook(t, dir, rng, 3000)
	ti, snaps := build(t, dir)
	if err := Write(dir, ti, snaps, nil); err != nil {
		t.Fatal(err)
	}
	back, err := ReadTime(dir)
	if err != nil || back.Base != ti.Base || len(back.Lo) != len(ti.Lo) {
		t.Fatalf("read back %v", err)
	}
	bs, n, err := ReadSnapshots(dir)
	if err != nil || n != 3000 || len(bs) != (3000+96)/97 || bs[1].Record != 97 || bs[1].Levels != 97%5 {
		t.Fatalf("snapshots %d %v %+v", n, err, bs[:2])
	}
	first, last := recs[0].ExchTs, recs[len(recs)-1].ExchTs
	check := func() {
		for i := 0; i < 300; i++ {
			a := first - 2e9 + rng.Int64N(last-first+4e9)
			b := a + rng.Int64N(5e9)
			if i%10 == 0 {
				b = a + rng.Int64N(1000)
			}
			if got, want := readRange(t, dir, a, b), filter(recs, a, b); !equal(got, want) {
				t.Fatalf("[%d,%d): %d records, want %d", a, b, len(got), len(want))
			}
		}
	}
	check()
	// The book grows past its index: the tail is scanned.
	a, err := format.OpenAppender(filepath.Join(dir, BookName), format.Options{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		r := format.BookRecord{TypeID: format.TypeTrade, ExchTs: first + rng.Int64N(last-first), Seq: uint64(10000 + i)}
		if err := a.AppendBook(&r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	a.Close()
	check()
}

func TestCorruptIndex(t *testing.T) {
	ti := &Time{Base: 100, Records: 10, Lo: []uint64{0, 3, 5}, Hi: []uint64{4, 6, 10}}
	good := MarshalTime(ti)
	if _, err := ParseTime(good, "t"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		mut  func([]byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
		{"magic", func(b []byte) []byte { b[0] = 'x'; return b }},
		{"entry bit flip", func(b []byte) []byte { b[HeaderSize+3] ^= 1; return b }},
		{"huge count", func(b []byte) []byte { b[23] = 0x7f; return b }},
	} {
		b := c.mut(append([]byte(nil), good...))
		if _, err := ParseTime(b, "t"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(MarshalTime(&Time{Base: 5, Records: 3, Lo: []uint64{0, 1}, Hi: []uint64{2, 3}}))
	f.Add(MarshalSnapshots([]Snapshot{{ExchTs: 1, Record: 0, Levels: 2}, {ExchTs: 5, Record: 4}}, 9))
	f.Fuzz(func(t *testing.T, b []byte) {
		if ti, err := ParseTime(b, "f"); err == nil {
			lo, hi := ti.Range(0, 1<<62)
			if lo < 0 || hi < lo || hi > ti.Records {
				t.Fatalf("range %d %d of %d", lo, hi, ti.Records)
			}
		}
		if s, n, err := ParseSnapshots(b, "f"); err == nil {
			for _, r := range s {
				if int64(r.Record) >= n {
					t.Fatalf("run past the book")
				}
			}
		}
	})
}
