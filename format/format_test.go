package format

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// testRecord returns a deterministic record i with every field populated.
func testRecord(i int) BookRecord {
	types := []uint16{TypeLevel, TypeTrade, TypeBBO, TypeSnapshotBegin, TypeSnapshotEnd, TypeBookInvalid}
	return BookRecord{
		TypeID:   types[i%len(types)],
		Flags:    uint16(i) & (FlagBid | FlagAsk | FlagSnapshot | FlagLast | FlagBookInvalid),
		SymbolID: uint32(7 + i%3),
		ExchTs:   1723161256000000000 + int64(i)*1000,
		RecvTs:   1723161254800000000 + int64(i)*997,
		Seq:      uint64(5_000_000_000 + i),
		Price:    250012000000 + int64(i%100)*1000000,
		Qty:      int64(i) * 100000,
		Aux0:     -int64(i),
		Aux1:     int64(i) << 20,
	}
}

func newBook(t testing.TB, dir string) (*Appender, string) {
	t.Helper()
	path := filepath.Join(dir, "book.q")
	h := NewBookHeader("binance-perp", "eth-usdt", 42, 20240808)
	h.SymbolVersionID = 3
	a, err := Create(path, h, Options{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return a, path
}

func TestHeaderRoundTrip(t *testing.T) {
	h := NewBookHeader("binance-perp", "btc-usdt", 1, 20240124)
	h.SymbolVersionID = 9
	h.CreatedNs = 123
	h.Committed = HeaderSize + 64*10
	h.Sealed = true
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != HeaderSize {
		t.Fatalf("header is %d bytes", len(b))
	}
	got, err := ParseHeader(b, "x")
	if err != nil {
		t.Fatal(err)
	}
	if got != h {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, h)
	}
	if got.Records() != 10 || got.DateTime() != time.Date(2024, 1, 24, 0, 0, 0, 0, time.UTC) {
		t.Fatalf("records %d date %v", got.Records(), got.DateTime())
	}
}

func TestHeaderRejectsBadInput(t *testing.T) {
	h := NewBookHeader("v", "s", 1, 0)
	good, _ := h.MarshalBinary()
	mut := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	cases := []struct {
		name string
		b    []byte
		want error
		off  int64
	}{
		{"magic", mut(func(b []byte) { b[1] = 'X' }), ErrBadMagic, 0},
		{"version", mut(func(b []byte) { b[offVersion] = 9 }), ErrUnsupportedVersion, offVersion},
		{"crc", mut(func(b []byte) { b[offVenue] = 'w' }), ErrHeaderChecksum, offCRC},
		{"short", good[:100], ErrTruncated, 0},
		{"empty", nil, ErrTruncated, 0},
		{"committed not multiple", mut(func(b []byte) { b[offCommitted] = 1 }), ErrRecordSize, offCommitted},
	}
	for _, c := range cases {
		_, err := ParseHeader(c.b, "bad.q")
		var ce *CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want CorruptError wrapping %v", c.name, err, c.want)
			continue
		}
		if ce.File != "bad.q" || ce.Offset != c.off {
			t.Errorf("%s: error names %s@%d, want bad.q@%d", c.name, ce.File, ce.Offset, c.off)
		}
	}
	// A record size that does not match the layout is refused even with a valid checksum.
	b := mut(func(b []byte) { b[offRecordSize] = 32 })
	b[offCRC], b[offCRC+1], b[offCRC+2], b[offCRC+3] = 0, 0, 0, 0
	crc := headerCRC(b)
	b[offCRC], b[offCRC+1], b[offCRC+2], b[offCRC+3] = byte(crc), byte(crc>>8), byte(crc>>16), byte(crc>>24)
	if _, err := ParseHeader(b, "x"); !errors.Is(err, ErrRecordSize) {
		t.Errorf("record size 32 for book: %v", err)
	}
}

func TestBookAppendReadAllTypes(t *testing.T) {
	a, path := newBook(t, t.TempDir())
	const n = 50000 // crosses several 1 MiB chunks
	for i := 0; i < n; i++ {
		r := testRecord(i)
		if err := a.AppendBook(&r); err != nil {
			t.Fatal(err)
		}
	}
	if a.Committed() != HeaderSize+n*BookRecordSize {
		t.Fatalf("committed %d", a.Committed())
	}
	if err := a.Seal(); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Size() != HeaderSize+n*BookRecordSize {
		t.Fatalf("sealed file is %d bytes", st.Size())
	}
	for _, via := range []string{"file", "mmap"} {
		f, _ := os.Open(path)
		defer f.Close()
		var src interface {
			ReadAt([]byte, int64) (int, error)
		} = f
		if via == "mmap" {
			m, err := MapFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			src = m
		}
		br, err := OpenBook(src, st.Size(), path)
		if err != nil {
			t.Fatal(err)
		}
		h := br.Header()
		if !h.Sealed || h.SymbolID != 42 || h.Venue != "binance-perp" || h.SymbolCode != "eth-usdt" || h.SymbolVersionID != 3 {
			t.Fatalf("header %+v", h)
		}
		it := br.Iter()
		i := 0
		for it.Next() {
			if want := testRecord(i); *it.Record() != want {
				t.Fatalf("%s record %d: got %+v want %+v", via, i, *it.Record(), want)
			}
			i++
		}
		if it.Err() != nil || i != n {
			t.Fatalf("%s: read %d records, err %v", via, i, it.Err())
		}
		if r, err := br.Record(n - 1); err != nil || r != testRecord(n-1) {
			t.Fatalf("random access: %+v %v", r, err)
		}
	}
}

func TestUnknownTypesSkipped(t *testing.T) {
	a, path := newBook(t, t.TempDir())
	for i := 0; i < 10; i++ {
		r := testRecord(i)
		if i%2 == 1 {
			r.TypeID = 999 // a future record version
		}
		a.AppendBook(&r)
	}
	a.Seal()
	m, _ := MapFile(path)
	defer m.Close()
	br, _ := OpenBook(m, m.Size(), path)
	it := br.Iter()
	n := 0
	for it.Next() {
		if it.Record().TypeID == 999 {
			t.Fatal("unknown type returned")
		}
		n++
	}
	if n != 5 || it.Skipped() != 5 {
		t.Fatalf("read %d skipped %d", n, it.Skipped())
	}
}

func TestCommitIsAtomicPerEvent(t *testing.T) {
	a, path := newBook(t, t.TempDir())
	r := testRecord(0)
	a.WriteBook(&r)
	a.WriteBook(&r)
	tl, err := OpenTailer(path)
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	if _, ok, _ := tl.NextBook(); ok {
		t.Fatal("uncommitted record visible")
	}
	a.Commit()
	for i := 0; i < 2; i++ {
		if _, ok, err := tl.NextBook(); !ok || err != nil {
			t.Fatalf("record %d after commit: %v %v", i, ok, err)
		}
	}
	a.WriteBook(&r)
	a.Rollback()
	a.Close()
	st, _ := os.Stat(path)
	if st.Size() != HeaderSize+2*BookRecordSize {
		t.Fatalf("rolled back write kept: size %d", st.Size())
	}
}

func TestReopenResumes(t *testing.T) {
	dir := t.TempDir()
	a, path := newBook(t, dir)
	for i := 0; i < 100; i++ {
		r := testRecord(i)
		a.AppendBook(&r)
	}
	a.Close()
	a, err := OpenAppender(path, Options{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := 100; i < 200; i++ {
		r := testRecord(i)
		a.AppendBook(&r)
	}
	if err := a.Seal(); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenAppender(path, Options{}); !errors.Is(err, ErrSealed) {
		t.Fatalf("reopen sealed: %v", err)
	}
	checkBookSequence(t, path, 200)
	if _, err := Create(path, NewBookHeader("v", "s", 1, 0), Options{}); !errors.Is(err, os.ErrExist) {
		t.Fatalf("create over existing: %v", err)
	}
}

// mapBook maps a book file and opens it; the caller closes the mapping.
func mapBook(tb testing.TB, path string) (*Mapped, *BookReader) {
	tb.Helper()
	m, err := MapFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	br, err := OpenBook(m, m.Size(), path)
	if err != nil {
		m.Close()
		tb.Fatal(err)
	}
	return m, br
}

func checkBookSequence(t *testing.T, path string, want int) {
	t.Helper()
	m, br := mapBook(t, path)
	defer m.Close()
	it := br.Iter()
	i := 0
	for it.Next() {
		if *it.Record() != testRecord(i) {
			t.Fatalf("record %d: %+v", i, *it.Record())
		}
		i++
	}
	if it.Err() != nil || (want >= 0 && i != want) {
		t.Fatalf("read %d records, want %d, err %v", i, want, it.Err())
	}
}

func journalPayload(i int) []byte {
	n := (i * 37) % 3000
	if i%1000 == 999 {
		n = 200000 // a REST snapshot sized frame
	}
	p := make([]byte, n)
	for j := range p {
		p[j] = byte(i + j)
	}
	return p
}

func TestJournalRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.q")
	a, err := Create(path, NewJournalHeader("binance-perp", "seg"), Options{ChunkSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := 0; i < n; i++ {
		if err := a.AppendJournal(uint16(1+i%6), uint16(i%4), int64(i)*10, journalPayload(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.AppendBook(&BookRecord{}); !errors.Is(err, ErrWrongLayout) {
		t.Fatalf("book record into journal: %v", err)
	}
	if err := a.AppendJournal(1, 0, 0, make([]byte, MaxJournalPayload+1)); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	a.Close()
	f, _ := os.Open(path)
	defer f.Close()
	st, _ := f.Stat()
	m, _ := MapFile(path)
	defer m.Close()
	for _, src := range []interface {
		ReadAt([]byte, int64) (int, error)
	}{f, m} {
		it, err := NewJournalIter(src, st.Size(), path)
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		for it.Next() {
			r := it.Record()
			if r.TypeID != uint16(1+i%6) || r.Channel != uint16(i%4) || r.RecvTs != int64(i)*10 || !bytes.Equal(r.Payload, journalPayload(i)) {
				t.Fatalf("frame %d: type %d ch %d ts %d len %d", i, r.TypeID, r.Channel, r.RecvTs, len(r.Payload))
			}
			i++
		}
		if it.Err() != nil || i != n {
			t.Fatalf("read %d frames: %v", i, it.Err())
		}
	}
}

func TestJournalDamageReported(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.q")
	a, _ := Create(path, NewJournalHeader("v", "t"), Options{})
	for i := 0; i < 10; i++ {
		a.AppendJournal(JournalMessage, 0, int64(i), []byte("hello world"))
	}
	a.Close()
	b, _ := os.ReadFile(path)
	frame := JournalFrameLen(11)
	b[HeaderSize+3*frame] = 0xff // payload length of frame 3 now runs past the end
	os.WriteFile(path, b, 0o644)
	it, err := NewJournalIter(bytes.NewReader(b), int64(len(b)), path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for it.Next() {
		n++
	}
	var ce *CorruptError
	if n != 3 || !errors.As(it.Err(), &ce) || ce.Offset != HeaderSize+3*frame || ce.File != path {
		t.Fatalf("read %d frames, err %v", n, it.Err())
	}
	if _, err := OpenAppender(path, Options{}); !errors.As(err, &ce) {
		t.Fatalf("appender opened a damaged journal: %v", err)
	}
	// A file shorter than its committed length is truncated, not silently short.
	if _, err := ReadHeader(bytes.NewReader(b[:HeaderSize+8]), HeaderSize+8, path); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated file: %v", err)
	}
}

func TestChunkGrowthAndFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "small.q")
	a, err := Create(path, NewBookHeader("v", "s", 1, 0), Options{ChunkSize: 8192, MaxSize: HeaderSize + 100*BookRecordSize})
	if err != nil {
		t.Fatal(err)
	}
	var i int
	for i = 0; i < 1000; i++ {
		r := testRecord(i)
		if err := a.AppendBook(&r); err != nil {
			if !errors.Is(err, ErrFull) {
				t.Fatalf("append %d: %v", i, err)
			}
			break
		}
	}
	if i != 100 {
		t.Fatalf("full after %d records, want 100", i)
	}
	a.Close()
	checkBookSequence(t, path, 100)
	if err := a.AppendBook(&BookRecord{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

// TestAppendFillsTheDevice: on a nearly full device, appends go on while the record itself
// fits, even when a chunk of slack after it does not; the first ENOSPC leaves less than a
// record (and a page) free, and every later append of the same size fails too.
func TestAppendFillsTheDevice(t *testing.T) {
	dir := testenv.Tmpfs(t, "4m")
	path := filepath.Join(dir, "j.q")
	a, err := Create(path, NewJournalHeader("v", "t"), Options{ChunkSize: 512 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	testenv.FillDevice(t, dir, 300<<10) // less than a chunk left
	payload := make([]byte, 4000)
	var appendErr error
	n := 0
	for ; n < 10000 && appendErr == nil; n++ {
		appendErr = a.AppendJournal(JournalMessage, 1, int64(n), payload)
	}
	if !errors.Is(appendErr, syscall.ENOSPC) {
		t.Fatalf("after %d appends: %v, want ENOSPC", n, appendErr)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if free := int64(st.Bavail) * st.Bsize; free >= pageSize+JournalFrameLen(len(payload)) {
		t.Fatalf("first ENOSPC after %d appends with %d bytes still free", n, free)
	}
	for i := 0; i < 5; i++ {
		if err := a.AppendJournal(JournalMessage, 1, int64(n+i), payload); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("append %d after the first ENOSPC: %v", i, err)
		}
	}
}

func TestRandomizedBatches(t *testing.T) {
	rng := rand.New(rand.NewSource(testenv.Seed(t)))
	a, path := newBook(t, t.TempDir())
	committed := 0
	written := 0
	for step := 0; step < 2000; step++ {
		k := rng.Intn(20)
		for j := 0; j < k; j++ {
			r := testRecord(written + j)
			if err := a.WriteBook(&r); err != nil {
				t.Fatal(err)
			}
		}
		if rng.Intn(4) == 0 {
			a.Rollback()
		} else {
			a.Commit()
			written += k
			committed = written
		}
	}
	a.Close()
	checkBookSequence(t, path, committed)
}

// A journal segment cut below its committed length after the Tailer opened it: the bytes
// it reads through its mapping are gone, and the read faults; a reader that asked for
// faults as panics (debug.SetPanicOnFault, as the refinery does) recovers an error with the
// address, and a Tailer opened afterwards reports the file as corrupt.
func TestTailerFileCutUnderReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.q")
	a, err := Create(path, NewJournalHeader("v", "test"), Options{ChunkSize: 1 << 20, NoPrefault: true})
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("x"), 3000)
	for i := 0; i < 100; i++ {
		if err := a.AppendJournal(JournalMessage, 1, int64(i+1), payload); err != nil {
			t.Fatal(err)
		}
	}
	tl, err := OpenTailer(path)
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	if _, ok, err := tl.NextJournal(); !ok || err != nil {
		t.Fatalf("first frame: %v %v", ok, err)
	}
	if err := os.Truncate(path, int64(tl.Header().HeaderSize)+4096); err != nil {
		t.Fatal(err)
	}
	addr := func() (addr uintptr) {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if p := recover(); p != nil {
				f, ok := p.(interface{ Addr() uintptr })
				if !ok {
					panic(p)
				}
				addr = f.Addr()
			}
		}()
		for {
			rec, ok, err := tl.NextJournal()
			if err != nil || !ok {
				t.Fatalf("read on without a fault: %v %v", ok, err)
			}
			var sum int
			for _, c := range rec.Payload {
				sum += int(c)
			}
			_ = sum
		}
	}()
	if addr == 0 {
		t.Fatal("no fault address")
	}
	defer a.Close()
	tl2, err := OpenTailer(path)
	if err != nil {
		var ce *CorruptError
		if !errors.As(err, &ce) {
			t.Fatalf("reopen: %v", err)
		}
		return
	}
	defer tl2.Close()
	for {
		_, ok, err := tl2.NextJournal()
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, ErrTruncated) {
				t.Fatalf("reopened: %v", err)
			}
			return
		}
		if !ok {
			t.Fatal("the cut file reads to its end without an error")
		}
	}
}
