package qzst

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ReaderOptions configure Open.
type ReaderOptions struct {
	// Name labels errors (usually the .zst path or URI).
	Name string
	// Readahead is how many frames are decoded ahead of a sequential reader
	// (default 4*GOMAXPROCS, at least 16; negative disables). Readahead never takes more
	// than a quarter of the cache.
	Readahead int
	// MaxFetch bounds the compressed bytes of one coalesced source read (default 16 MiB).
	MaxFetch int64
	// SkipSeekTableCheck skips reading the .zst's seek table at Open to compare it with the
	// index (one small read; worth skipping only when the pair was verified already).
	SkipSeekTableCheck bool
	// Direct decodes a read that covers a whole frame not in the cache straight into the
	// caller's buffer, without caching it: no copy out of a cache buffer, and no churn of
	// the cache by frames the caller keeps itself. Compressed bytes are fetched ahead in
	// runs instead, and Readahead is off. For callers that bring their
	// own parallelism and caching, such as the kernel's readahead over FUSE. Partial-frame
	// reads still go through the cache.
	Direct bool
	// WholeFrames decodes every frame whole, even for a random read that needs a few bytes
	// of it. By default a random read of a frame not in the cache decodes it only up to the
	// bytes asked for and keeps it in the cache in part, and a later read continues it
	// (when the index has the frames' compressed CRCs, which guard those bytes, and the
	// decoder can decode in steps). For comparisons.
	WholeFrames bool
	Logger      *slog.Logger
}

// Reader is an io.ReaderAt over the uncompressed bytes of a seekable .zst. It is safe for
// concurrent use. It never returns bytes that failed a size or checksum check.
type Reader struct {
	src      io.ReaderAt
	idx      *Index
	c        *Cache
	ownCache bool
	closer   io.Closer // set by OpenFile
	name     string
	fileKey  [32]byte
	ra       int
	direct   bool
	steps    stepDecoder // nil: frames are decoded whole
	maxFetch int64
	log      *slog.Logger
	stats    counters
	closed   atomic.Bool
	wg       sync.WaitGroup // readahead in flight

	mu        sync.Mutex
	lastFrame int        // frame of the previous read
	forward   bool       // the previous reads moved forward frame by frame
	raNext    int        // first frame readahead has not been scheduled for
	runs      []*compRun // Direct: recently fetched compressed runs, newest last
	// ahead is how many runs Direct reads keep fetched or in flight after the one being
	// read: enough to cover the source's bandwidth-delay product, in runs, as the Reader
	// measures it (window), within the run budget.
	ahead int
	// fetchTime is the mean time a run fetched ahead took to arrive, consumeTime the mean
	// time readers took to move from one run to the next (both moving averages); lastRun
	// and lastTouch are the run readers moved to last, and when.
	fetchTime, consumeTime time.Duration
	lastRun                *compRun
	lastTouch              time.Time
}

// compRun is a run of compressed frames fetched in one source read for Direct reads, which
// decode them one by one as the kernel asks. Readers of a run still being fetched wait for
// it (single flight).
type compRun struct {
	first, n int
	start    int64
	rb       *runBuf // one reference per user, one for Reader.runs
	done     chan struct{}
	err      error
	ahead    bool        // fetched ahead of the reads (prefetchAfter), not on demand
	reading  atomic.Bool // its source read has started
}

// Direct reads fetch compressed bytes ahead in runs of up to directRun frames and
// directRunBytes once reads look sequential (a run ends within directNear frames before the
// frame asked for); a Reader keeps its window of runs ahead (Reader.ahead, at most
// maxAhead) and runsBehind more.
const (
	directRun      = 16
	directRunBytes = 4 << 20 // compressed
	directNear     = 4 * directRun
	maxAhead       = 16 // runs in flight ahead: 64 MiB, a 1 GB/s link with a 64 ms round trip
	runsBehind     = 3  // runs kept besides the window: the one being read and the last ones
)

// What a frame that cannot be trusted reports.
var (
	ErrFrameDecode   = errors.New("frame does not decode")
	ErrFrameChecksum = errors.New("frame checksum mismatch")
	ErrFrameSize     = errors.New("frame size mismatch")
	ErrClosed        = errors.New("reader is closed")
)

// Open returns a Reader over src, a .zst of srcSize bytes described by idx. A nil idx is
// rebuilt from the seek table (IndexFromSeekTable). A nil cache gives the Reader a private one
// of a few frames. The index must match the file: sizes are compared at once, the seek table
// unless SkipSeekTableCheck, and each frame's size and checksum when it is read.
func Open(src io.ReaderAt, srcSize int64, idx *Index, cache *Cache, opts ReaderOptions) (*Reader, error) {
	name := opts.Name
	if idx == nil {
		var err error
		if idx, err = IndexFromSeekTable(src, srcSize, name); err != nil {
			return nil, err
		}
		opts.SkipSeekTableCheck = true
	} else {
		if err := idx.check(name); err != nil {
			return nil, err
		}
		if srcSize != idx.ZstSize {
			cause := ErrIndexMismatch
			if srcSize < idx.ZstSize {
				cause = fmt.Errorf("%w: %w", ErrIndexMismatch, ErrTruncated)
			}
			return nil, corrupt(name, -1, min(srcSize, idx.ZstSize), "zst_size", cause, "file has %d bytes, index says %d", srcSize, idx.ZstSize)
		}
	}
	if !opts.SkipSeekTableCheck {
		st, err := ReadSeekTable(src, srcSize, name)
		if err != nil {
			return nil, err
		}
		if err := checkSeekTable(idx, st, name); err != nil {
			return nil, err
		}
	}
	r := &Reader{src: src, idx: idx, c: cache, name: name, maxFetch: opts.MaxFetch, lastFrame: -1, log: opts.Logger, ahead: 1}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.maxFetch <= 0 {
		r.maxFetch = 16 << 20
	}
	r.ra = opts.Readahead
	r.direct = opts.Direct
	if r.direct {
		// Readahead into the cache would decode ahead the frames the kernel is about to ask
		// for whole, and those reads would then take the copying path.
		r.ra = -1
	}
	if r.ra == 0 {
		r.ra = max(16, 4*runtime.GOMAXPROCS(0))
	}
	if r.ra < 0 {
		r.ra = 0
	}
	if r.c == nil {
		var err error
		if r.c, err = NewCache(CacheOptions{MaxBytes: privateCacheBytes(r.ra, idx.BlockSize)}); err != nil {
			return nil, err
		}
		r.ownCache = true
	}
	// Readahead never takes more than a quarter of the cache, so it cannot evict itself.
	r.ra = min(r.ra, int(r.c.maxBytes/4/int64(idx.BlockSize)))
	if idx.HasCompressedCRC && !opts.WholeFrames {
		r.steps = r.c.dec.steps()
	}
	if idx.hasHash() {
		r.fileKey = idx.SHA256
	} else {
		binary.LittleEndian.PutUint64(r.fileKey[:], r.c.nextAnon.Add(1))
		r.fileKey[31] = 0xff // never a SHA-256 we will meet in practice
	}
	return r, nil
}

// privateCacheBytes sizes a Reader's own cache: room for its readahead (which takes at most a
// quarter), at most 64 MiB, at least two frames.
func privateCacheBytes(ra int, bs uint32) int64 {
	return max(2*int64(bs), min(64<<20, 4*int64(max(ra, 1))*int64(bs)))
}

// Size returns the uncompressed size.
func (r *Reader) Size() int64 { return r.idx.Size }

// Index returns the index the Reader uses (do not modify it).
func (r *Reader) Index() *Index { return r.idx }

// Stats returns this Reader's counters.
func (r *Reader) Stats() Stats { return r.stats.snapshot() }

// Close waits for this Reader's readahead and closes a private cache. It closes src only
// when OpenFile opened it.
func (r *Reader) Close() error {
	r.mu.Lock()
	was := r.closed.Swap(true)
	r.mu.Unlock()
	if was {
		return nil
	}
	r.wg.Wait()
	r.mu.Lock()
	runs := r.runs
	r.runs = nil
	r.mu.Unlock()
	for _, cr := range runs {
		<-cr.done
		cr.rb.release()
	}
	if r.ownCache {
		r.c.Close()
	}
	if r.closer != nil {
		if err := r.closer.Close(); err != nil {
			return fmt.Errorf("close %s: %w", r.name, err)
		}
	}
	return nil
}

// ReadAt implements io.ReaderAt.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if r.closed.Load() {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", r.name, off)
	}
	if off >= r.idx.Size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	bs := int64(r.idx.BlockSize)
	n := 0
	for n < len(p) && off+int64(n) < r.idx.Size {
		pos := off + int64(n)
		fi := int(pos / bs)
		if r.direct && pos == int64(fi)*bs && len(p)-n >= int(r.idx.Frames[fi].UncompressedSize) {
			k, err := r.readDirect(fi, p[n:n+int(r.idx.Frames[fi].UncompressedSize)])
			if err != nil {
				return n, err
			}
			if k > 0 {
				n += k
				continue
			}
		}
		seq := r.note(fi)
		start := int64(fi) * bs
		need := int(min(off+int64(len(p)), start+int64(r.idx.Frames[fi].UncompressedSize)) - start)
		e, avail, err := r.frame(fi, seq, need)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], e.data[pos-start:avail])
		r.c.release(e)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readDirect decodes frame fi into dst (exactly its size) unless the frame is cached or
// loading, in which case it returns 0 and the cache serves it.
func (r *Reader) readDirect(fi int, dst []byte) (int, error) {
	if r.c.present(r.key(fi)) {
		return 0, nil
	}
	run, err := r.compressed(fi)
	if err != nil {
		return 0, err
	}
	defer run.rb.release()
	f := r.idx.Frames[fi]
	comp := run.rb.b[int64(f.CompressedOffset)-run.start:][:f.CompressedSize]
	r.count(func(c *counters) { c.direct.Add(1) })
	r.c.directSem <- struct{}{}
	data, err := decodeFrame(r.c.dec, r.idx, fi, comp, dst[:0:len(dst)], r.name)
	<-r.c.directSem
	if err != nil {
		r.count(func(c *counters) { c.decodeErrs.Add(1) })
		r.log.Warn("qzst frame rejected", "file", r.name, "frame", fi, "err", err)
		return 0, err
	}
	r.count(func(c *counters) { c.decoded.Add(1) })
	if &data[0] != &dst[0] { // cannot happen: the decoder never writes past cap(dst)
		return 0, fmt.Errorf("read %s frame %d: decoder did not write into the buffer", r.name, fi)
	}
	return len(data), nil
}

// compressed returns a fetched run holding frame fi, with a reference the caller releases.
func (r *Reader) compressed(fi int) (*compRun, error) {
	for {
		r.mu.Lock()
		if cr := r.holder(fi); cr != nil {
			cr.rb.refs.Add(1)
			r.mu.Unlock()
			select {
			case <-cr.done:
			default:
				// Waiting for a run fetched ahead whose source read is under way: the
				// window was short (counted; window() sizes it). One whose read has not
				// started yet waits for the scheduler, not the source.
				reading, t0 := cr.reading.Load(), time.Now()
				<-cr.done
				if cr.ahead && reading && cr.err == nil {
					d := time.Since(t0)
					r.count(func(c *counters) { c.stalls.Add(1); c.stallNs.Add(uint64(d)) })
				}
			}
			switch {
			case cr.err != nil:
				cr.rb.release()
				return nil, cr.err
			case fi >= cr.first+cr.n: // the source ended inside the run before frame fi
				cr.rb.release()
				continue
			}
			r.touch(cr)
			r.prefetchAfter(cr)
			return cr, nil
		}
		cr, err := r.fetchRun(fi) // unlocks r.mu
		if err == nil {
			r.touch(cr)
			r.prefetchAfter(cr)
		}
		return cr, err
	}
}

// prefetchAfter keeps the Reader's window of runs (r.ahead) fetched or in flight after cr
// when cr is a sequential run (more than one frame): it starts every run missing from the
// window, each with its own source read, at once (ranged GETs in flight together for a
// remote book). Remote reads then never wait a round trip at a run boundary.
func (r *Reader) prefetchAfter(cr *compRun) {
	if cr.n < 2 {
		return
	}
	var started, old []*compRun
	r.mu.Lock()
	next := cr.first + cr.n
	for range r.ahead {
		if next >= len(r.idx.Frames) || r.closed.Load() {
			break
		}
		h := r.holder(next)
		if h == nil {
			var o *compRun
			h, o = r.newRun(next, true)
			started = append(started, h)
			if o != nil {
				old = append(old, o)
			}
		}
		next = h.first + h.n
	}
	r.mu.Unlock()
	for _, o := range old {
		o.rb.release() // the list's reference
	}
	for _, h := range started {
		if !r.async(func() {
			r.fillRun(h)
			h.rb.release()
		}) {
			r.failRun(h, ErrClosed)
			h.rb.release()
		}
	}
}

// Moving averages of the window's inputs weigh the newest sample by 1/ewmaWeight.
const ewmaWeight = 4

func ewma(avg, sample time.Duration) time.Duration {
	if avg == 0 {
		return sample
	}
	return avg + (sample-avg)/ewmaWeight
}

// touch notes that readers moved on to run cr. The time since they moved to the one before
// is how long they take to consume a run; with the time a run fetched ahead takes to
// arrive, it sizes the window: the runs that must be in flight so that the next one has
// arrived when readers reach it (the source's bandwidth-delay product, in runs), plus one
// for the variation, within maxAhead and the run budget (each Reader's window and the runs
// it keeps fit the cache's budget).
func (r *Reader) touch(cr *compRun) {
	if cr.n < 2 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if cr == r.lastRun {
		return
	}
	now := time.Now()
	if r.lastRun != nil && cr.first == r.lastRun.first+r.lastRun.n {
		r.consumeTime = ewma(r.consumeTime, now.Sub(r.lastTouch))
	}
	r.lastRun, r.lastTouch = cr, now
	if r.consumeTime <= 0 || r.fetchTime <= 0 {
		return
	}
	w := int((r.fetchTime+r.consumeTime-1)/r.consumeTime) + 1
	room := int(r.c.runBudget()/directRunBytes) - runsBehind
	r.ahead = max(1, min(w, maxAhead, room))
	r.c.noteWindow(r.ahead, int64(r.ahead)*int64(len(cr.rb.b)))
}

// fetchRun fetches a new run starting at frame fi on demand (r.mu held on entry, released).
func (r *Reader) fetchRun(fi int) (*compRun, error) {
	if r.closed.Load() { // Close has released the runs; a new one would never be
		r.mu.Unlock()
		return nil, ErrClosed
	}
	cr, old := r.newRun(fi, false)
	r.mu.Unlock()
	if old != nil {
		old.rb.release() // the list's reference
	}
	if err := r.fillRun(cr); err != nil {
		cr.rb.release()
		return nil, err
	}
	return cr, nil
}

// newRun registers a run starting at frame fi (r.mu held): up to directRun frames no run
// holds, MaxFetch bytes at most, when reads look sequential. Its buffer has one reference
// for r.runs and one for the caller, who fills it (fillRun). ahead marks a run fetched
// before any read asked for it. It returns the run that dropped out of r.runs, if any,
// whose list reference the caller releases once r.mu is unlocked.
func (r *Reader) newRun(fi int, ahead bool) (cr, old *compRun) {
	seq := false
	for _, cr := range r.runs {
		if end := cr.first + cr.n; fi >= end && fi < end+directNear {
			seq = true
		}
	}
	n := 1
	limit := min(r.maxFetch, directRunBytes)
	room := r.c.runBudget() - r.c.runBytes.Load() // for the buffer, whose size is a class
	for seq && n < directRun && fi+n < len(r.idx.Frames) && r.holder(fi+n) == nil {
		last := r.idx.Frames[fi+n]
		size := int64(last.CompressedOffset) + int64(last.CompressedSize) - int64(r.idx.Frames[fi].CompressedOffset)
		if size > limit || int64(runClass(int(size))) > room {
			break
		}
		n++
	}
	first, last := r.idx.Frames[fi], r.idx.Frames[fi+n-1]
	start := int64(first.CompressedOffset)
	size := int64(last.CompressedOffset) + int64(last.CompressedSize) - start
	cr = &compRun{first: fi, n: n, start: start, rb: r.c.getRun(int(size), 2), done: make(chan struct{}), ahead: ahead}
	r.runs = append(r.runs, cr)
	if len(r.runs) > r.ahead+runsBehind {
		old = r.runs[0]
		r.runs = append(r.runs[:0], r.runs[1:]...)
	}
	return cr, old
}

// fillRun reads a registered run's compressed bytes and publishes it. A run that the source
// ends inside, or whose read fails, ends before the first frame that did not arrive whole;
// it fails (and is forgotten, so a later read tries again) when that is its first frame.
func (r *Reader) fillRun(cr *compRun) error {
	r.count(func(c *counters) { c.readahead.Add(uint64(cr.n - 1)) })
	cr.reading.Store(true)
	t0 := time.Now()
	good, err := r.readRun(cr.first, cr.n, cr.rb.b)
	if err == nil {
		if cr.ahead && cr.n > 1 {
			r.mu.Lock()
			r.fetchTime = ewma(r.fetchTime, time.Since(t0))
			r.mu.Unlock()
		}
		close(cr.done)
		return nil
	}
	if good > 0 {
		r.mu.Lock()
		cr.n = good
		r.mu.Unlock()
		close(cr.done)
		return nil
	}
	r.failRun(cr, err)
	return err
}

// failRun publishes a run that has no frame: it leaves r.runs (dropping the list's
// reference) and its readers get err.
func (r *Reader) failRun(cr *compRun, err error) {
	r.mu.Lock()
	cr.n, cr.err = 0, err
	for i, x := range r.runs {
		if x == cr {
			r.runs = append(r.runs[:i], r.runs[i+1:]...)
			cr.rb.release()
			break
		}
	}
	r.mu.Unlock()
	close(cr.done)
}

// readRun reads the compressed bytes of the n frames from first into buf. On a short read
// it returns how many frames arrived whole and the error for the first that did not: the
// source ending inside it (ErrTruncated), or the source's read error.
func (r *Reader) readRun(first, n int, buf []byte) (good int, err error) {
	start := int64(r.idx.Frames[first].CompressedOffset)
	r.c.flight.add(int64(len(buf)))
	k, err := r.src.ReadAt(buf, start)
	r.c.flight.add(-int64(len(buf)))
	r.count(func(c *counters) { c.reads.Add(1); c.fetched.Add(uint64(k)) })
	if k == len(buf) {
		return n, nil
	}
	for good < n {
		f := r.idx.Frames[first+good]
		if int64(f.CompressedOffset)+int64(f.CompressedSize) > start+int64(k) {
			break
		}
		good++
	}
	if err == nil || errors.Is(err, io.EOF) {
		return good, corrupt(r.name, int64(first+good), start+int64(k), "", ErrTruncated, "source ends inside frame %d: read %d of %d bytes for frames %d-%d", first+good, k, len(buf), first, first+n-1)
	}
	return good, fmt.Errorf("read %s frames %d-%d at offset %d: %w", r.name, first, first+n-1, start, err)
}

// holder returns the run holding frame fi, if any; r.mu is held. A run still being fetched
// counts with the frames it asked for.
func (r *Reader) holder(fi int) *compRun {
	for _, cr := range r.runs {
		if fi >= cr.first && fi < cr.first+cr.n {
			return cr
		}
	}
	return nil
}

// note records an access to frame fi and reports whether the Reader is being read
// sequentially: forward one frame at a time (or still in the same frame after that).
func (r *Reader) note(fi int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.lastFrame
	switch fi {
	case prev:
	case prev + 1:
		r.forward = true
	default:
		r.forward = false
	}
	r.lastFrame = fi
	if fi == prev+1 && prev >= 0 && r.forward {
		r.c.demote(r.key(prev))
	}
	return r.forward && r.ra > 0
}

func (r *Reader) key(fi int) frameKey { return frameKey{file: r.fileKey, frame: uint32(fi)} }

// frame returns frame fi decoded at least up to need bytes, with a cache reference the
// caller must release, and how many of its bytes are decoded. A sequential reader's misses
// decode whole frames; a random read's decode only up to the bytes it needs (loadPart).
func (r *Reader) frame(fi int, seq bool, need int) (*entry, int, error) {
	for attempt := 0; ; attempt++ {
		e, owner, hit := r.c.acquire(r.key(fi), int64(r.idx.Frames[fi].UncompressedSize))
		switch {
		case owner:
			r.count(func(c *counters) { c.misses.Add(1) })
			// The demanded frame is fetched alone so the first byte waits for one frame, not
			// a readahead run; the frames after it go out first, asynchronously, in runs.
			if seq {
				r.extend(fi)
			}
			if seq || r.steps == nil {
				r.load(fi, []*entry{e}, true)
			} else {
				r.loadPart(fi, e, need)
			}
		case hit:
			r.count(func(c *counters) { c.hits.Add(1) })
		default:
			r.count(func(c *counters) { c.waits.Add(1) })
		}
		if seq {
			r.extend(fi)
		}
		<-e.done
		if e.err == nil {
			avail, err := r.upTo(fi, e, need)
			if err != nil {
				r.c.release(e)
				return nil, 0, err
			}
			return e, avail, nil
		}
		r.c.release(e)
		// The load we waited for may have been another Reader's of the same content (same
		// cache key) that failed for its own reasons. One that Reader abandoned when it was
		// closed is no failure of ours: wait for or make the next load, however many
		// Readers come and go meanwhile. After its source's I/O error or damage, load it
		// once more from our own source.
		switch {
		case owner:
			return nil, 0, e.err
		case errors.Is(e.err, ErrClosed) && !r.closed.Load():
			attempt--
		case attempt > 0:
			return nil, 0, e.err
		}
	}
}

// loadPart fills the owned entry e of frame fi for a random read: the frame's compressed
// bytes are fetched and checked against the index's CRC-32C, and decoded only up to need
// bytes (whole zstd blocks). The entry keeps the decoder, so a later read of the frame
// continues where this one stopped (upTo). From a source that streams (RangeStreamer) the
// blocks are decoded as they arrive, with a decoder that can; nothing is published before
// the whole frame has arrived and passed its CRC.
func (r *Reader) loadPart(fi int, e *entry, need int) {
	f := r.idx.Frames[fi]
	size, full := int(f.CompressedSize), int(f.UncompressedSize)
	off := int64(f.CompressedOffset)
	rb := r.c.getRun(size, 1)
	comp := rb.b[:size]
	buf := r.c.getBuf(int(r.idx.BlockSize))
	var st *stepState
	fail := func(err error, damaged bool) {
		if st != nil {
			st.free()
		} else {
			rb.release()
		}
		r.c.putBuf(buf)
		if damaged {
			r.count(func(c *counters) { c.decodeErrs.Add(1) })
			r.log.Warn("qzst frame rejected", "file", r.name, "frame", fi, "err", err)
		}
		r.c.complete(e, nil, err)
	}
	// The decoder sees only the frame's size: it never writes past it.
	fs, err := r.steps.begin(comp, buf[:0:full])
	if err != nil {
		fail(r.stepErr(fi, err), true)
		return
	}
	st = &stepState{fs: fs, rb: rb, bytes: r.steps.stateBytes()}
	got, n, done, derr := 0, 0, false, error(nil)
	rs, streams := r.src.(RangeStreamer)
	r.c.flight.add(int64(size))
	if !streams {
		got, err = r.src.ReadAt(comp, off)
	} else if rc, serr := rs.StreamRange(off, int64(size)); serr != nil {
		err = serr
	} else {
		arriving, _ := fs.(arrivingSteps)
		for got < size && err == nil {
			var k int
			k, err = rc.Read(comp[got:min(size, got+arriveChunk)])
			got += k
			// Decode what has arrived, up to the read (past the frame header's first
			// bytes; a damaged frame fails here or, at the latest, on its CRC).
			if arriving != nil && derr == nil && !done && n < need && got > 5 {
				n, done, _, derr = arriving.decodeAvail(need, got)
			}
		}
		rc.Close()
	}
	r.c.flight.add(-int64(size))
	r.count(func(c *counters) { c.reads.Add(1); c.fetched.Add(uint64(got)) })
	switch {
	case got == size:
	case err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		fail(corrupt(r.name, int64(fi), off+int64(got), "", ErrTruncated, "source ends inside frame %d: read %d of %d bytes", fi, got, size), false)
		return
	default:
		fail(fmt.Errorf("read %s frame %d at offset %d: %w", r.name, fi, off, err), false)
		return
	}
	if err := checkCompressedCRC(r.idx, fi, comp, r.name); err != nil {
		fail(err, true)
		return
	}
	if err := checkEnvelope(r.idx, fi, comp, r.name); err != nil {
		fail(err, true)
		return
	}
	if derr == nil && !done && n < need {
		n, done, derr = fs.decodeTo(need)
	}
	if derr != nil {
		fail(r.stepErr(fi, derr), true)
		return
	}
	r.count(func(c *counters) { c.partial.Add(1) })
	if !done {
		r.c.completePart(e, buf[:full], n, st)
		return
	}
	st.free()
	if n != full {
		r.c.putBuf(buf)
		r.count(func(c *counters) { c.decodeErrs.Add(1) })
		r.c.complete(e, nil, corrupt(r.name, int64(fi), off, "uncompressed_size", ErrFrameSize, "decoded %d bytes, index says %d", n, full))
		return
	}
	r.count(func(c *counters) { c.decoded.Add(1) })
	r.c.complete(e, buf[:full], nil)
}

// RangeStreamer is implemented by sources that can stream a range of the .zst as it
// arrives, like an object store's ranged GET. A random read of a frame from such a source
// decodes the frame's blocks while the rest of its bytes are still on the way: it waits for
// about the longer of the transfer and the decode instead of their sum. No decoded byte is
// published before the whole frame has arrived and passed its CRC-32C.
type RangeStreamer interface {
	StreamRange(off, n int64) (io.ReadCloser, error)
}

// arriveChunk bounds each read of an arriving frame, so that its blocks are decoded as
// they come off the socket rather than after a large read fills.
const arriveChunk = 32 << 10

// upTo returns how many bytes of entry e (frame fi, published) are decoded, after
// continuing its decode until at least need are. One reader continues a frame at a time;
// the others wait for it. A frame that fails to continue is dropped from the cache.
func (r *Reader) upTo(fi int, e *entry, need int) (int, error) {
	c := r.c
	resumed := false
	for {
		c.mu.Lock()
		switch {
		case e.avail >= need:
			a := e.avail
			c.mu.Unlock()
			return a, nil
		case e.err != nil: // a continuation failed
			err := e.err
			c.mu.Unlock()
			return 0, err
		case e.busy != nil:
			ch := e.busy
			c.mu.Unlock()
			<-ch
			continue
		case e.st == nil:
			c.mu.Unlock()
			return 0, fmt.Errorf("read %s frame %d: %d of %d bytes decoded and no decoder to continue", r.name, fi, e.avail, len(e.data))
		}
		ch := make(chan struct{})
		e.busy = ch
		st := e.st
		c.mu.Unlock()
		if !resumed {
			r.count(func(c *counters) { c.resumes.Add(1) })
			resumed = true
		}
		n, done, err := st.fs.decodeTo(need)
		if err == nil && done && n != len(e.data) {
			err = corrupt(r.name, int64(fi), int64(r.idx.Frames[fi].CompressedOffset), "uncompressed_size", ErrFrameSize, "decoded %d bytes, index says %d", n, len(e.data))
		} else if err != nil {
			err = r.stepErr(fi, err)
		}
		c.mu.Lock()
		e.busy = nil
		close(ch)
		switch {
		case err != nil:
			e.err = err
			e.st = nil
			c.dropLocked(e)
		case done:
			e.avail = n
			e.st = nil
			c.charge(e, int64(cap(e.data)))
		default:
			e.avail = n
		}
		c.mu.Unlock()
		if err != nil || done {
			st.free()
		}
		if err != nil {
			r.count(func(c *counters) { c.decodeErrs.Add(1) })
			r.log.Warn("qzst frame rejected", "file", r.name, "frame", fi, "err", err)
			return 0, err
		}
		if done {
			r.count(func(c *counters) { c.decoded.Add(1) })
		}
	}
}

// stepErr labels an error of the stepwise decoder of frame fi.
func (r *Reader) stepErr(fi int, err error) error {
	cause := ErrFrameDecode
	if r.steps.checksum(err) {
		cause = ErrFrameChecksum
	}
	return corrupt(r.name, int64(fi), int64(r.idx.Frames[fi].CompressedOffset), "", cause, "%v", err)
}

// reserveRun takes ownership of the absent frames from..to that directly follow each other,
// stopping at the first frame already cached or loading, or at MaxFetch compressed bytes.
func (r *Reader) reserveRun(from, to int, fetched uint32) []*entry {
	var run []*entry
	total := int64(fetched)
	for fi := from; fi <= to && fi < len(r.idx.Frames); fi++ {
		f := r.idx.Frames[fi]
		if total+int64(f.CompressedSize) > r.maxFetch && (len(run) > 0 || fetched > 0) {
			break
		}
		e, owner, _ := r.c.acquire(r.key(fi), int64(f.UncompressedSize))
		if !owner {
			r.c.release(e)
			break
		}
		total += int64(f.CompressedSize)
		run = append(run, e)
	}
	return run
}

// extend schedules readahead so that frames up to fi+Readahead are loading, refilling
// once half of the window has been consumed so that source reads come in batches.
func (r *Reader) extend(fi int) {
	r.mu.Lock()
	next := max(r.raNext, fi+1)
	end := min(fi+r.ra, len(r.idx.Frames)-1)
	if next > end || next > fi+r.ra/2+1 {
		r.mu.Unlock()
		return
	}
	r.raNext = end + 1
	r.mu.Unlock()
	for next <= end {
		if r.c.present(r.key(next)) {
			next++
			continue
		}
		run := r.reserveRun(next, end, 0)
		if len(run) == 0 {
			next++
			continue
		}
		first := next
		next += len(run)
		if !r.async(func() { r.load(first, run, false) }) {
			r.abandon(run)
			return
		}
	}
}

// load fetches the compressed bytes of the consecutive frames run (starting at frame first)
// with one source read, then decodes them. With demand set the first frame is decoded by the
// caller and the rest by readahead workers; otherwise all go to workers. Each entry's
// reference is released once it is complete, except a demanded first frame's (the caller's).
func (r *Reader) load(first int, run []*entry, demand bool) {
	fs := r.idx.Frames[first : first+len(run)]
	start := int64(fs[0].CompressedOffset)
	end := int64(fs[len(fs)-1].CompressedOffset) + int64(fs[len(fs)-1].CompressedSize)
	rb := r.c.getRun(int(end-start), len(run)) // each frame below releases it once
	buf := rb.b
	if good, err := r.readRun(first, len(run), buf); err != nil {
		// Frames wholly inside what was read are still good; the rest fail.
		for i := good; i < len(run); i++ {
			r.c.complete(run[i], nil, err)
			if i > 0 || !demand {
				r.c.release(run[i])
			}
			rb.release()
		}
		run, fs = run[:good], fs[:good]
		if good == 0 {
			return
		}
	}
	if !demand || len(run) > 1 {
		r.count(func(c *counters) { c.readahead.Add(uint64(len(run) - btoi(demand))) })
	}
	if demand { // the caller is waiting for this one: decode it before queuing the rest
		data, err := r.decode(first, buf[:fs[0].CompressedSize])
		rb.release()
		r.c.complete(run[0], data, err)
	}
	for i, e := range run {
		if i == 0 && demand {
			continue
		}
		comp := buf[int64(fs[i].CompressedOffset)-start:][:fs[i].CompressedSize]
		fi := first + i
		if !r.async(func() {
			r.c.sem <- struct{}{}
			data, err := r.decode(fi, comp)
			rb.release()
			<-r.c.sem
			r.c.complete(e, data, err)
			r.c.release(e)
		}) {
			r.abandon(run[i : i+1])
			rb.release()
		}
	}
}

// async runs f on a goroutine that Close waits for; after Close it reports false instead.
func (r *Reader) async(f func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
	return true
}

// abandon fails owned entries that will not be loaded, waking anyone waiting on them.
func (r *Reader) abandon(run []*entry) {
	for _, e := range run {
		r.c.complete(e, nil, ErrClosed)
		r.c.release(e)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// decode decodes frame fi into a pooled buffer, counting the outcome.
func (r *Reader) decode(fi int, comp []byte) ([]byte, error) {
	data, err := decodeFrame(r.c.dec, r.idx, fi, comp, r.c.getBuf(int(r.idx.BlockSize)), r.name)
	if err != nil {
		r.count(func(c *counters) { c.decodeErrs.Add(1) })
		r.log.Warn("qzst frame rejected", "file", r.name, "frame", fi, "err", err)
		return nil, err
	}
	r.count(func(c *counters) { c.decoded.Add(1) })
	return data, nil
}

// decodeFrame checks frame fi's envelope against the index, decodes comp into buf (whose
// capacity bounds the output) and checks the size. The decoder checks the content against
// the frame's checksum, which was just compared with the index's.
func decodeFrame(dec frameDecoder, x *Index, fi int, comp, buf []byte, name string) ([]byte, error) {
	f := x.Frames[fi]
	off := int64(f.CompressedOffset)
	if err := checkEnvelope(x, fi, comp, name); err != nil {
		return nil, err
	}
	data, err := dec.decodeAll(comp, buf[:0])
	if err != nil {
		cause := ErrFrameDecode
		if dec.errChecksum(err) {
			cause = ErrFrameChecksum
		}
		return nil, corrupt(name, int64(fi), off, "", cause, "%v", err)
	}
	if len(data) != int(f.UncompressedSize) {
		return nil, corrupt(name, int64(fi), off, "uncompressed_size", ErrFrameSize, "decoded %d bytes, index says %d", len(data), f.UncompressedSize)
	}
	return data, nil
}

// checkEnvelope checks frame fi's zstd magic, that it carries a content checksum, and that
// the checksum is the index's.
func checkEnvelope(x *Index, fi int, comp []byte, name string) error {
	f := x.Frames[fi]
	off := int64(f.CompressedOffset)
	if m := binary.LittleEndian.Uint32(comp); m != zstdFrameMagic {
		return corrupt(name, int64(fi), off, "frame_magic", ErrFrameDecode, "%#08x", m)
	}
	if comp[4]&zstdChecksumFlag == 0 {
		return corrupt(name, int64(fi), off+4, "frame_header_descriptor", ErrFrameChecksum, "frame has no content checksum")
	}
	if sum := binary.LittleEndian.Uint32(comp[len(comp)-4:]); sum != f.Checksum {
		return corrupt(name, int64(fi), off+int64(len(comp))-4, "content_checksum", ErrFrameChecksum, "frame says %#08x, index %#08x", sum, f.Checksum)
	}
	return nil
}

// checkCompressedCRC compares frame fi's compressed bytes with the index's CRC-32C, when
// the index has one.
func checkCompressedCRC(x *Index, fi int, comp []byte, name string) error {
	if !x.HasCompressedCRC {
		return nil
	}
	f := x.Frames[fi]
	if got := CompressedCRC(comp); got != f.CompressedCRC {
		return corrupt(name, int64(fi), int64(f.CompressedOffset), "compressed_crc32c", ErrFrameChecksum, "frame bytes have %#08x, index %#08x", got, f.CompressedCRC)
	}
	return nil
}

// count applies f to the Reader's and the Cache's counters.
func (r *Reader) count(f func(*counters)) {
	f(&r.stats)
	f(&r.c.stats)
}
