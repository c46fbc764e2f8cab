package fs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/layout"
)

var npyShape = regexp.MustCompile(`'shape': \((\d+),\)`)

// parseNPY decodes the header npyHeader writes, the way numpy's reader does: magic,
// version, length, a dict ending in a newline, data aligned to 64.
func parseNPY(b []byte) (records, dataOff int64, err error) {
	if len(b) < 10 || string(b[:6]) != npyMagic {
		return 0, 0, fmt.Errorf("bad magic")
	}
	var hlen, pre int64
	switch b[6] {
	case 1:
		hlen, pre = int64(binary.LittleEndian.Uint16(b[8:])), 10
	case 2:
		hlen, pre = int64(binary.LittleEndian.Uint32(b[8:])), 12
	default:
		return 0, 0, fmt.Errorf("version %d", b[6])
	}
	dataOff = pre + hlen
	if int64(len(b)) < dataOff || b[dataOff-1] != '\n' || dataOff%64 != 0 {
		return 0, 0, fmt.Errorf("header of %d bytes does not end in a newline on a 64-byte boundary", dataOff)
	}
	dict := b[pre : dataOff-1]
	if !bytes.HasPrefix(dict, []byte("{'descr': "+npyDescr+", 'fortran_order': False, 'shape': (")) {
		return 0, 0, fmt.Errorf("unexpected dict %q", dict)
	}
	if bytes.ContainsFunc(bytes.TrimRight(dict, " "), func(r rune) bool { return r == '\n' || r == 0 }) {
		return 0, 0, fmt.Errorf("control bytes in dict")
	}
	m := npyShape.FindSubmatch(dict)
	if m == nil {
		return 0, 0, fmt.Errorf("no shape in %q", dict)
	}
	records, err = strconv.ParseInt(string(m[1]), 10, 64)
	return records, dataOff, err
}

func TestNPYHeader(t *testing.T) {
	for _, c := range []struct {
		hs, records, wantOff int64
		major                byte
	}{
		{format.HeaderSize, 0, format.HeaderSize, 1}, // identity mapping with the book
		{format.HeaderSize, 1<<63 - 1, format.HeaderSize, 1},
		{256, 5, 320, 1},                  // small book header: the minimum aligned size
		{64 << 10, 5, 320, 1},             // above numpy's header limit: not identity
		{format.MaxHeaderSize, 7, 320, 1}, // same
	} {
		off := npyDataOffset(c.hs)
		if off != c.wantOff {
			t.Errorf("header size %d: data offset %d, want %d", c.hs, off, c.wantOff)
		}
		b, err := npyHeader(c.records, off)
		if err != nil {
			t.Fatal(err)
		}
		n, doff, err := parseNPY(b)
		if err != nil || n != c.records || doff != off || b[6] != c.major {
			t.Errorf("hs %d records %d: parsed %d records at %d (v%d): %v", c.hs, c.records, n, doff, b[6], err)
		}
	}
	// Version 2 when the header outgrows a u16 length.
	b, err := npyHeader(3, 70016)
	if err != nil {
		t.Fatal(err)
	}
	if n, off, err := parseNPY(b); err != nil || n != 3 || off != 70016 || b[6] != 2 {
		t.Fatalf("v2: %d records at %d, v%d: %v", n, off, b[6], err)
	}
	if _, err := npyHeader(1, 64); err == nil {
		t.Fatal("a 64-byte header cannot hold the dict")
	}
}

// FuzzNPYHeader checks that every book header size and record count gives a header numpy
// can read, whose data offset does not depend on the count.
func FuzzNPYHeader(f *testing.F) {
	f.Add(int64(format.HeaderSize), int64(0))
	f.Add(int64(256), int64(12345))
	f.Add(int64(1<<20), int64(1<<40))
	f.Fuzz(func(t *testing.T, hs, records int64) {
		if hs < format.MinHeaderSize || hs > format.MaxHeaderSize || hs%64 != 0 || records < 0 {
			return
		}
		off := npyDataOffset(hs)
		b, err := npyHeader(records, off)
		if err != nil {
			t.Fatal(err)
		}
		n, doff, err := parseNPY(b)
		if err != nil || n != records || doff != off || int64(len(b)) != off {
			t.Fatalf("hs %d records %d: %d records at %d: %v", hs, records, n, doff, err)
		}
		if npySize(hs, hs+records*64) != off+records*64 {
			t.Fatal("size mapping")
		}
	})
}

// localBook is a tiers.Handle and tiers.Local over a file whose committed length the test
// sets, like a hot book being written.
type localBook struct {
	f         *os.File
	committed atomic.Int64
	sealed    bool
}

func (b *localBook) ReadAt(p []byte, off int64) (int, error) {
	end := b.committed.Load()
	if off >= end {
		return 0, io.EOF
	}
	n, err := b.f.ReadAt(p[:min(int64(len(p)), end-off)], off)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}
func (b *localBook) Size() int64         { return b.committed.Load() }
func (b *localBook) Tier() layout.Tier   { return layout.Hot }
func (b *localBook) Source() string      { return b.f.Name() }
func (b *localBook) Version() string     { return "v" }
func (b *localBook) Sealed() bool        { return b.sealed }
func (b *localBook) ModTime() time.Time  { return time.Time{} }
func (b *localBook) File() *os.File      { return nil }
func (b *localBook) LocalFile() *os.File { return b.f }
func (b *localBook) Close() error        { return b.f.Close() }

// TestNPYZeroCopy: reads of a local book.npy past the header are answered from the tier
// file, spliced when they fit a pipe and written from a mapping otherwise, and give the
// same bytes as a copy would; a book that grows past the mapping gets a new one.
func TestNPYZeroCopy(t *testing.T) {
	const hs = format.HeaderSize
	p := filepath.Join(t.TempDir(), "book.q")
	data := make([]byte, hs+3<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	// The file holds more than is committed, like a book with a preallocated tail.
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	book := &localBook{f: f}
	book.committed.Store(hs + 2<<20)
	st := newStats()
	v, err := newNPYView(book, hs, book.Size(), st)
	if err != nil {
		t.Fatal(err)
	}
	defer v.close()
	want := func(off, n int64) []byte {
		var b []byte
		if off < v.dataOff {
			b = append(b, v.hdr[off:min(v.dataOff, off+n)]...)
		}
		from := max(off, v.dataOff) - v.dataOff + hs
		to := min(off+n-v.dataOff+hs, book.Size())
		if to > from {
			b = append(b, data[from:to]...)
		}
		return b
	}
	check := func(off int64, n int, how string) {
		t.Helper()
		dest := make([]byte, n)
		rr, got, err := v.readResult(dest, off)
		if err != nil {
			t.Fatal(err)
		}
		b, status := rr.Bytes(make([]byte, n))
		rr.Done()
		if !status.Ok() || got != len(b) || rr.Size() != got || !bytes.Equal(b, want(off, int64(n))) {
			t.Fatalf("%s read of %d at %d: %d bytes (size %d, status %v), equal %v", how, n, off, len(b), rr.Size(), status, bytes.Equal(b, want(off, int64(n))))
		}
	}
	sp0, mp0 := st.npySplice.Load(), st.npyMapped.Load()
	check(0, 1<<20, "header")
	check(hs, 256<<10, "spliced")
	check(hs+5000, 1<<20, "mapped")
	check(book.Size()-100, 1<<20, "tail (100 bytes: spliced)")
	check(book.Size()+10, 4096, "past the end")
	if st.npySplice.Load()-sp0 != 2 || st.npyMapped.Load()-mp0 != 1 {
		t.Fatalf("spliced %d, mapped %d", st.npySplice.Load()-sp0, st.npyMapped.Load()-mp0)
	}
	// The book grows past the first mapping (which covered the file then).
	if err := os.WriteFile(p, append(data, data[:2<<20]...), 0o644); err != nil {
		t.Fatal(err)
	}
	data = append(data, data[:2<<20]...)
	book.committed.Store(int64(len(data)))
	check(int64(len(data))-(1<<20), 1<<20, "grown")
	v.mu.Lock()
	maps := len(v.maps)
	v.mu.Unlock()
	if maps != 2 {
		t.Fatalf("%d mappings", maps)
	}
}
