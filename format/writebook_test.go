package format

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteBookFile: the one-call writer leaves a sealed book whose records are the ones
// given (read back through OpenBookFile), makes the folders above it, refuses a path that exists (leaving that file alone)
// and leaves nothing behind when a write fails.
func TestWriteBookFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v1", "binance-perp", "eth-usdt", "2024-08-08", "book.q")
	h := NewBookHeader("binance-perp", "eth-usdt", 42, 20240808)
	recs := make([]BookRecord, 300)
	for i := range recs {
		recs[i] = testRecord(i)
	}
	if err := WriteBookFile(path, h, recs, Options{ChunkSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		br, f, err := OpenBookFile(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if st, _ := f.Stat(); st.Size() != HeaderSize+int64(len(recs))*BookRecordSize {
			t.Fatalf("file is %d bytes", st.Size())
		}
		if hh := br.Header(); !hh.Sealed || hh.SymbolID != 42 || hh.Venue != "binance-perp" {
			t.Fatalf("header %+v", hh)
		}
		it := br.Iter()
		i := 0
		for ; it.Next(); i++ {
			if *it.Record() != recs[i] {
				t.Fatalf("record %d: got %+v want %+v", i, *it.Record(), recs[i])
			}
		}
		if it.Err() != nil || i != len(recs) {
			t.Fatalf("%d records read, err %v", i, it.Err())
		}
	}
	check()

	if err := WriteBookFile(path, h, recs[:1], Options{ChunkSize: 1 << 20}); !errors.Is(err, os.ErrExist) {
		t.Fatalf("over an existing book: %v", err)
	}
	check()

	// A book larger than its MaxSize fails part way: no file is left.
	full := filepath.Join(filepath.Dir(path), "full.q")
	err := WriteBookFile(full, h, recs, Options{ChunkSize: 4096, MaxSize: HeaderSize + 10*BookRecordSize})
	if !errors.Is(err, ErrFull) {
		t.Fatalf("past MaxSize: %v", err)
	}
	if _, _, err := OpenBookFile(full); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed write left %s: %v", full, err)
	}
}
