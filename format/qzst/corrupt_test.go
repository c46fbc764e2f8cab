package qzst

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"testing"
)

func asCorrupt(t *testing.T, err error, sentinels ...error) *CorruptError {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("want *CorruptError, got %T %v", err, err)
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return ce
		}
	}
	if len(sentinels) > 0 {
		t.Fatalf("error %v wraps none of %v", err, sentinels)
	}
	return ce
}

// readFrameOrErr reads frame fi whole and checks it is either the original bytes or a
// corruption error naming frame fi: never garbage. It reports whether an error came back.
func readFrameOrErr(t *testing.T, r *Reader, x *Index, data []byte, fi int) bool {
	t.Helper()
	f := x.Frames[fi]
	p := make([]byte, f.UncompressedSize)
	n, err := r.ReadAt(p, int64(f.UncompressedOffset))
	if err != nil && err != io.EOF {
		ce := asCorrupt(t, err, ErrFrameDecode, ErrFrameChecksum, ErrFrameSize)
		if ce.Frame != int64(fi) || ce.Offset < int64(f.CompressedOffset) || ce.Offset >= int64(f.CompressedOffset)+int64(f.CompressedSize) {
			t.Fatalf("error names frame %d offset %d, want frame %d in [%d, %d)", ce.Frame, ce.Offset, fi, f.CompressedOffset, f.CompressedOffset+uint64(f.CompressedSize))
		}
		if n != 0 {
			t.Fatalf("%d bytes returned with the error", n)
		}
		return true
	}
	if !bytes.Equal(p[:n], data[f.UncompressedOffset:][:f.UncompressedSize]) {
		t.Fatalf("frame %d: corrupted file returned garbage without error", fi)
	}
	return false
}

func TestCorruptFrameEveryByte(t *testing.T) {
	for _, dec := range Decoders() {
		for _, direct := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/direct=%v", dec, direct), func(t *testing.T) { testCorruptFrameEveryByte(t, dec, direct) })
		}
	}
}

func testCorruptFrameEveryByte(t *testing.T, dec string, direct bool) {
	data := genBook(21, 3*4096+100)
	e := encode(t, data, Options{BlockSize: 4096})
	x := e.res.Index
	fi := 1 // a middle frame: flip every bit of every byte in it
	f := x.Frames[fi]
	detected, total := 0, 0
	// A private cache for each variant: the cache is keyed by the index's file hash, which
	// all these variants share.
	open := func(zst []byte, opts ReaderOptions) *Reader {
		c, err := NewCache(CacheOptions{MaxBytes: 1 << 20, Decoder: dec})
		if err != nil {
			t.Fatal(err)
		}
		opts.Readahead, opts.Direct = -1, direct
		r, err := Open(bytes.NewReader(zst), int64(len(zst)), x, c, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return r
	}
	for pos := int(f.CompressedOffset); pos < int(f.CompressedOffset+uint64(f.CompressedSize)); pos++ {
		for bit := range 8 {
			zst := bytes.Clone(e.zst)
			zst[pos] ^= 1 << bit
			r := open(zst, ReaderOptions{})
			total++
			if readFrameOrErr(t, r, x, data, fi) {
				detected++
			}
			r.Close()
			// The neighbours are intact and still read.
			r2 := open(zst, ReaderOptions{SkipSeekTableCheck: true})
			if readFrameOrErr(t, r2, x, data, fi+1) {
				t.Fatal("intact frame reported corrupt")
			}
			r2.Close()
		}
	}
	t.Logf("%d of %d bit flips detected; the rest decoded to the original bytes", detected, total)
	if detected < total*99/100 {
		t.Fatalf("only %d of %d flips detected", detected, total)
	}
}

func TestCorruptFramesVerify(t *testing.T) {
	data := genBook(22, 600_000)
	e := encode(t, data, Options{BlockSize: 64 << 10})
	x := e.res.Index
	for _, fi := range []int{0, 4, len(x.Frames) - 1} {
		f := x.Frames[fi]
		for _, rel := range []uint32{0, 4, 6, f.CompressedSize / 2, f.CompressedSize - 1} {
			zst := bytes.Clone(e.zst)
			zst[f.CompressedOffset+uint64(rel)] ^= 0x55
			err := Verify(context.Background(), bytes.NewReader(zst), int64(len(zst)), x, VerifyOptions{Name: "v.zst"})
			ce := asCorrupt(t, err, ErrFrameDecode, ErrFrameChecksum, ErrFrameSize)
			if ce.Frame != int64(fi) || ce.File != "v.zst" {
				t.Fatalf("frame %d byte %d: error %v", fi, rel, err)
			}
			// HashOnly does not decode, but the frames' CRC-32Cs (and the hash) see every
			// flipped byte, and the CRC names the frame.
			err = Verify(context.Background(), bytes.NewReader(zst), int64(len(zst)), x, VerifyOptions{Name: "v.zst", HashOnly: true})
			if ce = asCorrupt(t, err, ErrFrameChecksum); ce.File != "v.zst" || ce.Frame != int64(fi) || ce.Field != "compressed_crc32c" {
				t.Fatalf("frame %d byte %d, hash only: error %v", fi, rel, err)
			}
		}
	}
	// Hash mismatch, wrong original, longer original.
	bad := *x
	bad.SHA256[0] ^= 1
	asCorrupt(t, Verify(context.Background(), bytes.NewReader(e.zst), int64(len(e.zst)), &bad, VerifyOptions{}), ErrFileHash)
	asCorrupt(t, Verify(context.Background(), bytes.NewReader(e.zst), int64(len(e.zst)), &bad, VerifyOptions{HashOnly: true}), ErrFileHash)
	if err := Verify(context.Background(), bytes.NewReader(e.zst), int64(len(e.zst)), x, VerifyOptions{HashOnly: true}); err != nil {
		t.Fatalf("hash only, intact file: %v", err)
	}
	// An index whose CRC of one frame is wrong is refused even though the file's hash is right.
	badCRC := *x
	badCRC.Frames = append([]Frame(nil), x.Frames...)
	badCRC.Frames[3].CompressedCRC ^= 1
	if ce := asCorrupt(t, Verify(context.Background(), bytes.NewReader(e.zst), int64(len(e.zst)), &badCRC, VerifyOptions{HashOnly: true}), ErrFrameChecksum); ce.Frame != 3 {
		t.Fatalf("wrong CRC of frame 3: %+v", *ce)
	}
	nohash := *x
	nohash.SHA256 = [32]byte{}
	if err := Verify(context.Background(), bytes.NewReader(e.zst), int64(len(e.zst)), &nohash, VerifyOptions{HashOnly: true}); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("hash only without a hash in the index: %v", err)
	}
	other := bytes.Clone(data)
	other[300_000] ^= 1
	ce := asCorrupt(t, Verify(context.Background(), bytes.NewReader(e.zst), int64(len(e.zst)), x, VerifyOptions{Original: bytes.NewReader(other)}), ErrContentMismatch)
	if ce.Frame != 300_000/(64<<10) {
		t.Fatalf("mismatch reported in frame %d", ce.Frame)
	}
	asCorrupt(t, Verify(context.Background(), bytes.NewReader(e.zst), int64(len(e.zst)), x, VerifyOptions{Original: bytes.NewReader(append(bytes.Clone(data), 0))}), ErrContentMismatch)
}

func TestCorruptIndex(t *testing.T) {
	data := genBook(23, 1_000_000)
	e := encode(t, data, Options{BlockSize: 64 << 10})
	idx := e.idx
	for pos := range idx {
		for bit := range 8 {
			b := bytes.Clone(idx)
			b[pos] ^= 1 << bit
			if _, err := ParseIndex(b, "x.idx"); err == nil {
				t.Fatalf("flip of bit %d at %d accepted", bit, pos)
			} else {
				asCorrupt(t, err)
			}
		}
	}
	for n := range len(idx) {
		if _, err := ParseIndex(idx[:n], "x.idx"); err == nil {
			t.Fatalf("index truncated to %d bytes accepted", n)
		}
	}
	// Fields made wrong with a valid CRC are named.
	le := binary.LittleEndian
	resum := func(b []byte) []byte {
		le.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
		return b
	}
	n := len(e.res.Index.Frames)
	trailer := int(IndexSize(n)) - idxTrailerSize
	for _, tc := range []struct {
		name   string
		mutate func(b []byte) []byte
		err    error
		field  string
		off    int64
		frame  int64
	}{
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }, ErrBadMagic, "magic", 0, -1},
		{"version", func(b []byte) []byte { le.PutUint32(b[8:], 3); return resum(b) }, ErrUnsupportedVersion, "version", 8, -1},
		// A version 2 index read as version 1 has 4N bytes too many.
		{"version 1", func(b []byte) []byte { le.PutUint32(b[8:], 1); return resum(b) }, ErrBadIndex, "trailer", int64(indexSize(n, 1)), -1},
		{"block_size", func(b []byte) []byte { le.PutUint32(b[12:], 0); return resum(b) }, ErrBadIndex, "block_size", 12, -1},
		{"frame_count", func(b []byte) []byte { le.PutUint64(b[16:], uint64(n+1)); return resum(b) }, ErrTruncated, "frame_count", int64(len(e.idx)), -1},
		{"uncompressed_offset", func(b []byte) []byte { le.PutUint64(b[24+2*24:], 5); return resum(b) }, ErrBadIndex, "uncompressed_offset", 24 + 2*24, 2},
		{"compressed_offset", func(b []byte) []byte { le.PutUint64(b[24+3*24+8:], 1); return resum(b) }, ErrBadIndex, "compressed_offset", 24 + 3*24 + 8, 3},
		{"compressed_size", func(b []byte) []byte { le.PutUint32(b[24+16:], 3); return resum(b) }, ErrBadIndex, "compressed_size", 24 + 16, 0},
		{"uncompressed_size", func(b []byte) []byte { le.PutUint32(b[24+(n-1)*24+20:], 0); return resum(b) }, ErrIrregularFrames, "uncompressed_size", int64(24 + (n-1)*24 + 20), int64(n - 1)},
		{"total", func(b []byte) []byte { le.PutUint64(b[trailer:], 7); return resum(b) }, ErrBadIndex, "uncompressed_size_total", int64(trailer), -1},
		{"zst_size", func(b []byte) []byte { le.PutUint64(b[trailer+16:], 7); return resum(b) }, ErrBadIndex, "zst_size", int64(trailer + 16), -1},
		{"reserved", func(b []byte) []byte { le.PutUint32(b[trailer+56:], 1); return resum(b) }, ErrBadIndex, "reserved", int64(trailer + 56), -1},
		{"crc", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, ErrIndexChecksum, "crc32c", int64(len(idx) - 4), -1},
		{"trailing", func(b []byte) []byte { return resum(append(b, 0, 0, 0, 0)) }, ErrBadIndex, "trailer", int64(len(idx)), -1},
	} {
		_, err := ParseIndex(tc.mutate(bytes.Clone(idx)), "x.idx")
		ce := asCorrupt(t, err, tc.err)
		if ce.Field != tc.field || ce.Offset != tc.off || ce.Frame != tc.frame || ce.File != "x.idx" {
			t.Errorf("%s: got %+v (%v)", tc.name, *ce, err)
		}
	}
}

func TestIndexDoesNotMatchZst(t *testing.T) {
	a := encode(t, genBook(31, 500_000), Options{BlockSize: 64 << 10})
	b := encode(t, genBook(32, 500_000), Options{BlockSize: 64 << 10})
	xa := a.res.Index
	// Another file's .zst: sizes or the seek table disagree.
	_, err := Open(bytes.NewReader(b.zst), int64(len(b.zst)), xa, nil, ReaderOptions{Name: "b.zst"})
	asCorrupt(t, err, ErrIndexMismatch)
	// Truncated .zst.
	for _, cut := range []int{1, 9, 100, len(a.zst) / 2} {
		_, err := Open(bytes.NewReader(a.zst[:len(a.zst)-cut]), int64(len(a.zst)-cut), xa, nil, ReaderOptions{})
		asCorrupt(t, err, ErrTruncated)
	}
	// A source shorter than it claims: found when the missing frame is read.
	short := a.zst[:xa.Frames[len(xa.Frames)-1].CompressedOffset+3]
	r, err := Open(bytes.NewReader(short), int64(len(a.zst)), xa, nil, ReaderOptions{SkipSeekTableCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.ReadAt(make([]byte, 10), xa.Size-5)
	ce := asCorrupt(t, err, ErrTruncated)
	if ce.Frame != int64(len(xa.Frames)-1) {
		t.Fatalf("truncation reported at frame %d", ce.Frame)
	}
	// Sequential reads (coalesced fetch) over a truncated source fail too.
	r2, _ := Open(bytes.NewReader(short), int64(len(a.zst)), xa, nil, ReaderOptions{SkipSeekTableCheck: true})
	defer r2.Close()
	buf := make([]byte, 32<<10)
	var rerr error
	var total int64
	for off := int64(0); rerr == nil; off += int64(len(buf)) {
		var n int
		n, rerr = r2.ReadAt(buf, off)
		if !bytes.Equal(buf[:n], a.data[off:off+int64(n)]) {
			t.Fatal("garbage before truncation")
		}
		total += int64(n)
	}
	ce = asCorrupt(t, rerr, ErrTruncated)
	// Every whole frame before the cut was served; the error names the cut frame.
	if last := xa.Frames[len(xa.Frames)-1]; total != int64(last.UncompressedOffset) || ce.Frame != int64(len(xa.Frames)-1) {
		t.Fatalf("read %d bytes before the error at frame %d; want %d bytes, frame %d", total, ce.Frame, last.UncompressedOffset, len(xa.Frames)-1)
	}
}

func TestCorruptSeekTable(t *testing.T) {
	data := genBook(41, 400_000)
	e := encode(t, data, Options{BlockSize: 64 << 10})
	x := e.res.Index
	for pos := int(x.FramesSize); pos < len(e.zst); pos++ {
		zst := bytes.Clone(e.zst)
		zst[pos] ^= 0x41
		r, err := Open(bytes.NewReader(zst), int64(len(zst)), x, nil, ReaderOptions{})
		if err == nil {
			// Only the descriptor's unused bits may change without consequence.
			if pos != len(zst)-5 {
				t.Fatalf("seek table flip at %d accepted", pos)
			}
			if got := readAll(t, r, 1<<20); !bytes.Equal(got, data) {
				t.Fatal("garbage")
			}
			r.Close()
			continue
		}
		asCorrupt(t, err, ErrIndexMismatch, ErrBadSeekTable, ErrBadMagic, ErrTruncated)
		// Without the index, either the table is rejected or reads fail or are right.
		rx, err := IndexFromSeekTable(bytes.NewReader(zst), int64(len(zst)), "z")
		if err != nil {
			asCorrupt(t, err)
			continue
		}
		r, err = Open(bytes.NewReader(zst), int64(len(zst)), rx, nil, ReaderOptions{})
		if err != nil {
			asCorrupt(t, err)
			continue
		}
		for fi := range rx.Frames {
			readFrameOrErr(t, r, rx, data, fi)
		}
		r.Close()
	}
}
