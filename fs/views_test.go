package fs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookindex"
	"github.com/chronicle/chronicle/format/bookview"
	"github.com/chronicle/chronicle/internal/testkit"
	"github.com/chronicle/chronicle/internal/testkit/books"
	"github.com/chronicle/chronicle/layout"
)

// genPartition writes a realistic sealed book (books.Gen: depth updates, trades, tickers,
// a snapshot run a minute) of n records into dir, with index/ when index is set, and
// returns the book's bytes.
func genPartition(t *testing.T, dir string, n int64, seed uint64, index bool) []byte {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	p := filepath.Join(dir, layout.BookName)
	day := time.Date(2024, 8, 9, 0, 0, 0, 0, time.UTC)
	a, err := format.Create(p, format.NewBookHeader("binance-perp", "eth-usdt", 1001, format.DateOf(day)), format.Options{ChunkSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	g := books.NewGen(seed, 1001, day)
	var r format.BookRecord
	for range n {
		g.Next(&r)
		if err := a.AppendBook(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Seal(); err != nil {
		t.Fatal(err)
	}
	if index {
		writeIndex(t, dir)
	}
	return testkit.ReadFile(t, p)
}

// writeIndex (re)writes dir/index/ from dir/book.q.
func writeIndex(t *testing.T, dir string) {
	t.Helper()
	m, err := format.MapFile(filepath.Join(dir, layout.BookName))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	h, _ := format.ReadHeader(m, m.Size(), "book")
	data := m.Bytes()[h.HeaderSize:h.Committed]
	ix, err := bookindex.BuildIndex(data, h.Records(), int64(h.HeaderSize))
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, bookindex.Dir))
	if err := ix.Write(dir); err != nil {
		t.Fatal(err)
	}
}

// wantViews renders every view of the partition in dir with bookview directly.
func wantViews(t *testing.T, dir string, views []bookview.View) map[string][]byte {
	t.Helper()
	l, err := bookview.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out := map[string][]byte{}
	for _, v := range views {
		f := l.OpenView(v, nil)
		b := make([]byte, f.Size())
		if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		out[v.Name()] = b
	}
	return out
}

var testViews = []bookview.View{{Kind: bookview.KindTop, N: 1}, {Kind: bookview.KindTop, N: 10}, {Kind: bookview.KindTop, N: 25}, {Kind: bookview.KindTrades}, {Kind: bookview.KindBBO}}

// TestViewsEveryTier: the views of one book placed in every tier (with and without
// index/) read through the mount byte for byte as bookview renders them from the local
// file; stat gives the exact size before any read; the directory lists the configured
// views; other names are ENOENT; the attributes name the view.
func TestViewsEveryTier(t *testing.T) {
	seed := uint64(testkit.Seed(t))
	roots := testkit.Roots(t)
	store := testkit.FileStore(t)
	src := filepath.Join(t.TempDir(), "src")
	book := genPartition(t, src, 150_000, seed, true)
	want := wantViews(t, src, testViews)
	parts := map[layout.Tier]layout.Key{layout.Hot: keyOn("2024-08-10"), layout.Warm: keyOn("2024-08-09"), layout.Cold: keyOn("2024-08-08"), layout.Remote: keyOn("2024-08-07")}
	noIndex := keyOn("2024-08-06") // cold, without index/: indexed when first opened
	for tier, k := range parts {
		switch tier {
		case layout.Hot, layout.Warm:
			root := roots.Hot
			if tier == layout.Warm {
				root = roots.Warm
			}
			testkit.PlacePlain(t, root, k, book)
			writeIndex(t, testkit.PartDir(root, k))
		default:
			testkit.PlaceCold(t, roots.Cold, k, book, 1<<20)
			os.RemoveAll(filepath.Join(testkit.PartDir(roots.Cold, k), bookindex.Dir))
			copyIndex(t, src, testkit.PartDir(roots.Cold, k))
			if tier == layout.Remote {
				testkit.PlaceRemote(t, roots.Cold, store, k)
			}
		}
	}
	testkit.PlaceCold(t, roots.Cold, noIndex, book, 1<<20)
	os.RemoveAll(filepath.Join(testkit.PartDir(roots.Cold, noIndex), bookindex.Dir))
	parts[layout.NumTiers] = noIndex

	tm := mountTiers(t, roots, store, nil)
	for tier, k := range parts {
		dir := tm.path(k, ViewsDir)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if got := fmtNames(names); got != "bbo.npy top1.npy top10.npy top25.npy trades.npy" {
			t.Fatalf("%s: views/ lists %s", tier, got)
		}
		for _, v := range testViews {
			p := filepath.Join(dir, v.Name())
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() != int64(len(want[v.Name()])) {
				t.Fatalf("%s %s: stat size %d, want %d", tier, v.Name(), st.Size(), len(want[v.Name()]))
			}
			if got := readFile(t, p); !bytes.Equal(got, want[v.Name()]) {
				t.Fatalf("%s %s: %d bytes through the mount differ from bookview's %d", tier, v.Name(), len(got), len(want[v.Name()]))
			}
		}
		p := filepath.Join(dir, "top10.npy")
		if got := xattr(t, p, XattrViewN); got != "10" {
			t.Errorf("%s: %s = %q", tier, XattrViewN, got)
		}
		if got, wantSrc := xattr(t, p, XattrViewSource), k.Dir()+"/book.q"; got != wantSrc {
			t.Errorf("%s: %s = %q, want %q", tier, XattrViewSource, got, wantSrc)
		}
		if got := xattr(t, p, XattrSealed); got != "true" {
			t.Errorf("%s: sealed %q", tier, got)
		}
		if tier < layout.NumTiers {
			if got := xattr(t, p, XattrTier); got != tier.String() {
				t.Errorf("%s: tier %q", tier, got)
			}
		}
		for _, bad := range []string{"top7.npy", "top010.npy", "book.npy", "x"} {
			if _, err := os.Stat(filepath.Join(dir, bad)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: views/%s: %v, want ENOENT", tier, bad, err)
			}
		}
	}
	// The partition's listing shows views/ beside book.npy.
	ents, _ := os.ReadDir(tm.path(parts[layout.Warm], ""))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got := fmtNames(names); got != "book.npy book.q index meta.json views" {
		t.Errorf("partition lists %s", got)
	}

	// A remote partition's book index counts as held in memory (a bucket's small files are
	// fetched whole); past views_cache_bytes of them, the least recently used partitions
	// are dropped from the table.
	v := tm.fs.views
	v.mu.Lock()
	_, remoteIn := v.byPath[parts[layout.Remote].Dir()]
	resident := v.resident
	v.maxResident = 1
	v.mu.Unlock()
	if !remoteIn || resident <= 0 {
		t.Fatalf("the remote partition's views: in the table %v, book index bytes counted %d", remoteIn, resident)
	}
	v.drop(parts[layout.Warm].Dir(), nil)
	f, err := os.Open(filepath.Join(tm.path(parts[layout.Warm], ViewsDir), "top10.npy")) // loads the warm partition again
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	v.mu.Lock()
	_, remoteIn = v.byPath[parts[layout.Remote].Dir()]
	resident = v.resident
	v.mu.Unlock()
	if remoteIn || resident != 0 {
		t.Errorf("past the bound: the remote partition still in the table %v, %d bytes counted", remoteIn, resident)
	}
	if got := readFile(t, filepath.Join(tm.path(parts[layout.Remote], ViewsDir), "top1.npy")); !bytes.Equal(got, want["top1.npy"]) {
		t.Errorf("the remote partition's views after it was dropped: %d bytes differ", len(got))
	}
}

func fmtNames(ns []string) string {
	var b bytes.Buffer
	for i, n := range ns {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(n)
	}
	return b.String()
}

func copyIndex(t *testing.T, from, to string) {
	t.Helper()
	for _, n := range []string{bookindex.TimeName, bookindex.SnapshotsName, bookindex.EventsName, bookindex.BooksName} {
		testkit.WriteFileSync(t, filepath.Join(to, bookindex.Dir, n), testkit.ReadFile(t, filepath.Join(from, bookindex.Dir, n)))
	}
}

// TestViewsDamage: a damaged index or book gives EIO on that partition's views and a log
// line; the mount lives and other partitions' views read.
func TestViewsDamage(t *testing.T) {
	roots := testkit.Roots(t)
	src := filepath.Join(t.TempDir(), "src")
	book := genPartition(t, src, 40_000, 3, true)
	good, badIdx, badBook := keyOn("2024-08-09"), keyOn("2024-08-08"), keyOn("2024-08-07")
	badTable, badState := keyOn("2024-08-06"), keyOn("2024-08-05") // index/books.idx damaged
	for _, k := range []layout.Key{good, badIdx, badBook, badTable, badState} {
		b := book
		if k == badBook {
			// Records that claim a huge snapshot run end the book early.
			b = bytes.Clone(book)
			for i := int64(5000); i < 5100; i++ {
				b[format.HeaderSize+i*64] = 4 // snapshot_begin
			}
		}
		testkit.PlacePlain(t, roots.Warm, k, b)
		writeIndex(t, testkit.PartDir(roots.Warm, k))
	}
	ev := filepath.Join(testkit.PartDir(roots.Warm, badIdx), bookindex.Dir, bookindex.EventsName)
	eb := testkit.ReadFile(t, ev)
	eb[len(eb)-3] ^= 0xff
	testkit.WriteFileSync(t, ev, eb)
	// The damaged book's index says what the intact book had: rows the book cannot give.
	copyIndex(t, src, testkit.PartDir(roots.Warm, badBook))
	// A book index whose table, or whose states past the first, fail their checksums.
	bi := filepath.Join(testkit.PartDir(roots.Warm, badTable), bookindex.Dir, bookindex.BooksName)
	bb := testkit.ReadFile(t, bi)
	bb[bookindex.HeaderSize+bookindex.BooksEntrySize+3] ^= 0xff
	testkit.WriteFileSync(t, bi, bb)
	books, bf, err := bookindex.ReadBooks(testkit.PartDir(roots.Warm, badState))
	if err != nil || len(books.Entries) < 2 {
		t.Fatalf("%v, %d checkpoints", err, len(books.Entries))
	}
	bf.Close()
	bi = filepath.Join(testkit.PartDir(roots.Warm, badState), bookindex.Dir, bookindex.BooksName)
	bb = testkit.ReadFile(t, bi)
	base := bookindex.HeaderSize + len(books.Entries)*bookindex.BooksEntrySize
	for _, c := range books.Entries[1:] {
		bb[base+int(c.Off)+int(c.Len)-1] ^= 0xff
	}
	testkit.WriteFileSync(t, bi, bb)
	tm := mountTiers(t, roots, nil, nil)
	if _, err := os.ReadFile(tm.path(badTable, "views/top10.npy")); !errors.Is(err, syscall.EIO) {
		t.Errorf("damaged book index table: %v, want EIO", err)
	}
	// One row near the end replays from the last checkpoint, whose state is damaged.
	v := bookview.View{Kind: bookview.KindTop, N: 10}
	f, err := os.Open(tm.path(badState, "views/top10.npy"))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	if _, err := f.ReadAt(make([]byte, v.RowSize()), st.Size()-v.RowSize()); !errors.Is(err, syscall.EIO) {
		t.Errorf("damaged book index state: %v, want EIO", err)
	}
	f.Close()
	if _, err := os.ReadFile(tm.path(badIdx, "views/top10.npy")); !errors.Is(err, syscall.EIO) {
		t.Errorf("damaged index: %v, want EIO", err)
	}
	if _, err := os.ReadFile(tm.path(badBook, "views/top10.npy")); !errors.Is(err, syscall.EIO) {
		t.Errorf("damaged book: %v, want EIO", err)
	}
	if b, err := os.ReadFile(tm.path(good, "views/top10.npy")); err != nil || int64(len(b)) < 1000 {
		t.Errorf("intact partition: %d bytes, %v", len(b), err)
	}
	if _, err := os.ReadFile(tm.path(badIdx, "book.q")); err != nil {
		t.Errorf("the damaged index's book: %v", err)
	}
}

// TestViewsGrow: the views of a book being written grow with it; each open's header
// counts the rows there are then.
func TestViewsGrow(t *testing.T) {
	roots := testkit.Roots(t)
	k := keyOn("2024-08-09")
	d := testkit.PartDir(roots.Hot, k)
	os.MkdirAll(d, 0o755)
	a, err := format.Create(filepath.Join(d, layout.BookName), format.NewBookHeader(k.Venue, k.Symbol, 1001, 20240809), format.Options{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	g := books.NewGen(5, 1001, time.Date(2024, 8, 9, 0, 0, 0, 0, time.UTC))
	var recs []format.BookRecord
	add := func(n int) {
		var r format.BookRecord
		for range n {
			g.Next(&r)
			recs = append(recs, r)
			if err := a.AppendBook(&r); err != nil {
				t.Fatal(err)
			}
		}
		a.Commit()
	}
	add(20_000)
	tm := mountTiers(t, roots, nil, nil)
	p := tm.path(k, "views/top10.npy")
	v := bookview.View{Kind: bookview.KindTop, N: 10}
	var last int64
	for round := range 4 {
		if round > 0 {
			add(15_000)
		}
		b := readFile(t, p)
		rows := (int64(len(b)) - v.DataOffset()) / v.RowSize()
		if rows <= last || !bytes.Contains(b[:v.DataOffset()], []byte("'shape': ("+strconv.FormatInt(rows, 10)+",)")) {
			t.Fatalf("round %d: %d rows (before %d), header %q", round, rows, last, b[:v.DataOffset()])
		}
		// The rows equal bookview's over the records committed so far.
		dir := t.TempDir()
		w, _ := format.Create(filepath.Join(dir, layout.BookName), format.NewBookHeader(k.Venue, k.Symbol, 1001, 20240809), format.Options{ChunkSize: 1 << 20})
		for i := range recs {
			w.AppendBook(&recs[i])
		}
		w.Seal()
		if want := wantViews(t, dir, []bookview.View{v})[v.Name()]; !bytes.Equal(b, want) {
			t.Fatalf("round %d: rows differ from bookview's", round)
		}
		if got := xattr(t, p, XattrSealed); got != "false" {
			t.Fatalf("growing view sealed = %q", got)
		}
		last = rows
	}
}
