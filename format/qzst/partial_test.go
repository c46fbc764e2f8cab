package qzst

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestStepsMatchDecodeAll: each decoder of the build decodes frames in steps of random sizes
// to the same bytes as in one call, reports the end only with every byte decoded, passes the
// bytes asked for by less than one zstd block, and checks the content checksum at the end.
func TestStepsMatchDecodeAll(t *testing.T) {
	seed := testSeed(t)
	data := genBook(seed, 3<<20+12345)
	e := encode(t, data, Options{BlockSize: 1 << 20})
	x := e.res.Index
	rng := rand.New(rand.NewPCG(seed, 7))
	for _, name := range Decoders() {
		t.Run(name, func(t *testing.T) {
			dec, err := newDecoderFuncs[name](1)
			if err != nil {
				t.Fatal(err)
			}
			defer dec.close()
			st := dec.steps()
			for fi, f := range x.Frames {
				comp := e.zst[f.CompressedOffset:][:f.CompressedSize]
				want := data[f.UncompressedOffset:][:f.UncompressedSize]
				dst := make([]byte, 0, f.UncompressedSize)
				fs, err := st.begin(comp, dst)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for {
					ask := n + 1 + rng.IntN(300<<10)
					got, done, err := fs.decodeTo(ask)
					if err != nil {
						t.Fatalf("frame %d: decodeTo(%d) after %d: %v", fi, ask, n, err)
					}
					if got < min(ask, len(want)) || got-ask >= MaxZstdBlock || got < n {
						t.Fatalf("frame %d: asked %d, decoded %d (before %d)", fi, ask, got, n)
					}
					if !bytes.Equal(dst[:got], want[:got]) {
						t.Fatalf("frame %d: bytes differ within the first %d", fi, got)
					}
					n = got
					if done != (n == len(want)) {
						t.Fatalf("frame %d: done=%v with %d of %d bytes", fi, done, n, len(want))
					}
					if done {
						break
					}
				}
				fs.free()
			}
			// A decoder that can decodes while the compressed bytes arrive: with a prefix
			// of them, it decodes the blocks inside and says the next one is short.
			for fi, f := range x.Frames {
				comp := e.zst[f.CompressedOffset:][:f.CompressedSize]
				want := data[f.UncompressedOffset:][:f.UncompressedSize]
				dst := make([]byte, 0, f.UncompressedSize)
				fs, err := st.begin(comp, dst)
				if err != nil {
					t.Fatal(err)
				}
				ar, ok := fs.(arrivingSteps)
				if !ok {
					fs.free()
					break
				}
				n, early := 0, 0
				for avail := 3000; ; avail += 3000 {
					got, done, short, err := ar.decodeAvail(len(want), avail)
					if err != nil || got < n || !bytes.Equal(dst[:got], want[:got]) {
						t.Fatalf("frame %d: %d bytes arrived: decoded %d (before %d): %v", fi, avail, got, n, err)
					}
					if got > 0 && avail < len(comp) {
						early = got
					}
					n = got
					if done {
						break
					}
					if !short || avail > len(comp)+3000 {
						t.Fatalf("frame %d: stopped at %d of %d bytes with %d arrived, not short", fi, n, len(want), avail)
					}
				}
				fs.free()
				if n != len(want) || early == 0 && len(want) > MaxZstdBlock {
					t.Fatalf("frame %d: decoded %d, %d of them before the frame had arrived", fi, n, early)
				}
			}
			// A frame whose content checksum is wrong decodes every byte and then fails.
			f := x.Frames[0]
			bad := bytes.Clone(e.zst[:f.CompressedSize])
			bad[len(bad)-1] ^= 0x55
			fs, err := st.begin(bad, make([]byte, 0, f.UncompressedSize))
			if err != nil {
				t.Fatal(err)
			}
			defer fs.free()
			if _, _, err := fs.decodeTo(int(f.UncompressedSize)); err == nil || !st.checksum(err) {
				t.Fatalf("wrong checksum: %v (checksum error: %v)", err, err != nil && st.checksum(err))
			}
		})
	}
}

// TestPartialReads: random reads decode their frames only up to the bytes asked for, later
// reads continue them, and every byte returned is the book's, with each decoder, through
// the cache and Direct, for an index with compressed CRCs (version 2) and one without.
func TestPartialReads(t *testing.T) {
	seed := testSeed(t)
	data := genBook(seed, 6<<20+777)
	e := encode(t, data, Options{BlockSize: 1 << 20})
	v1 := *e.res.Index
	v1.HasCompressedCRC = false
	v1b, err := v1.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, dec := range Decoders() {
		for _, version := range []int{1, 2} {
			for _, direct := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/v%d/direct=%v", dec, version, direct), func(t *testing.T) {
					c, err := NewCache(CacheOptions{MaxBytes: 64 << 20, Decoder: dec})
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					ib := e.idx
					if version == 1 {
						ib = v1b
					}
					x, err := ParseIndex(ib, "t.idx")
					if err != nil || x.HasCompressedCRC != (version == 2) {
						t.Fatalf("index v%d: %v, crc %v", version, err, x != nil && x.HasCompressedCRC)
					}
					r, err := Open(bytes.NewReader(e.zst), int64(len(e.zst)), x, c, ReaderOptions{Direct: direct, Readahead: -1})
					if err != nil {
						t.Fatal(err)
					}
					defer r.Close()
					rng := rand.New(rand.NewPCG(seed, uint64(version)))
					// Reads move forward within each frame, then jump: the first read of a
					// frame starts it, the next continue it.
					for range 60 {
						fi := rng.Int64N(int64(len(x.Frames)))
						off := fi*int64(x.BlockSize) + rng.Int64N(64<<10)
						for off < min(x.Size, (fi+1)*int64(x.BlockSize)) {
							n := 1 + rng.IntN(8<<10)
							p := make([]byte, n)
							got, err := r.ReadAt(p, off)
							if err != nil && err != io.EOF {
								t.Fatalf("ReadAt(%d, %d): %v", n, off, err)
							}
							if !bytes.Equal(p[:got], data[off:off+int64(got)]) {
								t.Fatalf("ReadAt(%d, %d): wrong bytes", n, off)
							}
							off += int64(got) + rng.Int64N(200<<10)
						}
					}
					st := r.Stats()
					if version == 1 {
						if st.PartialFrames != 0 || st.PartialResumes != 0 {
							t.Fatalf("version 1 index: frames decoded in part: %+v", st)
						}
					} else if st.PartialFrames == 0 || st.PartialResumes == 0 {
						t.Fatalf("no frame decoded in part and continued: %+v", st)
					}
					// The partly decoded frames read whole, front to back.
					if got := readAll(t, r, 300<<10); !bytes.Equal(got, data) {
						t.Fatal("whole read differs")
					}
				})
			}
		}
	}
}

// TestPartialConcurrent: readers racing for the same few frames at random offsets, with a
// cache small enough to evict frames decoded in part while others continue them.
func TestPartialConcurrent(t *testing.T) {
	seed := testSeed(t)
	data := genBook(seed, 5<<20)
	e := encode(t, data, Options{BlockSize: 1 << 20})
	for _, cacheFrames := range []int64{3, 16} {
		t.Run(fmt.Sprintf("cache=%d", cacheFrames), func(t *testing.T) {
			c := newCache(t, cacheFrames<<20)
			r := e.open(t, c, ReaderOptions{Readahead: -1})
			var wg sync.WaitGroup
			errc := make(chan error, 8)
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(seed, uint64(g)))
					p := make([]byte, 16<<10)
					for range 200 {
						n := 1 + rng.IntN(len(p))
						off := rng.Int64N(int64(len(data) - n))
						got, err := r.ReadAt(p[:n], off)
						if err != nil || !bytes.Equal(p[:got], data[off:off+int64(got)]) {
							errc <- fmt.Errorf("ReadAt(%d, %d) = %d, %v (bytes equal %v)", n, off, got, err, bytes.Equal(p[:got], data[off:off+int64(got)]))
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Fatal(err)
			}
			st := c.Stats()
			if st.PartialFrames == 0 || st.CachedBytes > cacheFrames<<20 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestPartialCorrupt: a frame damaged after the bytes a read asks for is still refused (its
// compressed bytes fail the index's CRC-32C before anything is decoded), and so is a
// frame whose damage only the content checksum would show, once a read completes it.
func TestPartialCorrupt(t *testing.T) {
	data := genBook(41, 3<<20)
	e := encode(t, data, Options{BlockSize: 1 << 20})
	x := e.res.Index
	f := x.Frames[1]
	zst := bytes.Clone(e.zst)
	zst[f.CompressedOffset+uint64(f.CompressedSize)-40] ^= 0x10 // near the end of frame 1
	for _, direct := range []bool{false, true} {
		c := newCache(t, 16<<20)
		r, err := Open(bytes.NewReader(zst), int64(len(zst)), x, c, ReaderOptions{Direct: direct, Readahead: -1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.ReadAt(make([]byte, 100), int64(f.UncompressedOffset)+10)
		ce := asCorrupt(t, err, ErrFrameChecksum)
		if ce.Frame != 1 || ce.Field != "compressed_crc32c" {
			t.Fatalf("direct=%v: %+v", direct, *ce)
		}
		r.Close()
	}
	// The index lies about the content checksum (its CRC over the compressed bytes is
	// right): a partial read is served, completing the frame fails and drops it.
	lie := *x
	lie.Frames = append([]Frame(nil), x.Frames...)
	lie.Frames[1].Checksum ^= 1
	zst = bytes.Clone(e.zst)
	le := zst[f.CompressedOffset+uint64(f.CompressedSize)-4:]
	le[0] ^= 1 // the frame's own checksum field agrees with the lying index
	lie.Frames[1].CompressedCRC = CompressedCRC(zst[f.CompressedOffset:][:f.CompressedSize])
	c := newCache(t, 16<<20)
	r, err := Open(bytes.NewReader(zst), int64(len(zst)), &lie, c, ReaderOptions{Readahead: -1, SkipSeekTableCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := make([]byte, 100)
	if _, err := r.ReadAt(p, int64(f.UncompressedOffset)+10); err != nil || !bytes.Equal(p, data[f.UncompressedOffset+10:][:100]) {
		t.Fatalf("partial read: %v", err)
	}
	_, err = r.ReadAt(make([]byte, 100), int64(f.UncompressedOffset+uint64(f.UncompressedSize))-100)
	asCorrupt(t, err, ErrFrameChecksum)
	if st := c.Stats(); st.CachedFrames != 0 || st.DecodeErrors != 1 {
		t.Fatalf("failed frame kept: %+v", st)
	}
}

// slowSource answers each read after a delay, like an object store across a link.
type slowSource struct {
	io.ReaderAt
	delay time.Duration
}

func (s slowSource) ReadAt(p []byte, off int64) (int, error) {
	time.Sleep(s.delay)
	return s.ReaderAt.ReadAt(p, off)
}

// TestWindowCoversSlowSource: a Direct reader of a source that takes much longer to answer
// a read than the reader takes to decode a run widens its window of runs fetched ahead and
// keeps several source reads in flight at once; the stats report the window, the bytes in
// flight and the waits.
func TestWindowCoversSlowSource(t *testing.T) {
	data := genBook(51, 24<<20)
	e := encode(t, data, Options{BlockSize: 64 << 10})
	x, err := ParseIndex(e.idx, "t.idx")
	if err != nil {
		t.Fatal(err)
	}
	c := newCache(t, 64<<20)
	r, err := Open(slowSource{bytes.NewReader(e.zst), 30 * time.Millisecond}, int64(len(e.zst)), x, c, ReaderOptions{Direct: true, SkipSeekTableCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := make([]byte, 64<<10)
	for off := int64(0); off < int64(len(data)); off += int64(len(p)) {
		n, err := r.ReadAt(p, off)
		if (err != nil && err != io.EOF) || !bytes.Equal(p[:n], data[off:off+int64(n)]) {
			t.Fatalf("ReadAt %d: %d, %v", off, n, err)
		}
	}
	st := c.Stats()
	r.mu.Lock()
	ahead := r.ahead
	r.mu.Unlock()
	t.Logf("window %d runs now, at most %d runs (%d KiB); in flight at most %d KiB; %d waits (%v); %d source reads",
		ahead, st.WindowRuns, st.WindowBytes>>10, st.InflightPeak>>10, st.FetchStalls, st.FetchStallTime, st.SourceReads)
	if ahead < 3 || st.WindowRuns < ahead || st.WindowBytes == 0 || st.FetchStalls == 0 {
		t.Fatalf("window %d runs, stats %+v: the window did not grow", ahead, st)
	}
	run := int64(x.Frames[directRun].CompressedOffset) // about one run of compressed bytes
	if st.InflightPeak < 2*run || st.InflightBytes != 0 {
		t.Fatalf("in flight: peak %d (one run %d), now %d", st.InflightPeak, run, st.InflightBytes)
	}
}

// TestDecodeFrame: the exported whole-frame decode returns each frame's bytes and refuses
// compressed bytes the index does not describe.
func TestDecodeFrame(t *testing.T) {
	data := genBook(61, 2<<20+999)
	e := encode(t, data, Options{BlockSize: 1 << 20})
	x := e.res.Index
	dst := make([]byte, x.BlockSize)
	for fi, f := range x.Frames {
		got, err := DecodeFrame(x, fi, e.zst[f.CompressedOffset:][:f.CompressedSize], dst[:0])
		if err != nil || !bytes.Equal(got, data[f.UncompressedOffset:][:f.UncompressedSize]) {
			t.Fatalf("frame %d: %v", fi, err)
		}
	}
	if _, err := DecodeFrame(x, 0, e.zst[:10], dst[:0]); err == nil {
		t.Fatal("short frame accepted")
	}
	if _, err := DecodeFrame(x, len(x.Frames), nil, dst[:0]); err == nil {
		t.Fatal("frame out of range accepted")
	}
}

// streamSource is a RangeStreamer whose streams deliver a few KiB per Read, like a socket;
// cut, when set, ends every stream that many bytes early.
type streamSource struct {
	*bytes.Reader
	chunk, cut int
	streams    atomic.Int32
}

func (s *streamSource) StreamRange(off, n int64) (io.ReadCloser, error) {
	s.streams.Add(1)
	b := make([]byte, n)
	if _, err := s.ReadAt(b, off); err != nil {
		return nil, err
	}
	return io.NopCloser(&chunkReader{b: b[:max(0, int(n)-s.cut)], chunk: s.chunk}), nil
}

type chunkReader struct {
	b     []byte
	chunk int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.chunk)], c.b)
	c.b = c.b[n:]
	return n, nil
}

// TestPartialArriving: random reads of a source that streams decode frames while their
// bytes arrive, return the book's bytes, continue later, and refuse a damaged or cut frame
// before publishing anything.
func TestPartialArriving(t *testing.T) {
	seed := testSeed(t)
	data := genBook(seed, 5<<20+300)
	e := encode(t, data, Options{BlockSize: 1 << 20})
	x := e.res.Index
	for _, dec := range Decoders() {
		t.Run(dec, func(t *testing.T) {
			c, err := NewCache(CacheOptions{MaxBytes: 32 << 20, Decoder: dec})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			src := &streamSource{Reader: bytes.NewReader(e.zst), chunk: 7000}
			r, err := Open(src, int64(len(e.zst)), x, c, ReaderOptions{Direct: true, SkipSeekTableCheck: true})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			rng := rand.New(rand.NewPCG(seed, 3))
			for range 40 {
				n := 1 + rng.IntN(20<<10)
				off := rng.Int64N(int64(len(data) - n))
				p := make([]byte, n)
				if got, err := r.ReadAt(p, off); err != nil || got != n || !bytes.Equal(p, data[off:off+int64(n)]) {
					t.Fatalf("ReadAt(%d, %d) = %d, %v", n, off, got, err)
				}
			}
			if st := r.Stats(); st.PartialFrames == 0 || src.streams.Load() == 0 {
				t.Fatalf("no frame streamed in part: %+v", st)
			}
			if got := readAll(t, r, 1<<20); !bytes.Equal(got, data) {
				t.Fatal("whole read differs")
			}
		})
	}
	f := x.Frames[2]
	for name, src := range map[string]*streamSource{
		"damaged": {Reader: bytes.NewReader(func() []byte {
			b := bytes.Clone(e.zst)
			b[f.CompressedOffset+uint64(f.CompressedSize)-30] ^= 1 // after the bytes the read needs
			return b
		}()), chunk: 5000},
		"cut": {Reader: bytes.NewReader(e.zst), chunk: 5000, cut: 100},
	} {
		c := newCache(t, 16<<20)
		r, err := Open(src, int64(len(e.zst)), x, c, ReaderOptions{Direct: true, SkipSeekTableCheck: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.ReadAt(make([]byte, 10), int64(f.UncompressedOffset)+20)
		want := ErrFrameChecksum
		if name == "cut" {
			want = ErrTruncated
		}
		asCorrupt(t, err, want)
		if st := c.Stats(); st.CachedFrames != 0 {
			t.Fatalf("%s: frame kept: %+v", name, st)
		}
		r.Close()
	}
}

// TestSequentialReuseBuffers: a sequential reader decodes into the buffers of the frames it
// has passed rather than into new memory, even while the cache has room: the frame buffers
// it allocates stay near its readahead window, not the file's or the cache's size.
func TestSequentialReuseBuffers(t *testing.T) {
	data := genBook(71, 40<<20)
	e := encode(t, data, Options{BlockSize: 1 << 20})
	c := newCache(t, 64<<20)
	r := e.open(t, c, ReaderOptions{Readahead: 4})
	if got := readAll(t, r, 128<<10); !bytes.Equal(got, data) {
		t.Fatal("read differs")
	}
	if n := c.bufAllocs.Load(); n > 12 {
		t.Fatalf("%d frame buffers allocated for 40 frames read in order with 4 ahead", n)
	}
}
