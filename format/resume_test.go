package format

import (
	"os"
	"path/filepath"
	"testing"
)

func rec(i int) BookRecord {
	return BookRecord{TypeID: TypeLevel, Flags: FlagBid | FlagLast, SymbolID: 7, ExchTs: int64(i) * 1000, Seq: uint64(i), Price: int64(100 + i), Qty: int64(i)}
}

func writeN(t *testing.T, a *Appender, from, to int, mod func(*BookRecord)) {
	t.Helper()
	for i := from; i < to; i++ {
		r := rec(i)
		if mod != nil {
			mod(&r)
		}
		if err := a.AppendBook(&r); err != nil {
			t.Fatal(err)
		}
	}
}

// TestResumeAppender: a writer that restarts from an earlier checkpoint regenerates
// records; the file never shrinks while it catches up, same records are not rewritten,
// different ones are counted, and a seal during catch-up trims to what was regenerated.
func TestResumeAppender(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "book.q")
	a, err := Create(p, NewBookHeader("v", "s", 7, 20240808), Options{ChunkSize: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, a, 0, 100, nil)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(p)
	at := int64(HeaderSize + 50*BookRecordSize)
	if _, err := ResumeAppender(p, at+1, Options{ChunkSize: 1 << 16}); err == nil {
		t.Fatal("resumed at a non-record boundary")
	}
	a, err = ResumeAppender(p, at, Options{ChunkSize: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, a, 50, 80, nil)
	if !a.CatchingUp() || a.Committed() != int64(HeaderSize+100*BookRecordSize) {
		t.Fatalf("catching up: committed %d moved", a.Committed())
	}
	writeN(t, a, 80, 110, nil)
	if a.CatchingUp() || a.Diverged() != 0 || a.Committed() != int64(HeaderSize+110*BookRecordSize) {
		t.Fatalf("after catch-up: committed %d diverged %d", a.Committed(), a.Diverged())
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	now, _ := os.ReadFile(p)
	if string(now[HeaderSize:len(orig)]) != string(orig[HeaderSize:]) {
		t.Fatal("records below the old length changed")
	}

	// Different records while catching up are written and counted; sealing mid-way trims.
	a, err = ResumeAppender(p, at, Options{ChunkSize: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, a, 50, 60, func(r *BookRecord) { r.Qty++ })
	writeN(t, a, 60, 70, nil)
	if a.Diverged() != 10 {
		t.Fatalf("diverged %d, want 10", a.Diverged())
	}
	if err := a.Seal(); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(p)
	defer f.Close()
	st, _ := f.Stat()
	h, err := ReadHeader(f, st.Size(), p)
	if err != nil || !h.Sealed || h.Records() != 70 || st.Size() != int64(HeaderSize+70*BookRecordSize) {
		t.Fatalf("sealed: %+v size %d err %v", h, st.Size(), err)
	}
}
