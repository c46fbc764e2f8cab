package fs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/chronicle/chronicle/format"
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
