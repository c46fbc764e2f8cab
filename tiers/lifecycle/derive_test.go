package lifecycle_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/chronicle/chronicle/format"
	lt "github.com/chronicle/chronicle/internal/testkit/lifecycletest"
	"github.com/chronicle/chronicle/tiers/lifecycle"
	"github.com/parquet-go/parquet-go"
)

func parquetOf(t testing.TB, records int) ([]byte, lifecycle.ParquetSum) {
	book := lt.BookBytes(t, key("2024-08-08"), records, 3)
	h, err := format.ParseHeader(book, "book")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sum, err := lifecycle.WriteParquet(context.Background(), bytes.NewReader(book), h, int64(len(book)), &out)
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), sum
}

// TestParquetRoundTrip: the sums written are the sums read back; a damaged file is an
// ErrDerive, never a panic or a silent pass.
func TestParquetRoundTrip(t *testing.T) {
	b, want := parquetOf(t, 5000)
	got, err := lifecycle.ReadParquetSum(bytes.NewReader(b), int64(len(b)), "x.parquet")
	if err != nil || got != want || got.Rows != 5000 {
		t.Fatalf("read back %+v, %v; wrote %+v", got, err, want)
	}
	for _, cut := range []int{0, 4, len(b) / 2, len(b) - 8, len(b) - 1} {
		if _, err := lifecycle.ReadParquetSum(bytes.NewReader(b[:cut]), int64(cut), "cut.parquet"); !errors.Is(err, lifecycle.ErrDerive) {
			t.Fatalf("truncated to %d: %v", cut, err)
		}
	}
}

// TestParquetRowGroups: a file is cut into row groups engines scan in parallel: at least
// eight when it has enough rows, none above 2^20 rows.
func TestParquetRowGroups(t *testing.T) {
	for rows, want := range map[int64]int64{100: 1 << 16, 1 << 19: 1 << 16, 3 << 20: 3 << 17, 100 << 20: 1 << 20} {
		if got := lifecycle.RowGroupRows(rows); got != want {
			t.Errorf("RowGroupRows(%d) = %d, want %d", rows, got, want)
		}
	}
	b, _ := parquetOf(t, 200000)
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.RowGroups()); n != 4 { // 200,000 rows in groups of 65,536
		t.Fatalf("%d row groups, want 4", n)
	}
	for _, rg := range f.RowGroups() {
		if rg.NumRows() > 1<<16 {
			t.Fatalf("a row group of %d rows", rg.NumRows())
		}
	}
}

// TestParquetRangeError: a price DECIMAL(18) cannot hold is ErrDeriveRange.
func TestParquetRangeError(t *testing.T) {
	book := lt.BookBytes(t, key("2024-08-08"), 10, 3)
	h, _ := format.ParseHeader(book, "book")
	r := format.DecodeBook(book[h.HeaderSize:])
	r.Price = 1 << 62
	r.Put(book[h.HeaderSize:])
	var out bytes.Buffer
	_, err := lifecycle.WriteParquet(context.Background(), bytes.NewReader(book), h, int64(len(book)), &out)
	if !errors.Is(err, lifecycle.ErrDeriveRange) || !errors.Is(err, lifecycle.ErrDerive) {
		t.Fatalf("%v", err)
	}
}

// FuzzReadParquetSum: the read-back check never panics, whatever the bytes.
func FuzzReadParquetSum(f *testing.F) {
	b, _ := parquetOf(f, 300)
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte("PAR1\x00\x00\x00\x00PAR1"))
	// A footer length past the end once made parquet-go allocate gigabytes (a "hang").
	f.Add([]byte("PAR1KuCK\xba\x037\x08,\xb1\xda$9PAR1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := lifecycle.ReadParquetSum(bytes.NewReader(b), int64(len(b)), "fuzz.parquet"); err != nil && !errors.Is(err, lifecycle.ErrDerive) {
			t.Fatalf("error does not wrap ErrDerive: %v", err)
		}
	})
}
