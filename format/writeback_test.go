package format

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// TestWriteback: a BookWriter whose full buffers a Writeback writes (Reserve and WriteBook,
// commits and rollbacks at random points, megabytes between some commits) leaves the same
// file, committed length for committed length, as one that writes them itself; and a
// reader never sees past the committed length.
func TestWriteback(t *testing.T) {
	seed := testenv.Seed(t)
	dir := t.TempDir()
	wb := NewWriteback()
	defer wb.Close()
	h := NewBookHeader("v", "s", 1, 20240808)
	h.CreatedNs = 1
	open := func(name string, q *Writeback) *BookWriter {
		w, err := CreateBook(filepath.Join(dir, name), h, Options{ChunkSize: 1 << 20, Writeback: q})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	ws := []*BookWriter{open("sync.q", nil), open("async.q", wb)}
	rnd := rand.New(rand.NewSource(seed))
	var rec BookRecord
	for step := 0; step < 600; step++ {
		n := 1 + rnd.Intn(60)
		if rnd.Intn(40) == 0 {
			n = 20000 + rnd.Intn(40000) // several buffers before the next commit
		}
		recs := make([]BookRecord, n)
		for i := range recs {
			rec.TypeID, rec.Seq, rec.Price = TypeLevel, uint64(step), rnd.Int63()
			recs[i] = rec
		}
		useReserve := rnd.Intn(2) == 0 || n > 1000
		for _, w := range ws {
			if useReserve {
				b, err := w.Reserve(n)
				if err != nil {
					t.Fatal(err)
				}
				for i := range recs {
					recs[i].Put(b[i*BookRecordSize:])
				}
			} else {
				for i := range recs {
					if err := w.WriteBook(&recs[i]); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		switch x := rnd.Intn(10); {
		case x < 6:
			for _, w := range ws {
				if err := w.Commit(); err != nil {
					t.Fatal(err)
				}
			}
		case x < 7:
			for _, w := range ws {
				w.Rollback()
			}
		}
		if a, b := ws[0].Committed(), ws[1].Committed(); a != b {
			t.Fatalf("step %d: committed %d and %d", step, a, b)
		}
	}
	for _, w := range ws {
		if err := w.Seal(); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := os.ReadFile(filepath.Join(dir, "sync.q"))
	b, _ := os.ReadFile(filepath.Join(dir, "async.q"))
	if !bytes.Equal(a, b) {
		t.Fatalf("the files differ (%d and %d bytes)", len(a), len(b))
	}
	if len(a) < 8<<20 {
		t.Fatalf("only %d bytes written: the writeback was hardly used", len(a))
	}
}

// TestWritebackDeviceFull: a write the Writeback's goroutine makes on a full device fails,
// and the writer reports it (ENOSPC) at a later call: nothing past the committed length is
// published, and the file closes at its committed length.
func TestWritebackDeviceFull(t *testing.T) {
	dir := testenv.Tmpfs(t, "4m")
	wb := NewWriteback()
	defer wb.Close()
	path := filepath.Join(dir, "b.q")
	w, err := CreateBook(path, NewBookHeader("v", "s", 1, 20240808), Options{ChunkSize: 1 << 20, Writeback: wb})
	if err != nil {
		t.Fatal(err)
	}
	rec := BookRecord{TypeID: TypeLevel}
	var failed error
	committed := w.Committed()
	for i := 0; i < 200000 && failed == nil; i++ {
		rec.Seq = uint64(i)
		if failed = w.WriteBook(&rec); failed == nil && i%10000 == 9999 {
			if failed = w.Commit(); failed == nil {
				committed = w.Committed()
			}
		}
	}
	if !errors.Is(failed, syscall.ENOSPC) {
		t.Fatalf("filling a 4 MiB device: %v", failed)
	}
	if w.Committed() != committed {
		t.Fatalf("committed %d after the failure, %d before", w.Committed(), committed)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != committed {
		t.Fatalf("closed at %d bytes, committed %d", st.Size(), committed)
	}
}
