package integration

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookindex"
	"github.com/chronicle/chronicle/format/bookview"
	"github.com/chronicle/chronicle/internal/testkit/books"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// writeViewsBook writes a realistic book (books.Gen) of n records with index/ into dir.
func writeViewsBook(t *testing.T, dir string, n int, seed uint64) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	day := time.Date(2024, 8, 9, 0, 0, 0, 0, time.UTC)
	p := filepath.Join(dir, "book.q")
	a, err := format.Create(p, format.NewBookHeader("binance-perp", "eth-usdt", 1001, format.DateOf(day)), format.Options{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	g := books.NewGen(seed, 1001, day)
	var r format.BookRecord
	data := make([]byte, n*64)
	for i := range n {
		g.Next(&r)
		r.Put(data[i*64:])
		if err := a.AppendBook(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Seal(); err != nil {
		t.Fatal(err)
	}
	// index/ as the refinery writes it, but book checkpoints every 2,048 records so that
	// chronicle_q's book_at and grids start from them.
	ix, err := bookindex.BuildIndex(data, int64(n), format.HeaderSize)
	if err != nil {
		t.Fatal(err)
	}
	bb := bookindex.BooksBuilder{Stride: 2048, DataOffset: format.HeaderSize}
	bb.Add(data)
	ix.Books = bb.Books()
	if err := ix.Write(dir); err != nil {
		t.Fatal(err)
	}
}

// rowBytes renders a bookview row iterator as the bytes of a top-N view.
func rowBytes(t *testing.T, it *bookview.RowIter) []byte {
	t.Helper()
	var out []byte
	for it.Next() {
		r := it.Row()
		n := len(r.BidPrice)
		b := make([]byte, 32+32*n)
		le := func(off int, v uint64) {
			for i := range 8 {
				b[off+i] = byte(v >> (8 * i))
			}
		}
		le(0, uint64(r.TsExchange))
		le(8, uint64(r.TsRecv))
		le(16, r.Seq)
		le(24, uint64(r.Flags)|uint64(r.Reason)<<32)
		for k, col := range [][]int64{r.BidPrice, r.BidQty, r.AskPrice, r.AskQty} {
			for j, v := range col {
				le(32+k*8*n+8*j, uint64(v))
			}
		}
		out = append(out, b...)
	}
	if it.Err() != nil {
		t.Fatal(it.Err())
	}
	return out
}

// TestPythonViews: chronicle_q.top_n (its own replay: there is no views/ beside a plain
// directory) gives the bytes bookview gives, per depth update and on a grid; book_at
// agrees with BookAt; replay merges two partitions by exchange time, stable, each
// partition in file order.
func TestPythonViews(t *testing.T) {
	py := testenv.Python(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeViewsBook(t, a, 60000, 1)
	writeViewsBook(t, b, 40000, 2)
	l, err := bookview.OpenDir(a)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lo, hi, _ := l.Span()
	events := rowBytes(t, l.Top(5, math.MinInt64, math.MaxInt64))
	step := int64(250 * time.Millisecond)
	start := (lo + step - 1) / step * step
	grid := rowBytes(t, l.Grid(5, start, hi+1, step))
	mid := lo + (hi-lo)/3
	st, err := l.BookAt(mid, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The whole book at instants across the partition (book_at starts at the book index's
	// checkpoints), as JSON: [t, valid, reason, seq, bids, asks].
	var books []any
	for i := range 24 {
		at := lo - 1e9 + (hi-lo+2e9)*int64(i)/23
		if i%5 == 4 { // exactly at an event, where the cut matters
			it := l.Top(1, at, math.MaxInt64)
			if it.Next() {
				at = it.Row().TsExchange
			}
			it.Close()
		}
		s, err := l.BookAt(at, 0)
		if err != nil {
			books = append(books, []any{at, "error"})
			continue
		}
		lv := func(ls []bookview.Level) [][2]int64 {
			out := [][2]int64{}
			for _, x := range ls {
				out = append(out, [2]int64{x.Price, x.Qty})
			}
			return out
		}
		books = append(books, []any{at, s.Valid, s.Reason, s.Seq, lv(s.Bids), lv(s.Asks)})
	}
	js, _ := json.Marshal(books)
	os.WriteFile(filepath.Join(dir, "books.json"), js, 0o644)
	os.WriteFile(filepath.Join(dir, "events.bin"), events, 0o644)
	os.WriteFile(filepath.Join(dir, "grid.bin"), grid, 0o644)
	script := `
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np, chronicle_q as q
a, b, d, mid, bid0, ask0, nb, na = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])
ev = q.top_n(a, 5)
assert ev.tobytes() == open(d + "/events.bin", "rb").read(), ("event rows", len(ev))
g = q.top_n(a, 5, every="250ms")
assert g.tobytes() == open(d + "/grid.bin", "rb").read(), ("grid rows", len(g))
df = q.to_pandas(g)
assert len(df) == len(g) and "bid_price_4" in df and "mid_f" in df
s = q.book_at(a, mid)
assert s.valid and s.bids[0]["price"] == bid0 and s.asks[0]["price"] == ask0 and len(s.bids) == nb and len(s.asks) == na, s
import json, os
assert os.path.exists(a + "/index/books.idx")
def books_at():
    out = []
    for want in json.load(open(d + "/books.json")):
        try:
            s = q.book_at(a, want[0])
        except q.NoBookError:
            out.append([want[0], "error"])
            continue
        out.append([want[0], s.valid, s.reason, s.seq, s.bids.tolist(), s.asks.tolist()])
    return out
want = [[w[0], "error"] if w[1] == "error" else [w[0], w[1], w[2], w[3], [tuple(x) for x in w[4]], [tuple(x) for x in w[5]]] for w in json.load(open(d + "/books.json"))]
assert books_at() == want, "book_at from the book index's checkpoints differs from bookview"
os.rename(a + "/index/books.idx", a + "/index/books.idx.off")
assert books_at() == want, "book_at from the snapshot runs differs from bookview"
os.rename(a + "/index/books.idx.off", a + "/index/books.idx")
ra, rb = q.open_book(a + "/book.q"), q.open_book(b + "/book.q")
got = np.concatenate(list(q.replay([a, b], chunk=7000)))
assert len(got) == len(ra) + len(rb)
for i, r in enumerate((ra, rb)):
    mine = got[got["source"] == i]
    assert (mine["seq"] == r["seq"]).all() and (mine["ts_exchange"] == r["ts_exchange"]).all(), "file order kept"
key = np.empty(len(got), dtype=np.int64)
for i in (0, 1):
    m = got["source"] == i
    key[m] = np.maximum.accumulate(got["ts_exchange"][m])
assert (np.diff(key) >= 0).all(), "merged by the running maximum of exchange time"
ties = (np.diff(key) == 0) & (np.diff(got["source"].astype(np.int64)) < 0)
assert not ties.any(), "ties by the order of paths"
part = np.concatenate(list(q.replay([a, b], start=mid, end=mid + 10**9)))
assert len(part) and (part["ts_exchange"] >= mid).all() and (part["ts_exchange"] < mid + 10**9).all()
print("ok", len(ev), len(g), len(got))
`
	out, err := exec.Command(py, "-c", script, filepath.Join(testenv.RepoRoot(t), "python"), a, b, dir, strconv.FormatInt(mid, 10),
		strconv.FormatInt(st.Bids[0].Price, 10), strconv.FormatInt(st.Asks[0].Price, 10), strconv.Itoa(len(st.Bids)), strconv.Itoa(len(st.Asks))).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
