package format

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func seedFiles(f *testing.F) {
	dir := f.TempDir()
	a, err := Create(filepath.Join(dir, "b.q"), NewBookHeader("binance-perp", "eth-usdt", 1, 20240808), Options{ChunkSize: 1 << 16})
	if err != nil {
		f.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		r := testRecord(i)
		a.AppendBook(&r)
	}
	a.Seal()
	j, _ := Create(filepath.Join(dir, "j.q"), NewJournalHeader("binance-perp", "seg"), Options{ChunkSize: 1 << 16})
	for i := 0; i < 4; i++ {
		j.AppendJournal(JournalMessage, 1, int64(i), []byte(`{"e":"depthUpdate","u":1}`)[:i*7])
	}
	j.Seal()
	for _, n := range []string{"b.q", "j.q"} {
		m, _ := MapFile(filepath.Join(dir, n))
		f.Add(bytes.Clone(m.Bytes()))
		m.Close()
	}
}

// mustBeCorruptionOrNil checks the decoder's contract: bad bytes give a *CorruptError.
func mustBeCorruptionOrNil(t *testing.T, err error) {
	var ce *CorruptError
	if err != nil && !errors.As(err, &ce) {
		t.Fatalf("error is not a CorruptError: %v", err)
	}
}

func FuzzParseHeader(f *testing.F) {
	seedFiles(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b, "fuzz.q")
		mustBeCorruptionOrNil(t, err)
		if err != nil {
			return
		}
		// A header that parses re-encodes to the same identity.
		out, err := h.MarshalBinary()
		if err != nil {
			return // e.g. a venue with bytes after a NUL cannot be re-encoded verbatim
		}
		h2, err := ParseHeader(out, "re.q")
		if err != nil || h2 != h {
			t.Fatalf("re-encode: %v\n%+v\n%+v", err, h, h2)
		}
	})
}

func FuzzBookFile(f *testing.F) {
	seedFiles(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		br, err := OpenBook(bytes.NewReader(b), int64(len(b)), "fuzz.q")
		mustBeCorruptionOrNil(t, err)
		if err != nil {
			return
		}
		it := br.Iter()
		n := int64(0)
		for it.Next() {
			n++
		}
		mustBeCorruptionOrNil(t, it.Err())
		if it.Err() == nil && n+it.Skipped() != br.Len() {
			t.Fatalf("iterated %d+%d of %d records", n, it.Skipped(), br.Len())
		}
	})
}

func FuzzJournalFile(f *testing.F) {
	seedFiles(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		it, err := NewJournalIter(bytes.NewReader(b), int64(len(b)), "fuzz.q")
		mustBeCorruptionOrNil(t, err)
		if err != nil {
			return
		}
		last := int64(0)
		for it.Next() {
			r := it.Record()
			if r.Offset <= last || len(r.Payload) > MaxJournalPayload {
				t.Fatalf("frame at %d after %d, payload %d", r.Offset, last, len(r.Payload))
			}
			last = r.Offset
		}
		mustBeCorruptionOrNil(t, it.Err())
	})
}

func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{"2500.12", "0.001", "-1.5", "92233720368.54775807", "1e5", "", ".", "00012.3400000000"} {
		f.Add(s, uint8(8))
	}
	f.Fuzz(func(t *testing.T, s string, dec uint8) {
		v, err := ParseDecimal([]byte(s), dec)
		if err != nil {
			if !errors.Is(err, ErrDecimal) {
				t.Fatalf("error does not wrap ErrDecimal: %v", err)
			}
			return
		}
		// Exactness: formatting and re-parsing gives the same value.
		v2, err := ParseDecimal([]byte(FormatDecimal(v, dec)), dec)
		if err != nil || v2 != v {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, v, FormatDecimal(v, dec), v2, err)
		}
	})
}

// FuzzTailer follows mutated .q files with the live tailer (what the refinery reads the
// journal with): a header that does not parse is refused at open with a *CorruptError;
// otherwise every record comes at a growing offset inside the committed length, every
// error is a *CorruptError, and the walk ends.
func FuzzTailer(f *testing.F) {
	seedFiles(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "f.q")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		tl, err := OpenTailer(p)
		mustBeCorruptionOrNil(t, err)
		if err != nil {
			return
		}
		defer tl.Close()
		last := int64(-1)
		for i := 0; ; i++ {
			if i > len(b) {
				t.Fatalf("more records than bytes: the walk does not end")
			}
			var ok bool
			var off int64
			if tl.Header().Layout == LayoutBook {
				_, ok, err = tl.NextBook()
			} else {
				var r JournalRecord
				r, ok, err = tl.NextJournal()
				off = r.Offset
				if ok && (off <= last || len(r.Payload) > MaxJournalPayload) {
					t.Fatalf("frame at %d after %d, payload %d", off, last, len(r.Payload))
				}
				last = off
			}
			mustBeCorruptionOrNil(t, err)
			if err != nil || !ok {
				break
			}
			if tl.Offset() > tl.Committed() {
				t.Fatalf("read to %d past the committed %d", tl.Offset(), tl.Committed())
			}
		}
	})
}
