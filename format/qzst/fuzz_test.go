package qzst

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"testing"

	"github.com/chronicle/chronicle/format"
)

// fuzzFile is a small valid pair (a few 512-byte frames, a partial last one) to mutate;
// small seeds keep the fuzzer's minimization quick.
func fuzzFile(t testing.TB) encoded {
	return encode(t, genBook(99, format.HeaderSize+3*512+100)[format.HeaderSize:], Options{BlockSize: 512})
}

func FuzzParseIndex(f *testing.F) {
	for _, size := range []int{0, 1, 5*4096 + 1000} {
		f.Add(encode(f, genBook(98, int64(size)), Options{BlockSize: 4096}).idx)
	}
	f.Add([]byte(IndexMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := ParseIndex(b, "f.idx")
		if !typedOrNil(t, err) {
			return
		}
		again, err := x.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted index does not re-encode to itself: %v", err)
		}
		for i := range x.Frames {
			if x.FrameOf(int64(x.Frames[i].UncompressedOffset)) != i {
				t.Fatalf("FrameOf disagrees for frame %d", i)
			}
		}
	})
}

func FuzzSeekTable(f *testing.F) {
	e := fuzzFile(f)
	f.Add(e.zst)
	f.Add(e.zst[e.res.Index.FramesSize:])
	f.Add(encode(f, nil, Options{}).zst)
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ReadSeekTable(bytes.NewReader(b), int64(len(b)), "f.zst")
		if !typedOrNil(t, err) {
			return
		}
		var total int64
		for _, e := range st.Entries {
			total += int64(e.CompressedSize)
		}
		if total != st.Offset || st.Offset > int64(len(b)) {
			t.Fatalf("frames end at %d, table at %d of %d", total, st.Offset, len(b))
		}
		if st.HasChecksums {
			fr := make([]Frame, len(st.Entries))
			for i, e := range st.Entries {
				fr[i] = Frame{CompressedSize: e.CompressedSize, UncompressedSize: e.DecompressedSize, Checksum: e.Checksum}
			}
			enc := appendSeekTable(nil, fr)
			tail := bytes.Clone(b[st.Offset:])
			tail[len(tail)-5] &^= 0x03 // unused descriptor bits are not ours to keep
			if !bytes.Equal(enc, tail) {
				t.Fatal("accepted seek table does not re-encode to itself")
			}
		}
		if x, err := IndexFromSeekTable(bytes.NewReader(b), int64(len(b)), "f.zst"); err == nil {
			if err := x.check("f.zst"); err != nil {
				t.Fatalf("rebuilt index invalid: %v", err)
			}
		}
	})
}

// FuzzReadFrame mutates a valid .zst and reads it with the valid index, with each decoder of
// the build, through the cache and Direct, twice (a random read decodes its frame in part,
// the second read continues it): every read either fails with a *CorruptError or returns
// the original bytes.
func FuzzReadFrame(f *testing.F) {
	e := fuzzFile(f)
	x := e.res.Index
	f.Add(e.zst, uint32(0), uint32(100))
	f.Add(e.zst, uint32(5000), uint32(9000))
	for _, fr := range x.Frames {
		b := bytes.Clone(e.zst)
		b[fr.CompressedOffset+uint64(fr.CompressedSize/2)] ^= 0xff
		f.Add(b, uint32(fr.UncompressedOffset), uint32(fr.UncompressedSize))
	}
	f.Fuzz(func(t *testing.T, zst []byte, off, n uint32) {
		if n > 1<<20 {
			n = 1 << 20
		}
		for i := range 2 * len(Decoders()) {
			dec, direct := Decoders()[i/2], i%2 == 1
			c, err := NewCache(CacheOptions{MaxBytes: 1 << 20, Decoder: dec})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r, err := Open(bytes.NewReader(zst), int64(len(zst)), x, c, ReaderOptions{SkipSeekTableCheck: direct, Direct: direct})
			if !typedOrNil(t, err) {
				continue
			}
			// Two reads: the second continues the frames the first decoded in part.
			for _, at := range []int64{int64(off), int64(off) + int64(n) + 1000} {
				p := make([]byte, n)
				got, err := r.ReadAt(p, at)
				if err != io.EOF {
					typedOrNil(t, err)
				}
				if at < int64(len(e.data)) && !bytes.Equal(p[:got], e.data[at:at+int64(got)]) {
					t.Fatal("garbage returned")
				}
			}
			r.Close()
		}
	})
}

// FuzzOpenMutatedIndex lies to the reader: the fuzzer rewrites a valid index's bytes and
// the test fixes its CRC, so the reader gets an index that parses but may describe frames
// that are not there (other offsets, sizes, checksums). Opening the true .zst with it, and
// reading everything it claims, either fails with a *CorruptError or returns the original
// bytes: never garbage, never a panic or a huge allocation.
func FuzzOpenMutatedIndex(f *testing.F) {
	e := fuzzFile(f)
	f.Add(uint16(16), []byte{0xff})
	f.Add(uint16(24), []byte{1, 2, 3, 4})
	f.Add(uint16(40), []byte{0, 0, 0, 0x7f})
	f.Fuzz(func(t *testing.T, at uint16, patch []byte) {
		idx := bytes.Clone(e.idx)
		if int(at) >= len(idx)-4 || len(patch) > 16 {
			return
		}
		copy(idx[at:len(idx)-4], patch)
		binary.LittleEndian.PutUint32(idx[len(idx)-4:], crc32.Checksum(idx[:len(idx)-4], castagnoli))
		x, err := ParseIndex(idx, "f.idx")
		if !typedOrNil(t, err) {
			return
		}
		for _, direct := range []bool{false, true} {
			c, err := NewCache(CacheOptions{MaxBytes: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			r, err := Open(bytes.NewReader(e.zst), int64(len(e.zst)), x, c, ReaderOptions{SkipSeekTableCheck: direct, Direct: direct})
			if !typedOrNil(t, err) {
				c.Close()
				continue
			}
			p := make([]byte, min(x.Size, 1<<20))
			got, err := r.ReadAt(p, 0)
			r.Close()
			c.Close()
			if err != io.EOF {
				typedOrNil(t, err)
			}
			if got > len(e.data) || !bytes.Equal(p[:got], e.data[:got]) {
				t.Fatalf("garbage returned: %d bytes read through a lying index", got)
			}
		}
	})
}

// typedOrNil fails the test unless err is nil or a *CorruptError; it reports whether err
// is nil.
func typedOrNil(t *testing.T, err error) bool {
	t.Helper()
	var ce *CorruptError
	if err != nil && !errors.As(err, &ce) {
		t.Fatalf("untyped error %T %v", err, err)
	}
	return err == nil
}
