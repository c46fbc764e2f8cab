package bookview

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookindex"
	"github.com/chronicle/chronicle/internal/testkit/books"
)

// ref is the test's own reading of the semantics (docs/format/views.md), written with maps
// and a list of events and nothing of the package: events in file order, each applied
// whole; the book at t is the book after the last event whose first record's time is at
// or before t.
type ref struct {
	recs   []format.BookRecord
	events []refEvent
}

type refEvent struct {
	ts         int64
	first, end int // records [first, end)
	depth      bool
	ended      bool // its last record ends it (the book does not end inside it)
}

type refState struct {
	books.View
	lastTs, lastRecv int64
	lastSeq          uint64
	lastFlags        uint16
}

func newRef(recs []format.BookRecord) *ref {
	r := &ref{recs: recs}
	bookType := func(t uint16) bool {
		return t >= format.TypeLevel && t <= format.TypeBookInvalid && t != format.TypeTrade && t != format.TypeBBO
	}
	for i := 0; i < len(recs); {
		if !bookType(recs[i].TypeID) {
			i++
			continue
		}
		e := refEvent{ts: recs[i].ExchTs, first: i}
		for ; i < len(recs); i++ {
			x := recs[i]
			if !bookType(x.TypeID) {
				continue // trades between the records of an event do not end it
			}
			if x.TypeID == format.TypeBookInvalid || x.TypeID == format.TypeSnapshotEnd ||
				x.TypeID == format.TypeLevel && x.Flags&format.FlagSnapshot == 0 && x.Flags&format.FlagLast != 0 {
				e.depth = x.TypeID == format.TypeLevel
				e.ended = true
				i++
				break
			}
		}
		e.end = i
		r.events = append(r.events, e)
	}
	return r
}

func (r *ref) apply(s *refState, e refEvent) {
	for i := e.first; i < e.end; i++ {
		s.Apply(&r.recs[i])
	}
	// The event's last record says what the last event applied was, when the event ended
	// (a book may end inside one).
	if last := r.recs[e.end-1]; e.ended {
		s.lastTs, s.lastRecv, s.lastSeq, s.lastFlags = last.ExchTs, last.RecvTs, last.Seq, last.Flags
	}
}

func sortedSide(m map[int64]int64, desc bool) []Level {
	var out []Level
	for p, q := range m {
		out = append(out, Level{Price: p, Qty: q})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Price < out[j].Price != desc })
	return out
}

func (s *refState) crossed() bool { return crossedMaps(s.Bids, s.Asks) }

// row encodes the state as a top-n row (the bytes views/topN.npy must hold).
func (s *refState) row(ts int64, n int) []byte {
	b := make([]byte, 32+32*n)
	le := binary.LittleEndian
	le.PutUint64(b[0:], uint64(ts))
	le.PutUint64(b[8:], uint64(s.lastRecv))
	le.PutUint64(b[16:], s.lastSeq)
	flags := uint32(s.lastFlags) & (RowBadTsRecv | RowTsEstimated)
	var reason uint32
	switch {
	case !s.Known:
		flags |= RowInvalid
		reason = uint32(s.Reason)
	case s.crossed():
		flags |= RowCrossed
	}
	le.PutUint32(b[24:], flags)
	le.PutUint32(b[28:], reason)
	if s.Known {
		for side, lv := range [][]Level{sortedSide(s.Bids, true), sortedSide(s.Asks, false)} {
			for i := 0; i < n && i < len(lv); i++ {
				le.PutUint64(b[32+side*16*n+8*i:], uint64(lv[i].Price))
				le.PutUint64(b[32+side*16*n+8*n+8*i:], uint64(lv[i].Qty))
			}
		}
	}
	return b
}

// rows returns every top-n event row, encoded.
func (r *ref) rows(n int) [][]byte {
	s := &refState{}
	var out [][]byte
	for _, e := range r.events {
		r.apply(s, e)
		if e.depth {
			out = append(out, s.row(r.recs[e.end-1].ExchTs, n))
		}
	}
	return out
}

// walker returns the state at instants asked in increasing order: every event up to the
// last one (in file order) with ts <= t.
func (r *ref) walker() func(t int64) *refState {
	// sufmin[i] is the smallest time of events i..: the last event at or before t is the
	// largest i with sufmin[i] <= t.
	sufmin := make([]int64, len(r.events)+1)
	sufmin[len(r.events)] = math.MaxInt64
	for i := len(r.events) - 1; i >= 0; i-- {
		sufmin[i] = min(r.events[i].ts, sufmin[i+1])
	}
	s, done := &refState{}, 0
	return func(t int64) *refState {
		k := sort.Search(len(r.events), func(i int) bool { return sufmin[i] > t }) // events before k have one at or after them <= t
		for ; done < k; done++ {
			r.apply(s, r.events[done])
		}
		return s
	}
}

// sameState compares a BookAt result with the reference.
func sameState(got *State, err error, want *refState) error {
	if !want.Seeded {
		var nb *NoBookError
		if !errors.As(err, &nb) || !errors.Is(err, ErrNoBook) {
			return fmt.Errorf("want no book, got %+v, %v", got, err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if got.Valid != want.Known || got.Reason != want.Reason || got.Seq != want.lastSeq || got.AsOf != want.lastTs {
		return fmt.Errorf("state valid %v reason %d seq %d asof %d, want %v %d %d %d", got.Valid, got.Reason, got.Seq, got.AsOf, want.Known, want.Reason, want.lastSeq, want.lastTs)
	}
	if !want.Known {
		if len(got.Bids)+len(got.Asks) != 0 {
			return fmt.Errorf("invalid book with levels")
		}
		return nil
	}
	if got.Crossed != want.crossed() {
		return fmt.Errorf("crossed %v, want %v", got.Crossed, want.crossed())
	}
	if fmt.Sprint(got.Bids) != fmt.Sprint(sortedSide(want.Bids, true)) || fmt.Sprint(got.Asks) != fmt.Sprint(sortedSide(want.Asks, false)) {
		return fmt.Errorf("levels differ:\n got bids %v\nwant bids %v\n got asks %v\nwant asks %v", got.Bids, sortedSide(want.Bids, true), got.Asks, sortedSide(want.Asks, false))
	}
	return nil
}

// encodeRow is a row's bytes as the rows view lays them out (docs/format/views.md).
func encodeRow(r *Row) []byte {
	n := len(r.BidPrice)
	b := make([]byte, 32+32*n)
	le := binary.LittleEndian
	le.PutUint64(b[0:], uint64(r.TsExchange))
	le.PutUint64(b[8:], uint64(r.TsRecv))
	le.PutUint64(b[16:], r.Seq)
	le.PutUint32(b[24:], r.Flags)
	le.PutUint32(b[28:], r.Reason)
	for i, col := range [][]int64{r.BidPrice, r.BidQty, r.AskPrice, r.AskQty} {
		for j, v := range col {
			le.PutUint64(b[32+i*8*n+8*j:], uint64(v))
		}
	}
	return b
}

// readAll reads a view file with reads of random sizes at increasing offsets.
func readAll(t *testing.T, f io.ReaderAt, size int64, rng *rand.Rand) []byte {
	t.Helper()
	out := make([]byte, size)
	for off := int64(0); off < size; {
		k := min(size-off, 1+rng.Int64N(5000))
		n, err := f.ReadAt(out[off:off+k], off)
		if int64(n) != k || err != nil && !(err == io.EOF && off+k == size) {
			t.Fatalf("read %d at %d: %d, %v", k, off, n, err)
		}
		off += k
	}
	return out
}

type fixture struct {
	name string
	recs []format.BookRecord
	ref  *ref
}

func fixtures(t *testing.T) []fixture {
	var out []fixture
	for i, c := range []struct {
		n       int
		invalid bool
	}{{3000, false}, {20000, true}, {40000, false}} {
		recs := genBook(uint64(11+i), c.n, c.invalid)
		out = append(out, fixture{name: fmt.Sprintf("n%d-invalidstart%v", c.n, c.invalid), recs: recs, ref: newRef(recs)})
	}
	return out
}

// TestViewsMatchReference: for books with and without index/, every row of the top-N
// views (through the iterator and through the files' bytes read in pieces) equals the
// reference's book after that depth update, the typed views hold exactly the trade and
// bbo records, and every book at an instant equals the reference's, at every event time,
// just before it, and at 1000 random instants.
func TestViewsMatchReference(t *testing.T) {
	old, oldStride, oldGap := segmentRows, booksStride, reseatGap
	segmentRows = 700 // stretches between runs are served in several parts
	defer func() { segmentRows, booksStride, reseatGap = old, oldStride, oldGap }()
	for _, fx := range fixtures(t) {
		for _, index := range []bool{true, false} {
			// The book index at the default stride (a checkpoint per 16,384 records: the
			// refinery's file) and at a small one, so that replays start from checkpoints
			// everywhere (and walks through many instants jump to them); built in memory
			// at the small one.
			strides := []int64{0, 64}
			if !index {
				strides = strides[1:]
			}
			for _, stride := range strides {
				booksStride, reseatGap = stride, 4096
				if stride > 0 {
					reseatGap = 3 * stride
				}
				t.Run(fmt.Sprintf("%s/index=%v/books-stride=%d", fx.name, index, stride), func(t *testing.T) {
					dir := t.TempDir()
					writeBook(t, dir, fx.recs, index)
					l, err := OpenDir(dir)
					if err != nil {
						t.Fatal(err)
					}
					defer l.Close()
					seed := uint64(len(fx.recs))
					rng := rand.New(rand.NewPCG(seed, 3))
					t.Logf("seed %d", seed)
					checkViews(t, l.Partition, fx.ref, fx.recs, rng)
					checkBookAt(t, l.Partition, fx.ref, rng, 400)
					// The same through a plain reader (what a cold or remote handle is): scans in
					// chunks with read-ahead, cut at the instant's bound.
					f, err := os.Open(filepath.Join(dir, bookindex.BookName))
					if err != nil {
						t.Fatal(err)
					}
					defer f.Close()
					ix, err := LoadIndexes(dir, func(rel string, max int64) ([]byte, error) { return format.ReadFileLimit(filepath.Join(dir, rel), max) })
					if err != nil {
						t.Fatal(err)
					}
					h := l.Header()
					pr, err := Open(f, h.DataStart()+l.Records()*format.BookRecordSize, "plain", ix)
					if err != nil {
						t.Fatal(err)
					}
					checkBookAt(t, pr, fx.ref, rng, 200)
					if b := pr.Books(); stride > 0 && len(b.Entries) < int(l.Records()/stride/2) {
						t.Fatalf("%d checkpoints for %d records at stride %d", len(b.Entries), l.Records(), stride)
					}
				})
			}
		}
	}
}

func checkViews(t *testing.T, p *Partition, rf *ref, recs []format.BookRecord, rng *rand.Rand) {
	t.Helper()
	for _, n := range []int{1, 5, 25} {
		want := rf.rows(n)
		it := p.Top(n, math.MinInt64, math.MaxInt64)
		i := 0
		for it.Next() {
			if i >= len(want) || !bytes.Equal(encodeRow(it.Row()), want[i]) {
				t.Fatalf("top%d row %d: iterator %+v, want %x", n, i, *it.Row(), want[min(i, len(want)-1)])
			}
			i++
		}
		if it.Err() != nil || i != len(want) {
			t.Fatalf("top%d: %d rows (%v), want %d", n, i, it.Err(), len(want))
		}
		v := View{Kind: KindTop, N: n}
		f := p.OpenView(v, nil)
		if f.Rows() != int64(len(want)) || f.Size() != v.DataOffset()+int64(len(want))*v.RowSize() {
			t.Fatalf("top%d: %d rows, size %d", n, f.Rows(), f.Size())
		}
		b := readAll(t, f, f.Size(), rng)
		whole := make([]byte, f.Size()) // one read: whole segments, not the small-read path
		if k, err := f.ReadAt(whole, 0); int64(k) != f.Size() || err != nil && err != io.EOF || !bytes.Equal(whole, b) {
			t.Fatalf("top%d: one whole read differs from reads in pieces (%d bytes, %v)", n, k, err)
		}
		if !bytes.Equal(b[:v.DataOffset()], v.Header(int64(len(want)))) {
			t.Fatalf("top%d: header differs", n)
		}
		for i, w := range want {
			got := b[v.DataOffset()+int64(i)*v.RowSize():][:v.RowSize()]
			if !bytes.Equal(got, w) {
				t.Fatalf("top%d row %d of the file: %x, want %x", n, i, got, w)
			}
		}
		// Random rows, each alone.
		for range 200 {
			i := rng.Int64N(int64(len(want)))
			got := make([]byte, v.RowSize())
			if _, err := f.ReadAt(got, v.DataOffset()+i*v.RowSize()); err != nil || !bytes.Equal(got, want[i]) {
				t.Fatalf("top%d random row %d: %v", n, i, err)
			}
		}
	}
	for _, v := range []View{{Kind: KindTrades}, {Kind: KindBBO}} {
		typ := format.TypeTrade
		if v.Kind == KindBBO {
			typ = format.TypeBBO
		}
		var want []byte
		for _, r := range recs {
			if r.TypeID == typ {
				var b [64]byte
				r.Put(b[:])
				want = append(want, b[:]...)
			}
		}
		f := p.OpenView(v, nil)
		b := readAll(t, f, f.Size(), rng)
		if !bytes.Equal(b[v.DataOffset():], want) || f.Rows() != int64(len(want)/64) {
			t.Fatalf("%s: %d rows, want %d", v.Name(), f.Rows(), len(want)/64)
		}
	}
}

func checkBookAt(t *testing.T, p *Partition, rf *ref, rng *rand.Rand, k int) {
	t.Helper()
	lo, hi, _ := p.Day()
	var ts []int64
	for range min(k, len(rf.events)) { // at events and just before them, where the cut matters
		e := rf.events[rng.IntN(len(rf.events))]
		ts = append(ts, e.ts, e.ts-1)
	}
	first, last := rf.recs[0].ExchTs, rf.recs[len(rf.recs)-1].ExchTs
	for range k {
		ts = append(ts, first-2e9+rng.Int64N(last-first+4e9))
	}
	ts = append(ts, lo, hi-1)
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	walk := rf.walker()
	for _, x := range ts {
		got, err := p.BookAt(x, 0)
		if x < lo || x >= hi {
			if !errors.Is(err, ErrOutsideDay) {
				t.Fatalf("book at %s, outside the day: %v", FormatTime(x), err)
			}
			continue
		}
		if e := sameState(got, err, walk(x)); e != nil {
			t.Fatalf("book at %d (%s): %v", x, FormatTime(x), e)
		}
	}
	// BooksAt walks the same instants in one pass and gives the same answers.
	walk = rf.walker()
	err := p.BooksAt(ts, 0, func(x int64, got *State, err error) error {
		if x < lo || x >= hi {
			if !errors.Is(err, ErrOutsideDay) {
				return fmt.Errorf("outside the day: %v", err)
			}
			return nil
		}
		if e := sameState(got, err, walk(x)); e != nil {
			return fmt.Errorf("BooksAt %s: %v", FormatTime(x), e)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The grid gives the book at each point.
	step := (last - first) / 300
	it := p.Grid(3, first-step*3, last+step, step)
	g := first - step*3
	walk = rf.walker()
	for it.Next() {
		r := it.Row()
		want := walk(g)
		if r.TsExchange != g || !bytes.Equal(encodeRow(r), want.row(g, 3)) {
			t.Fatalf("grid point %d: %+v", g, *r)
		}
		g += step
	}
	if it.Err() != nil || g < last+step {
		t.Fatalf("grid stopped at %d: %v", g, it.Err())
	}
}

// TestGrowing: a book read while it is written serves, after each Refresh, exactly the
// rows of the records committed so far, and views opened earlier keep their header's
// count while their size grows.
func TestGrowing(t *testing.T) {
	recs := genBook(5, 30000, false)
	rf := newRef(recs)
	dir := t.TempDir()
	p := filepath.Join(dir, bookindex.BookName)
	a, err := format.Create(p, format.NewBookHeader("binance-perp", "eth-usdt", 7, 20240809), format.Options{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var part *Partition
	var early *ViewFile
	v := View{Kind: KindTop, N: 4}
	rng := rand.New(rand.NewPCG(1, 1))
	for done := 0; done < len(recs); {
		k := min(len(recs)-done, 1+rng.IntN(4000))
		for i := done; i < done+k; i++ {
			if err := a.AppendBook(&recs[i]); err != nil {
				t.Fatal(err)
			}
		}
		a.Commit()
		done += k
		if part == nil {
			if part, err = Open(f, a.Committed(), p, Indexes{SnapsOf: -1}); err != nil {
				t.Fatal(err)
			}
			early = part.OpenView(v, nil)
		} else if err := part.Refresh(a.Committed()); err != nil {
			t.Fatal(err)
		}
		want := newRef(recs[:done]).rows(4)
		vf := part.OpenView(v, nil)
		b := readAll(t, vf, vf.Size(), rng)
		if int64(len(want)) != vf.Rows() || !bytes.Equal(b[v.DataOffset():], bytes.Join(want, nil)) {
			t.Fatalf("after %d records: %d rows, want %d, or different bytes", done, vf.Rows(), len(want))
		}
		if early.Size() != vf.Size() || !bytes.Equal(readAll(t, early, early.Size(), rng)[v.DataOffset():], b[v.DataOffset():]) {
			t.Fatalf("the early view does not grow with the book")
		}
	}
	a.Close()
	checkBookAt(t, part, rf, rng, 200)
}

// TestErrors: each bad request is refused with an error that names it.
func TestErrors(t *testing.T) {
	recs := genBook(2, 5000, true)
	dir := t.TempDir()
	writeBook(t, dir, recs, true)
	l, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.BookAt(0, 10); !errors.Is(err, ErrOutsideDay) {
		t.Errorf("t=0: %v", err)
	}
	_, err = l.BookAt(recs[0].ExchTs, 10)
	var nb *NoBookError
	if !errors.As(err, &nb) || !nb.Has {
		t.Fatalf("before the first run: %v", err)
	}
	if first, ferr := l.BookAt(nb.First, 10); ferr != nil || !first.Valid {
		t.Errorf("at the first instant named (%s): %+v %v", FormatTime(nb.First), first, ferr)
	}
	t.Logf("%v", err)
	for _, it := range []*RowIter{l.Top(0, 0, 1), l.Grid(5, 0, 10, 0), l.Top(MaxDepth+1, 0, 1)} {
		if it.Next() || !errors.Is(it.Err(), ErrBadArgument) {
			t.Errorf("iterator: %v", it.Err())
		}
	}
	for _, name := range []string{"top0.npy", "top01.npy", "top-1.npy", "top1001.npy", "top10", "top10.npy.x", "trades", "book.npy"} {
		if _, ok := ParseName(name); ok {
			t.Errorf("%s parses as a view", name)
		}
	}
	if v, ok := ParseName("top25.npy"); !ok || v.N != 25 || v.Name() != "top25.npy" {
		t.Errorf("top25.npy: %+v %v", v, ok)
	}
	// An index built from more records than the book holds is damage.
	data := make([]byte, 64*len(recs))
	for i := range recs {
		recs[i].Put(data[i*64:])
	}
	ev, _ := bookindex.BuildEvents(data, int64(len(recs)))
	short := t.TempDir()
	writeBook(t, short, recs[:len(recs)/2], true)
	os.WriteFile(filepath.Join(short, bookindex.Dir, bookindex.EventsName), bookindex.MarshalEvents(ev), 0o644)
	if _, err := OpenDir(short); !errors.Is(err, bookindex.ErrCorrupt) {
		t.Errorf("index longer than its book: %v", err)
	}
	// A damaged index names its file.
	os.WriteFile(filepath.Join(short, bookindex.Dir, bookindex.EventsName), []byte("garbage"), 0o644)
	if _, err := OpenDir(short); !errors.Is(err, bookindex.ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte("events.idx")) {
		t.Errorf("damaged index: %v", err)
	}
}
