package qzst

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	seekable "github.com/SaveTheRbtz/zstd-seekable-format-go/pkg"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
	"github.com/klauspost/compress/zstd"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	if code == 0 && os.Getenv("QZ_NOLEAK") == "" {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

type encoded struct {
	data []byte
	zst  []byte
	idx  []byte
	res  *Result
}

func encode(t testing.TB, data []byte, opts Options) encoded {
	t.Helper()
	var zst, idx bytes.Buffer
	res, err := TranscodeTo(context.Background(), bytes.NewReader(data), int64(len(data)), &zst, &idx, opts)
	if err != nil {
		t.Fatalf("TranscodeTo: %v", err)
	}
	return encoded{data: data, zst: zst.Bytes(), idx: idx.Bytes(), res: res}
}

func (e encoded) open(t testing.TB, c *Cache, opts ReaderOptions) *Reader {
	t.Helper()
	x, err := ParseIndex(e.idx, "test.idx")
	if err != nil {
		t.Fatalf("ParseIndex: %v", err)
	}
	r, err := Open(bytes.NewReader(e.zst), int64(len(e.zst)), x, c, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func newCache(t testing.TB, maxBytes int64) *Cache {
	t.Helper()
	c, err := NewCache(CacheOptions{MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// testSeed is testenv.Seed as the uint64 the generators take.
func testSeed(t testing.TB) uint64 { return uint64(testenv.Seed(t)) }

func readAll(t testing.TB, r *Reader, chunk int) []byte {
	t.Helper()
	out := make([]byte, 0, r.Size())
	buf := make([]byte, chunk)
	for off := int64(0); ; {
		n, err := r.ReadAt(buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("ReadAt(%d): %v", off, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, enc := range Encoders() {
		t.Run(enc, func(t *testing.T) { testRoundTrip(t, enc) })
	}
}

func testRoundTrip(t *testing.T, enc string) {
	book := genBook(7, 3<<20+12345)
	for _, bs := range []int{1, 7, 4096, 65536, 1 << 20} {
		sizes := []int{0, 1, bs - 1, bs, bs + 1, 3*bs + 17}
		if bs >= 4096 {
			sizes = append(sizes, len(book))
		}
		for _, size := range sizes {
			if size < 0 || size > len(book) {
				continue
			}
			t.Run(fmt.Sprintf("bs%d/size%d", bs, size), func(t *testing.T) {
				data := book[:size]
				e := encode(t, data, Options{BlockSize: bs, Concurrency: 3, Encoder: enc, VerifyFrames: size%2 == 1})
				wantFrames := (size + bs - 1) / bs
				x := e.res.Index
				if len(x.Frames) != wantFrames || x.Size != int64(size) || x.ZstSize != int64(len(e.zst)) || e.res.IndexSize != int64(len(e.idx)) {
					t.Fatalf("index: %d frames (want %d), size %d, zst %d/%d", len(x.Frames), wantFrames, x.Size, x.ZstSize, len(e.zst))
				}
				parsed, err := ParseIndex(e.idx, "t.idx")
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(*parsed) != fmt.Sprint(*x) {
					t.Fatalf("parsed index differs from written")
				}
				checkFrameHeaders(t, e.zst, x)
				r := e.open(t, nil, ReaderOptions{})
				if r.Size() != int64(size) {
					t.Fatalf("Size %d, want %d", r.Size(), size)
				}
				if got := readAll(t, r, 100_000); !bytes.Equal(got, data) {
					t.Fatalf("round trip differs (%d vs %d bytes)", len(got), len(data))
				}
				if err := Verify(context.Background(), bytes.NewReader(e.zst), int64(len(e.zst)), parsed, VerifyOptions{Original: bytes.NewReader(data)}); err != nil {
					t.Fatalf("Verify: %v", err)
				}
				// A rebuilt index reads the same bytes.
				rx, err := IndexFromSeekTable(bytes.NewReader(e.zst), int64(len(e.zst)), "t.zst")
				if err != nil {
					t.Fatal(err)
				}
				r2, err := Open(bytes.NewReader(e.zst), int64(len(e.zst)), rx, nil, ReaderOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer r2.Close()
				if got := readAll(t, r2, 1<<20); !bytes.Equal(got, data) {
					t.Fatal("read through a rebuilt index differs")
				}
			})
		}
	}
}

// checkFrameHeaders asserts every frame declares its content size and carries a checksum,
// and that the checksum is XXH64's low 32 bits as the seek table format requires.
func checkFrameHeaders(t *testing.T, zst []byte, x *Index) {
	t.Helper()
	for i, f := range x.Frames {
		fr := zst[f.CompressedOffset:][:f.CompressedSize]
		if binary.LittleEndian.Uint32(fr) != zstdFrameMagic {
			t.Fatalf("frame %d: bad magic", i)
		}
		fhd := fr[4]
		if fhd&zstdChecksumFlag == 0 {
			t.Fatalf("frame %d: no checksum flag", i)
		}
		if fhd&(1<<5) == 0 {
			t.Fatalf("frame %d: not single-segment (the spec's header: window = content size, size declared)", i)
		}
	}
}

func TestEmptyFileIsPlainZstd(t *testing.T) {
	e := encode(t, nil, Options{})
	// Only the seek table: a skippable frame that zstd -d accepts and outputs nothing for.
	if len(e.zst) != int(seekTableSize(0)) {
		t.Fatalf("empty .zst is %d bytes", len(e.zst))
	}
	if got := zstdCLIDecode(t, e.zst); len(got) != 0 {
		t.Fatalf("zstd -d of empty file gave %d bytes", len(got))
	}
	r := e.open(t, nil, ReaderOptions{})
	if n, err := r.ReadAt(make([]byte, 10), 0); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt on empty: %d %v", n, err)
	}
}

func zstdCLIDecode(t testing.TB, zst []byte) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f.zst")
	if err := os.WriteFile(path, zst, 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("zstd", "-d", "-c", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("zstd -d: %v: %s", err, stderr.String())
	}
	return out
}

func TestZstdCLIDecodes(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Fatal("zstd CLI not installed (apt-get install zstd)")
	}
	book := genBook(3, 5<<20+333)
	for _, tc := range []struct {
		size, bs int
	}{{1, 1 << 20}, {4096, 1000}, {len(book), 1 << 20}, {len(book), 256 << 10}} {
		for _, enc := range Encoders() {
			e := encode(t, book[:tc.size], Options{BlockSize: tc.bs, Encoder: enc})
			if got := zstdCLIDecode(t, e.zst); !bytes.Equal(got, e.data) {
				t.Fatalf("%s size %d bs %d: zstd -d output differs (%d vs %d bytes)", enc, tc.size, tc.bs, len(got), len(e.data))
			}
		}
	}
}

// TestSeekableGoInterop reads our files with SaveTheRbtz/zstd-seekable-format-go and reads
// that library's files with ours.
func TestSeekableGoInterop(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	data := genBook(seed, 3<<20+777)
	e := encode(t, data, Options{BlockSize: 128 << 10})
	ours := e.open(t, nil, ReaderOptions{})
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	theirs, err := seekable.NewReader(bytes.NewReader(e.zst), dec)
	if err != nil {
		t.Fatalf("seekable.NewReader on our file: %v", err)
	}
	defer theirs.Close()
	for range 300 {
		off := rng.Int64N(int64(len(data)))
		n := 1 + rng.IntN(300_000)
		a, b := make([]byte, n), make([]byte, n)
		na, erra := ours.ReadAt(a, off)
		nb, errb := theirs.ReadAt(b, off)
		if na != nb || !bytes.Equal(a[:na], b[:nb]) || !bytes.Equal(a[:na], data[off:off+int64(na)]) || (erra == nil) != (errb == nil) {
			t.Fatalf("ReadAt(%d, %d): ours %d %v, theirs %d %v", n, off, na, erra, nb, errb)
		}
	}

	// Their writer, frames of one size, read by us through the seek table alone.
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	w, err := seekable.NewWriter(&buf, enc)
	if err != nil {
		t.Fatal(err)
	}
	const bs = 100_000
	for off := 0; off < len(data); off += bs {
		if _, err := w.Write(data[off:min(off+bs, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()), nil, nil, ReaderOptions{Name: "theirs.zst"})
	if err != nil {
		t.Fatalf("Open their file: %v", err)
	}
	defer r.Close()
	if got := readAll(t, r, 64<<10); !bytes.Equal(got, data) {
		t.Fatal("their file read by us differs")
	}
}

func TestRandomReads(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	data := genBook(seed, 4<<20+rng.Int64N(1<<20))
	bs := []int{4096, 65536, 1 << 20}[rng.IntN(3)]
	t.Logf("size %d block %d", len(data), bs)
	e := encode(t, data, Options{BlockSize: bs})
	r := e.open(t, newCache(t, 8*int64(bs)), ReaderOptions{})
	for i := range 1500 {
		off := rng.Int64N(int64(len(data)) + 10)
		n := rng.IntN(min(3*bs, 64<<10))
		if i%50 == 0 {
			n = rng.IntN(3 * bs) // now and then, reads spanning several frames
		}
		p := make([]byte, n)
		got, err := r.ReadAt(p, off)
		wantN := max(0, min(n, len(data)-int(off)))
		if got != wantN || !bytes.Equal(p[:got], data[min(off, int64(len(data))):][:wantN]) {
			t.Fatalf("read %d: ReadAt(len %d, off %d) = %d, %v; want %d bytes", i, n, off, got, err, wantN)
		}
		if (wantN < n) != (err == io.EOF) || (err != nil && err != io.EOF) {
			t.Fatalf("read %d: ReadAt(len %d, off %d) err %v", i, n, off, err)
		}
	}
}

// countingSrc records the reads made on the .zst.
type countingSrc struct {
	r     io.ReaderAt
	mu    sync.Mutex
	sizes []int
}

func (c *countingSrc) ReadAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	c.sizes = append(c.sizes, len(p))
	c.mu.Unlock()
	return c.r.ReadAt(p, off)
}

func TestSequentialReadaheadCoalesces(t *testing.T) {
	data := genBook(11, 24<<20)
	e := encode(t, data, Options{BlockSize: 1 << 20})
	x, _ := ParseIndex(e.idx, "")
	src := &countingSrc{r: bytes.NewReader(e.zst)}
	c := newCache(t, 64<<20)
	r, err := Open(src, int64(len(e.zst)), x, c, ReaderOptions{Readahead: 6, SkipSeekTableCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r, 128<<10); !bytes.Equal(got, data) {
		t.Fatal("sequential read differs")
	}
	r.Close()
	st := r.Stats()
	maxRead := 0
	for _, s := range src.sizes {
		maxRead = max(maxRead, s)
	}
	t.Logf("stats %+v; %d source reads, largest %d bytes", st, len(src.sizes), maxRead)
	if st.ReadaheadFrames == 0 || st.FramesDecoded != uint64(len(x.Frames)) {
		t.Fatalf("readahead %d, decoded %d of %d frames", st.ReadaheadFrames, st.FramesDecoded, len(x.Frames))
	}
	if len(src.sizes) >= len(x.Frames) || maxRead <= int(x.Frames[1].CompressedSize) {
		t.Fatalf("no coalescing: %d reads for %d frames, largest %d", len(src.sizes), len(x.Frames), maxRead)
	}
	if st.CacheMisses > 2 {
		t.Fatalf("sequential reader missed %d times; readahead should stay ahead", st.CacheMisses)
	}
}

func TestSingleFlight(t *testing.T) {
	data := genBook(5, 4<<20)
	e := encode(t, data, Options{BlockSize: 1 << 20})
	for _, whole := range []bool{false, true} {
		t.Run(fmt.Sprintf("whole=%v", whole), func(t *testing.T) { testSingleFlight(t, data, e, whole) })
	}
}

func testSingleFlight(t *testing.T, data []byte, e encoded, whole bool) {
	c := newCache(t, 64<<20)
	r := e.open(t, c, ReaderOptions{Readahead: -1, WholeFrames: whole})
	const g = 16
	var wg sync.WaitGroup
	var start sync.WaitGroup
	start.Add(1)
	var bad atomic.Int32
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			p := make([]byte, 4096)
			if _, err := r.ReadAt(p, 2<<20+5000); err != nil || !bytes.Equal(p, data[2<<20+5000:][:4096]) {
				bad.Add(1)
			}
		}()
	}
	start.Done()
	wg.Wait()
	st := c.Stats()
	// A random read decodes its frame in part unless told otherwise: one start either way.
	started := st.FramesDecoded
	if !whole {
		started = st.PartialFrames
	}
	if bad.Load() != 0 || started != 1 || st.CacheMisses != 1 || st.CacheHits+st.CacheWaits != g-1 {
		t.Fatalf("bad %d, stats %+v", bad.Load(), st)
	}
}

func TestConcurrentReadersSharedCache(t *testing.T) {
	seed := testSeed(t)
	files := make([]encoded, 3)
	for i := range files {
		files[i] = encode(t, genBook(seed+uint64(i), int64(2<<20+i*100_000)), Options{BlockSize: 64 << 10})
	}
	c := newCache(t, 10*64<<10) // small: constant eviction under load
	var readers []*Reader
	for i := range files {
		readers = append(readers, files[i].open(t, c, ReaderOptions{}), files[i].open(t, c, ReaderOptions{}))
	}
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			ri := w % len(readers)
			r, data := readers[ri], files[ri/2].data
			if w%2 == 0 { // sequential
				p := make([]byte, 50_000)
				for off := int64(0); off < int64(len(data)); off += int64(len(p)) {
					n, err := r.ReadAt(p, off)
					if (err != nil && err != io.EOF) || !bytes.Equal(p[:n], data[off:off+int64(n)]) {
						errc <- fmt.Errorf("worker %d sequential at %d: %v", w, off, err)
						return
					}
				}
				return
			}
			for range 400 {
				off := rng.Int64N(int64(len(data)))
				p := make([]byte, 1+rng.IntN(200_000))
				n, err := r.ReadAt(p, off)
				if (err != nil && err != io.EOF) || !bytes.Equal(p[:n], data[off:off+int64(n)]) {
					errc <- fmt.Errorf("worker %d random at %d: %v", w, off, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	st := c.Stats()
	t.Logf("cache stats %+v", st)
	if st.Evictions == 0 || st.CachedBytes > c.maxBytes+2*64<<10 {
		t.Fatalf("cache bound not exercised or exceeded: %+v", st)
	}
}

func TestTranscodeFiles(t *testing.T) {
	dir := t.TempDir()
	data := genBook(9, 3<<20+5)
	zp, xp := filepath.Join(dir, "book.q.zst"), filepath.Join(dir, "book.q.zst.idx")
	res, err := Transcode(context.Background(), bytes.NewReader(data), int64(len(data)), zp, xp, Options{BlockSize: 512 << 10})
	if err != nil {
		t.Fatal(err)
	}
	idxBytes, err := os.ReadFile(xp)
	if err != nil {
		t.Fatal(err)
	}
	x, err := ParseIndex(idxBytes, xp)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(zp)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if fi.Size() != res.ZstSize || x.SHA256 != res.SHA256 {
		t.Fatalf("file %d bytes, result %d", fi.Size(), res.ZstSize)
	}
	if err := Verify(context.Background(), f, fi.Size(), x, VerifyOptions{Name: zp, Original: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	assertOnly(t, dir, "book.q.zst", "book.q.zst.idx")
	for _, idxPath := range []string{xp, ""} {
		r, err := OpenFile(zp, idxPath, nil, ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, r, 1<<20); !bytes.Equal(got, data) {
			t.Fatalf("OpenFile(%q) read differs", idxPath)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := OpenFile(zp, filepath.Join(dir, "missing.idx"), nil, ReaderOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing idx: %v", err)
	}

	// A source failing halfway leaves nothing behind, and the old pair untouched.
	failing := &failAfter{r: bytes.NewReader(data), limit: 1 << 20}
	_, err = Transcode(context.Background(), failing, int64(len(data)), zp, xp, Options{BlockSize: 256 << 10, Concurrency: 1})
	if !errors.Is(err, errInjected) {
		t.Fatalf("want injected error, got %v", err)
	}
	assertOnly(t, dir, "book.q.zst", "book.q.zst.idx")
	if b, _ := os.ReadFile(xp); !bytes.Equal(b, idxBytes) {
		t.Fatal("failed transcode changed the existing index")
	}
	// A cancelled context likewise.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Transcode(ctx, bytes.NewReader(data), int64(len(data)), filepath.Join(dir, "b.zst"), filepath.Join(dir, "b.idx"), Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	assertOnly(t, dir, "book.q.zst", "book.q.zst.idx")
	// A source shorter than the size claimed is truncation.
	if _, err := Transcode(context.Background(), bytes.NewReader(data[:1000]), int64(len(data)), filepath.Join(dir, "c.zst"), filepath.Join(dir, "c.idx"), Options{}); !errors.Is(err, ErrTruncated) {
		t.Fatalf("want ErrTruncated, got %v", err)
	}
	assertOnly(t, dir, "book.q.zst", "book.q.zst.idx")
}

var errInjected = errors.New("injected read failure")

type failAfter struct {
	r     io.ReaderAt
	limit int64
}

func (f *failAfter) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.limit {
		return 0, errInjected
	}
	return f.r.ReadAt(p, off)
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if fmt.Sprint(got) != fmt.Sprint(names) {
		t.Fatalf("dir has %v, want %v", got, names)
	}
}

func TestOptionsRejected(t *testing.T) {
	for _, o := range []Options{{BlockSize: -1}, {BlockSize: MaxBlockSize + 1}, {Level: 23}, {Level: -2}, {Encoder: "lz4"}} {
		if _, err := TranscodeTo(context.Background(), bytes.NewReader(nil), 0, io.Discard, io.Discard, o); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%+v: want ErrInvalidOption, got %v", o, err)
		}
	}
}

// gateSrc blocks reads until released, then fails them.
type gateSrc struct {
	entered chan struct{}
	release chan struct{}
}

func (g *gateSrc) ReadAt(p []byte, off int64) (int, error) {
	g.entered <- struct{}{}
	<-g.release
	return 0, errInjected
}

func TestSharedKeyOtherReaderFails(t *testing.T) {
	data := genBook(61, 600_000)
	e := encode(t, data, Options{BlockSize: 64 << 10})
	x := e.res.Index
	c := newCache(t, 4<<20)
	gate := &gateSrc{entered: make(chan struct{}), release: make(chan struct{})}
	bad, err := Open(gate, int64(len(e.zst)), x, c, ReaderOptions{SkipSeekTableCheck: true, Readahead: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	good := e.open(t, c, ReaderOptions{Readahead: -1})
	off := int64(3*64<<10 + 10)
	errc := make(chan error, 1)
	go func() {
		_, err := bad.ReadAt(make([]byte, 100), off)
		errc <- err
	}()
	<-gate.entered // the bad reader owns frame 3 and is stuck in its source
	done := make(chan []byte)
	go func() {
		p := make([]byte, 100)
		if _, err := good.ReadAt(p, off); err != nil {
			t.Error(err)
		}
		done <- p
	}()
	for c.Stats().CacheWaits == 0 {
		time.Sleep(time.Millisecond) // until the good reader waits on the bad one's load
	}
	close(gate.release)
	if err := <-errc; !errors.Is(err, errInjected) {
		t.Fatalf("bad reader: %v", err)
	}
	if p := <-done; !bytes.Equal(p, data[off:off+100]) {
		t.Fatal("good reader got wrong bytes")
	}
}

func TestClosedReader(t *testing.T) {
	data := genBook(62, 3<<20)
	e := encode(t, data, Options{BlockSize: 64 << 10})
	c := newCache(t, 8<<20)
	r := e.open(t, c, ReaderOptions{Readahead: 16})
	p := make([]byte, 100_000)
	for off := int64(0); off < 1<<20; off += int64(len(p)) { // sequential: readahead in flight
		if _, err := r.ReadAt(p, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadAt(p, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadAt after Close: %v", err)
	}
	// Frames cached by the closed reader still serve another reader of the same file.
	r2 := e.open(t, c, ReaderOptions{})
	if got := readAll(t, r2, 1<<20); !bytes.Equal(got, data) {
		t.Fatal("second reader differs")
	}
}

// inflightSrc and frameCounter check Transcode's memory bound: blocks read but not yet
// written never exceed what MaxInFlight allows.
type inflightSrc struct {
	r       io.ReaderAt
	read    atomic.Int64
	written *atomic.Int64
	maxGap  atomic.Int64
}

func (s *inflightSrc) ReadAt(p []byte, off int64) (int, error) {
	gap := s.read.Add(1) - s.written.Load()
	for {
		m := s.maxGap.Load()
		if gap <= m || s.maxGap.CompareAndSwap(m, gap) {
			break
		}
	}
	time.Sleep(100 * time.Microsecond) // let a fast encoder run ahead if it could
	return s.r.ReadAt(p, off)
}

type frameCounter struct{ n *atomic.Int64 }

func (w frameCounter) Write(p []byte) (int, error) { w.n.Add(1); return len(p), nil }

func TestTranscodeBoundsMemory(t *testing.T) {
	data := genBook(71, 3<<20)
	const bs = 32 << 10
	for _, slots := range []int64{2, 5} {
		var written atomic.Int64
		src := &inflightSrc{r: bytes.NewReader(data), written: &written}
		_, err := TranscodeTo(context.Background(), src, int64(len(data)), frameCounter{&written}, io.Discard,
			Options{BlockSize: bs, Concurrency: 4, MaxInFlight: slots * 2 * bs})
		if err != nil {
			t.Fatal(err)
		}
		if g := src.maxGap.Load(); g > slots || g < 2 {
			t.Fatalf("MaxInFlight for %d blocks: up to %d blocks in flight", slots, g)
		}
	}
}

// lyingEncoder writes valid frames of slightly different content: only decoding the frame
// and comparing it with the block can tell.
type lyingEncoder struct {
	frameEncoder
	bad int // the block number to alter (counted per encoder)
	n   int
}

func (e *lyingEncoder) encode(dst, src []byte) ([]byte, error) {
	e.n++
	if e.n-1 == e.bad {
		src = append([]byte(nil), src...)
		src[len(src)/2] ^= 0x40
	}
	return e.frameEncoder.encode(dst, src)
}

func TestVerifyFramesCatchesBadEncoder(t *testing.T) {
	newEncoderFuncs["lying"] = func(level, bs int) (frameEncoder, error) {
		e, err := newGoEncoder(level, bs)
		return &lyingEncoder{frameEncoder: e, bad: 2}, err
	}
	defer delete(newEncoderFuncs, "lying")
	data := genBook(5, 1<<20)
	opts := Options{BlockSize: 64 << 10, Concurrency: 1, Encoder: "lying", Name: "x.zst"}
	// Without the check the bad frame goes out and only a later Verify sees it.
	var zst, idx bytes.Buffer
	if _, err := TranscodeTo(context.Background(), bytes.NewReader(data), int64(len(data)), &zst, &idx, opts); err != nil {
		t.Fatalf("unverified transcode: %v", err)
	}
	x, err := ParseIndex(idx.Bytes(), "x.idx")
	if err != nil {
		t.Fatal(err)
	}
	err = Verify(context.Background(), bytes.NewReader(zst.Bytes()), int64(zst.Len()), x, VerifyOptions{Original: bytes.NewReader(data)})
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrContentMismatch) || ce.Frame != 2 {
		t.Fatalf("Verify of the lying encoder's file: %v", err)
	}
	opts.VerifyFrames = true
	zst.Reset()
	idx.Reset()
	_, err = TranscodeTo(context.Background(), bytes.NewReader(data), int64(len(data)), &zst, &idx, opts)
	if !errors.As(err, &ce) || !errors.Is(err, ErrContentMismatch) || ce.Frame != 2 || ce.File != "x.zst" || ce.Offset != 2*64<<10 {
		t.Fatalf("verified transcode: %v", err)
	}
}

// flakySrc returns one flipped bit the first time the block at off is read.
type flakySrc struct {
	data []byte
	off  int64
	mu   sync.Mutex
	done bool
}

func (f *flakySrc) ReadAt(p []byte, off int64) (int, error) {
	n := copy(p, f.data[off:])
	f.mu.Lock()
	defer f.mu.Unlock()
	if off == f.off && !f.done {
		f.done = true
		p[n/3] ^= 0x08
	}
	return n, nil
}

func TestVerifyFramesCatchesBadRead(t *testing.T) {
	data := genBook(6, 1<<20)
	for _, enc := range Encoders() {
		src := &flakySrc{data: data, off: 3 * 64 << 10}
		var zst, idx bytes.Buffer
		_, err := TranscodeTo(context.Background(), src, int64(len(data)), &zst, &idx, Options{BlockSize: 64 << 10, Encoder: enc, VerifyFrames: true, Name: "y.zst"})
		var ce *CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, ErrContentMismatch) || ce.Frame != 3 || ce.File != "y.zst" {
			t.Fatalf("%s: %v", enc, err)
		}
	}
}

// TestRunBuffersReused: a second sequential pass reuses the first pass's run buffers (a new
// one is 2048 page faults per 8 MiB), and run buffers, idle or held, stay within the budget.
func TestRunBuffersReused(t *testing.T) {
	data := genBook(13, 64<<20)
	e := encode(t, data, Options{BlockSize: 256 << 10})
	x, _ := ParseIndex(e.idx, "")
	c, err := NewCache(CacheOptions{MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pass := func() {
		r, err := Open(bytes.NewReader(e.zst), int64(len(e.zst)), x, c, ReaderOptions{Direct: true, SkipSeekTableCheck: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got := make([]byte, 256<<10)
		for off := int64(0); off < int64(len(data)); off += 256 << 10 {
			n, err := r.ReadAt(got, off)
			if (err != nil && err != io.EOF) || !bytes.Equal(got[:n], data[off:][:n]) {
				t.Fatalf("ReadAt %d: %d %v", off, n, err)
			}
			c.freeMu.Lock()
			idle := c.idleRuns.Load()
			c.freeMu.Unlock()
			if held := c.runBytes.Load(); held+idle > c.runBudget() {
				t.Fatalf("at %d: run buffers %d held + %d idle > budget %d", off, held, idle, c.runBudget())
			}
		}
	}
	pass()
	first := c.runAllocs.Load()
	if c.Stats().DirectFrames != uint64(len(x.Frames)) || first == 0 {
		t.Fatalf("%d direct frames of %d, %d run buffers: the pass did not read in runs", c.Stats().DirectFrames, len(x.Frames), first)
	}
	pass()
	if n := c.runAllocs.Load() - first; n != 0 {
		t.Fatalf("second pass allocated %d run buffers (first pass %d): idle buffers not reused", n, first)
	}
}

// TestCacheBoundsRunsAndFrames: decoded frames and Direct readers' run buffers share the
// cache size. The daemon's memory limit is that size plus a margin: frames filling the whole
// cache while runs take their budget on top put the heap at the limit, and the collector
// then runs without end.
func TestCacheBoundsRunsAndFrames(t *testing.T) {
	data := genBook(14, 64<<20)
	e := encode(t, data, Options{BlockSize: 256 << 10})
	x, _ := ParseIndex(e.idx, "")
	const size = 16 << 20
	c, err := NewCache(CacheOptions{MaxBytes: size, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	open := func(direct bool) *Reader {
		r, err := Open(bytes.NewReader(e.zst), int64(len(e.zst)), x, c, ReaderOptions{Direct: direct, SkipSeekTableCheck: true})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	check := func(when string) {
		c.mu.Lock()
		used := c.used
		c.mu.Unlock()
		runs := c.runBytes.Load() + c.idleRuns.Load()
		// Frames still loading are charged but cannot be evicted: one per worker and reader.
		if slack := int64(3 * x.BlockSize); used+runs > size+slack {
			t.Fatalf("%s: %d bytes of frames + %d of runs > cache %d", when, used, runs, size)
		}
	}
	// Random partial reads fill the frame cache (a reader moving forward frame by frame
	// would reuse the buffers of the frames it passed).
	cached := open(false)
	defer cached.Close()
	p := make([]byte, 4096)
	for _, k := range rand.New(rand.NewPCG(14, 1)).Perm(len(data) / (200 << 10)) {
		if _, err := cached.ReadAt(p, int64(k)*200<<10); err != nil {
			t.Fatal(err)
		}
		check("partial reads")
	}
	if c.Stats().CachedBytes < size/2 {
		t.Fatalf("cache holds %d bytes: the partial reads did not fill it", c.Stats().CachedBytes)
	}
	// A sequential Direct reader then takes runs: frames make room.
	direct := open(true)
	defer direct.Close()
	buf := make([]byte, 256<<10)
	for off := int64(0); off < int64(len(data)); off += int64(len(buf)) {
		n, err := direct.ReadAt(buf, off)
		if (err != nil && err != io.EOF) || !bytes.Equal(buf[:n], data[off:][:n]) {
			t.Fatalf("ReadAt %d: %d %v", off, n, err)
		}
		check(fmt.Sprintf("direct read at %d", off))
	}
	if c.runAllocs.Load() == 0 {
		t.Fatal("the direct reader fetched no runs")
	}
}

// TestDirectReads: whole-frame reads decode into the caller's buffer (nothing cached),
// several at once as the kernel's readahead sends them, the compressed bytes fetched in
// coalesced runs; partial reads go through the cache; a truncated source is an error.
func TestDirectReads(t *testing.T) {
	data := genBook(12, 40<<20+12345)
	e := encode(t, data, Options{BlockSize: 1 << 20})
	x, _ := ParseIndex(e.idx, "")
	for _, dec := range Decoders() {
		src := &countingSrc{r: bytes.NewReader(e.zst)}
		c, err := NewCache(CacheOptions{MaxBytes: 64 << 20, Decoder: dec})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r, err := Open(src, int64(len(e.zst)), x, c, ReaderOptions{Direct: true, SkipSeekTableCheck: true})
		if err != nil {
			t.Fatal(err)
		}
		// 4 readers take frames in turn, like concurrent FUSE requests of one readahead window.
		got := make([]byte, len(data))
		var wg sync.WaitGroup
		var next atomic.Int64
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					off := next.Add(1<<20) - 1<<20
					if off >= int64(len(data)) {
						return
					}
					end := min(off+1<<20, int64(len(data)))
					if n, err := r.ReadAt(got[off:end], off); n != int(end-off) || (err != nil && err != io.EOF) {
						t.Errorf("ReadAt %d: %d %v", off, n, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: direct reads differ", dec)
		}
		st := c.Stats()
		if st.CachedFrames != 0 || st.FramesDecoded != uint64(len(x.Frames)) || st.DirectFrames != uint64(len(x.Frames)) || st.CacheMisses != 0 {
			t.Fatalf("%s: %d frames cached, %d decoded of %d: whole-frame reads must bypass the cache", dec, st.CachedFrames, st.FramesDecoded, len(x.Frames))
		}
		if len(src.sizes) > len(x.Frames)/4 {
			t.Fatalf("%s: %d source reads for %d frames: compressed bytes not fetched in runs", dec, len(src.sizes), len(x.Frames))
		}
		if c.runBytes.Load() > c.runBudget() {
			t.Fatalf("%s: %d bytes in runs, budget %d", dec, c.runBytes.Load(), c.runBudget())
		}
		// A partial read goes through the cache.
		p := make([]byte, 4096)
		if _, err := r.ReadAt(p, 5<<20+100); err != nil || !bytes.Equal(p, data[5<<20+100:][:4096]) {
			t.Fatalf("%s: partial read: %v", dec, err)
		}
		if c.Stats().CachedFrames != 1 {
			t.Fatalf("%s: partial read not cached", dec)
		}
		r.Close()
	}
	// The source ends early: frames past the end fail, earlier ones still read.
	short := e.zst[:x.Frames[20].CompressedOffset+10]
	r, err := Open(bytes.NewReader(short), int64(len(e.zst)), x, nil, ReaderOptions{Direct: true, SkipSeekTableCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := make([]byte, 1<<20)
	for fi := 0; fi < 20; fi++ {
		if _, err := r.ReadAt(p, int64(fi)<<20); err != nil {
			t.Fatalf("frame %d: %v", fi, err)
		}
	}
	_, err = r.ReadAt(p, 20<<20)
	ce := asCorrupt(t, err, ErrTruncated)
	if ce.Frame != 20 {
		t.Fatalf("truncation reported at frame %d", ce.Frame)
	}
}
