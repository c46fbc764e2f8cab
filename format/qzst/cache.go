package qzst

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCacheBytes is the frame cache budget when CacheOptions.MaxBytes is zero.
const DefaultCacheBytes = 256 << 20

// CacheOptions configure NewCache.
type CacheOptions struct {
	// MaxBytes bounds the decoded frames kept (default 256 MiB). Frames being read at the
	// moment of eviction stay alive until their readers finish, so the bound can be passed
	// briefly by the frames in use.
	MaxBytes int64
	// Concurrency is the number of frames decoded at once by readahead workers (default
	// GOMAXPROCS); Direct reads may decode directPerCore times as many.
	Concurrency int
	// Decoder names the frame decoder (DecoderLibzstd, DecoderGo); default the first of
	// Decoders(). Both check every frame's content checksum.
	Decoder string
}

// Cache holds decoded frames for every Reader that shares it, and the decoders and workers
// that fill it. Frames are keyed by the .zst's SHA-256 (from its index) and frame number, so
// two Readers of the same content, even from different tiers, share frames. Eviction is LRU
// with drop-behind: a frame a sequential reader has moved past goes to the cold end.
type Cache struct {
	maxBytes int64
	dec      frameDecoder
	sem      chan struct{} // readahead decode workers
	// directSem bounds Direct decodes to two per core (directPerCore): the kernel may send
	// many whole-frame reads at once, and each decode holds a thread. With one per core the
	// CPUs idled through a tenth of a sequential cold read on the 2-vCPU VM (BenchmarkFS logs
	// the idle share of each pass): decoders waited on a fetch, a reply write or the
	// scheduler. Two per core fill that time.
	directSem chan struct{}
	stats     counters
	nextAnon  atomic.Uint64
	freeMu    sync.Mutex
	free      map[int][][]byte // buffer cap -> evicted frame buffers for reuse
	runs      [][]byte         // idle compressed-run buffers for reuse
	idleRuns  atomic.Int64     // capacity of runs (changed under freeMu)
	runBytes  atomic.Int64     // capacity of the run buffers Direct readers hold
	runAllocs atomic.Int64     // run buffers allocated (tests)
	bufAllocs atomic.Int64     // frame buffers allocated (tests)
	flight    inflight         // source reads in progress
	// The largest window of runs fetched ahead a Direct reader has had (under freeMu).
	windowRuns  int
	windowBytes int64

	mu   sync.Mutex
	used int64
	m    map[frameKey]*entry
	lru  entry // sentinel: lru.next is the most recent
}

type frameKey struct {
	file  [32]byte
	frame uint32
}

type entry struct {
	key        frameKey
	data       []byte // the frame's bytes; only data[:avail] are decoded
	avail      int
	size       int64 // bytes charged to the cache
	refs       int32
	ready      bool // data[:avail] may be read (closed done)
	inCache    bool // in m (and, once ready, in the LRU list)
	err        error
	done       chan struct{}
	prev, next *entry
	// A frame decoded in part (a random read): st continues the decode; busy, while a
	// reader continues it, is closed when that reader is done (c.mu guards both).
	st   *stepState
	busy chan struct{}
	// passed: a sequential reader has moved past the frame (demote): the first to go, and
	// its buffer the first a new frame reuses.
	passed bool
}

// stepState is a frame decoded in part: the stepwise decoder and the compressed bytes it
// reads (a run buffer of its own, released with it).
type stepState struct {
	fs    frameSteps
	rb    *runBuf
	bytes int64 // charged to the cache besides the frame's buffer
}

func (s *stepState) free() {
	s.fs.free()
	s.rb.release()
}

// directPerCore is how many Direct decodes may run at once per unit of Concurrency.
const directPerCore = 2

// NewCache creates a frame cache; call Close when no Reader uses it any more.
func NewCache(opts CacheOptions) (*Cache, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultCacheBytes
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = runtime.GOMAXPROCS(0)
	}
	if opts.Decoder == "" {
		opts.Decoder = Decoders()[0]
	}
	newDec, ok := newDecoderFuncs[opts.Decoder]
	if !ok {
		return nil, fmt.Errorf("%w: decoder %q not in this build (have %v)", ErrInvalidOption, opts.Decoder, Decoders())
	}
	direct := directPerCore * opts.Concurrency
	// Decoder contexts for the readahead workers, the Direct decodes and one demand read.
	dec, err := newDec(opts.Concurrency + direct + 1)
	if err != nil {
		return nil, err
	}
	c := &Cache{
		maxBytes:  opts.MaxBytes,
		dec:       dec,
		sem:       make(chan struct{}, opts.Concurrency),
		directSem: make(chan struct{}, direct),
		m:         make(map[frameKey]*entry),
		free:      make(map[int][][]byte),
	}
	c.lru.next, c.lru.prev = &c.lru, &c.lru
	return c, nil
}

// Close releases the decoders. Readers must not be used afterwards.
func (c *Cache) Close() { c.dec.close() }

// Stats returns the cache's counters summed over all its Readers.
func (c *Cache) Stats() Stats {
	s := c.stats.snapshot()
	c.mu.Lock()
	s.CachedBytes, s.CachedFrames = c.used, int64(len(c.m))
	c.mu.Unlock()
	s.InflightBytes, s.InflightPeak, s.InflightByteSeconds = c.flight.snapshot()
	c.freeMu.Lock()
	s.WindowRuns, s.WindowBytes = c.windowRuns, c.windowBytes
	c.freeMu.Unlock()
	return s
}

// acquire returns the entry for k with a reference held. owner is true when the caller
// created it and must fill it with complete; otherwise it may still be loading (wait on done).
func (c *Cache) acquire(k frameKey, reserve int64) (e *entry, owner, hit bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e = c.m[k]; e != nil {
		e.refs++
		if e.ready {
			c.moveFront(e)
		}
		return e, false, e.ready
	}
	e = &entry{key: k, size: reserve, refs: 1, inCache: true, done: make(chan struct{})}
	c.m[k] = e
	c.used += reserve
	c.evictLocked()
	return e, true, false
}

// peek reports whether k is cached or loading, without taking a reference.
func (c *Cache) present(k frameKey) bool {
	c.mu.Lock()
	_, ok := c.m[k]
	c.mu.Unlock()
	return ok
}

// complete publishes the owner's result and wakes waiters. A failed load is dropped from the
// cache so a later read retries it.
func (c *Cache) complete(e *entry, data []byte, err error) {
	c.mu.Lock()
	if err != nil {
		e.err = err
		if e.inCache {
			delete(c.m, e.key)
			e.inCache = false
			c.used -= e.size
		}
	} else {
		e.data, e.avail, e.ready = data, len(data), true
		c.charge(e, int64(cap(data)))
		if e.inCache {
			c.pushFront(e)
		}
		c.evictLocked()
	}
	c.mu.Unlock()
	close(e.done)
}

// completePart publishes a frame decoded up to avail bytes; st continues it.
func (c *Cache) completePart(e *entry, data []byte, avail int, st *stepState) {
	c.mu.Lock()
	e.data, e.avail, e.st, e.ready = data, avail, st, true
	c.charge(e, int64(cap(data))+st.bytes)
	if e.inCache {
		c.pushFront(e)
	}
	c.evictLocked()
	c.mu.Unlock()
	close(e.done)
}

// charge sets the bytes e is charged (c.mu held).
func (c *Cache) charge(e *entry, size int64) {
	if e.inCache {
		c.used += size - e.size
	}
	e.size = size
}

// dropLocked takes e out of the cache (c.mu held): it is freed by its last reader.
func (c *Cache) dropLocked(e *entry) {
	if !e.inCache {
		return
	}
	c.unlink(e)
	delete(c.m, e.key)
	e.inCache = false
	c.used -= e.size
}

// recycleLocked frees what an entry out of the cache and without readers holds (c.mu held).
func (c *Cache) recycleLocked(e *entry) {
	if e.refs != 0 || e.inCache {
		return
	}
	if e.data != nil {
		c.putBuf(e.data)
		e.data = nil
	}
	if e.st != nil {
		e.st.free()
		e.st = nil
	}
}

// release drops a reference; an evicted entry's buffer is recycled by its last reader.
func (c *Cache) release(e *entry) {
	c.mu.Lock()
	e.refs--
	c.recycleLocked(e)
	c.mu.Unlock()
}

// demote moves a frame to the cold end of the LRU (drop-behind for sequential readers).
func (c *Cache) demote(k frameKey) {
	c.mu.Lock()
	if e := c.m[k]; e != nil && e.ready {
		c.unlink(e)
		e.prev, e.next = c.lru.prev, &c.lru
		c.lru.prev.next = e
		c.lru.prev = e
		e.passed = true
	}
	c.mu.Unlock()
}

// takePassed evicts the least recently used frame if a sequential reader has passed it and
// nobody reads it, and returns its buffer if it holds n bytes. A sequential read then
// decodes into the buffers of the frames it left behind instead of new memory: each new
// 1 MiB buffer costs 256 page faults and their zeroing, which before the cache filled up
// took a quarter of the reader's CPU (BenchmarkSeqRead; the zstd CLI reuses one window).
func (c *Cache) takePassed(n int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.lru.prev
	if v == &c.lru || !v.passed || v.refs != 0 || cap(v.data) != n || v.st != nil {
		return nil
	}
	c.dropLocked(v)
	c.stats.evictions.Add(1)
	b := v.data
	v.data = nil
	return b[:0]
}

// evictLocked evicts frames until frames and run buffers together fit in maxBytes: the
// daemon's memory limit is the cache size plus a margin, and run buffers are heap too.
func (c *Cache) evictLocked() {
	for c.used > c.maxBytes-c.runBytes.Load()-c.idleRuns.Load() {
		v := c.lru.prev
		if v == &c.lru {
			return // only loading entries remain; they are charged but cannot go yet
		}
		c.dropLocked(v)
		c.stats.evictions.Add(1)
		c.recycleLocked(v)
	}
}

func (c *Cache) pushFront(e *entry) {
	e.prev, e.next = &c.lru, c.lru.next
	c.lru.next.prev = e
	c.lru.next = e
}

func (c *Cache) moveFront(e *entry) {
	c.unlink(e)
	c.pushFront(e)
}

func (c *Cache) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
		e.next.prev = e.prev
		e.prev, e.next = nil, nil
	}
}

// maxFreeBufs bounds the evicted buffers kept per size. A sync.Pool would be emptied by
// every GC, and a daemon under a memory limit collects often: each new 1 MiB buffer then
// costs zeroing and 256 page faults (BenchmarkDecodeInto/*/fresh: a fifth of the speed).
const maxFreeBufs = 8

// maxFreeSizes bounds the buffer sizes kept (a book has one frame size, and a last frame).
const maxFreeSizes = 16

func (c *Cache) getBuf(n int) []byte {
	c.freeMu.Lock()
	if l := c.free[n]; len(l) > 0 {
		b := l[len(l)-1]
		l[len(l)-1] = nil
		c.free[n] = l[:len(l)-1]
		c.freeMu.Unlock()
		return b[:0]
	}
	c.freeMu.Unlock()
	if b := c.takePassed(n); b != nil {
		return b
	}
	c.bufAllocs.Add(1)
	return make([]byte, 0, n)
}

func (c *Cache) putBuf(b []byte) {
	c.freeMu.Lock()
	l, known := c.free[cap(b)]
	// Sizes come from indexes; a hostile one must not grow the map one size at a time.
	if len(l) < maxFreeBufs && (known || len(c.free) < maxFreeSizes) {
		c.free[cap(b)] = append(l, b)
	}
	c.freeMu.Unlock()
}

// Stats are counters for metrics. Cache.Stats sums all Readers; Reader.Stats is one Reader's.
type Stats struct {
	CacheHits      uint64 // frame found decoded (as far as the read needed)
	CacheMisses    uint64 // frame decoded on demand by the reader, into the cache
	PartialFrames  uint64 // misses of random reads that decoded the frame only up to the bytes asked for
	PartialResumes uint64 // reads that continued a frame decoded in part
	// FetchStalls counts Direct reads that waited for a run of compressed frames fetched
	// ahead whose source read had not finished, FetchStallTime the time they waited.
	FetchStalls     uint64
	FetchStallTime  time.Duration
	DirectFrames    uint64 // frames decoded straight into a reader's buffer (Direct), uncached
	CacheWaits      uint64 // frame being decoded by another reader or readahead: waited for it
	FramesDecoded   uint64 // including readahead
	ReadaheadFrames uint64 // frames scheduled ahead of a sequential reader
	SourceReads     uint64 // ReadAt calls on the .zst source (coalesced runs count once)
	BytesFetched    uint64 // compressed bytes read from the source
	DecodeErrors    uint64
	Evictions       uint64
	CachedBytes     int64 // Cache.Stats only
	CachedFrames    int64 // Cache.Stats only
	// Source reads in flight (Cache.Stats only): compressed bytes asked of the sources and
	// not yet received, now and at most since the cache was made; InflightByteSeconds is
	// their integral over time (the mean between two snapshots is its difference over the
	// time between them). WindowRuns is the largest window of runs fetched ahead a Direct
	// reader has had (one run until the source's round trips ask for more), WindowBytes
	// the largest in bytes.
	InflightBytes, InflightPeak int64
	InflightByteSeconds         float64
	WindowRuns                  int
	WindowBytes                 int64
}

type counters struct {
	hits, misses, waits, direct, decoded, readahead, reads, fetched, decodeErrs, evictions atomic.Uint64
	partial, resumes, stalls, stallNs                                                      atomic.Uint64
}

// inflight measures the bytes of source reads in progress over time.
type inflight struct {
	mu          sync.Mutex
	now, peak   int64
	byteSeconds float64
	since       time.Time
}

func (f *inflight) add(n int64) {
	f.mu.Lock()
	f.integrate(time.Now())
	f.now += n
	f.peak = max(f.peak, f.now)
	f.mu.Unlock()
}

// integrate adds the bytes in flight since the last change (f.mu held).
func (f *inflight) integrate(t time.Time) {
	if !f.since.IsZero() {
		f.byteSeconds += float64(f.now) * t.Sub(f.since).Seconds()
	}
	f.since = t
}

func (f *inflight) snapshot() (now, peak int64, byteSeconds float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.integrate(time.Now())
	return f.now, f.peak, f.byteSeconds
}

// noteWindow records a Direct reader's window (runs, and bytes at its current run size) if
// it is the largest so far.
func (c *Cache) noteWindow(runs int, bytes int64) {
	c.freeMu.Lock()
	c.windowRuns = max(c.windowRuns, runs)
	c.windowBytes = max(c.windowBytes, bytes)
	c.freeMu.Unlock()
}

func (c *counters) snapshot() Stats {
	return Stats{
		CacheHits: c.hits.Load(), CacheMisses: c.misses.Load(), CacheWaits: c.waits.Load(), DirectFrames: c.direct.Load(),
		PartialFrames: c.partial.Load(), PartialResumes: c.resumes.Load(),
		FetchStalls: c.stalls.Load(), FetchStallTime: time.Duration(c.stallNs.Load()),
		FramesDecoded: c.decoded.Load(), ReadaheadFrames: c.readahead.Load(),
		SourceReads: c.reads.Load(), BytesFetched: c.fetched.Load(),
		DecodeErrors: c.decodeErrs.Load(), Evictions: c.evictions.Load(),
	}
}

// runBuf is a pooled buffer of compressed frames read in one source read; the frames'
// decoders share it, and the last to finish returns it.
type runBuf struct {
	b    []byte
	refs atomic.Int32
	c    *Cache
}

// minRunClass is the smallest run buffer. Capacities are powers of two from it up, so a
// sequential reader's runs (a few MiB each, never the same length) all reuse one size.
const minRunClass = 256 << 10

func runClass(n int) int {
	c := minRunClass
	for c < n {
		c <<= 1
	}
	return c
}

// runBudget is what Direct readers may hold in compressed runs, all together: the whole
// cache, whose frames make room for them (evictLocked; Direct readers leave the frame cache
// mostly empty anyway). Half of it was too little for one sequential reader under a small
// cache: runs were dropped and allocated again, thousands of page faults per pass and a
// quarter more CPU per GiB (BenchmarkFS logs both per pass). Past it, runs shrink to the
// frame being read, so memory stays bounded by the configuration whatever the number of
// readers. Idle run buffers are kept for reuse only within the same budget: a buffer the
// GC frees is returned to the kernel, and faulting a new one in costs more than reading
// it full (4 MiB is 1024 page faults; BenchmarkDecodeInto/*/fresh shows their price).
func (c *Cache) runBudget() int64 { return c.maxBytes }

func (c *Cache) getRun(n, refs int) *runBuf {
	rb := &runBuf{c: c}
	rb.refs.Store(int32(refs))
	class := runClass(n)
	c.freeMu.Lock()
	best := -1
	for i, b := range c.runs { // the smallest idle buffer that fits
		if cap(b) >= n && (best < 0 || cap(b) < cap(c.runs[best])) {
			best = i
		}
	}
	if best >= 0 {
		rb.b = c.runs[best][:n]
		c.idleRuns.Add(-int64(cap(rb.b)))
		c.runs = slices.Delete(c.runs, best, best+1)
	} else {
		// A new buffer: drop idle ones (largest first) that would take the total past
		// the budget.
		slices.SortFunc(c.runs, func(a, b []byte) int { return cap(a) - cap(b) })
		for len(c.runs) > 0 && c.idleRuns.Load()+c.runBytes.Load()+int64(class) > c.runBudget() {
			last := len(c.runs) - 1
			c.idleRuns.Add(-int64(cap(c.runs[last])))
			c.runs[last] = nil
			c.runs = c.runs[:last]
		}
	}
	c.freeMu.Unlock()
	fresh := rb.b == nil
	if fresh {
		rb.b = make([]byte, n, class)
		c.runAllocs.Add(1)
	}
	c.runBytes.Add(int64(cap(rb.b)))
	if fresh { // new run memory: frames make room for it
		c.mu.Lock()
		c.evictLocked()
		c.mu.Unlock()
	}
	return rb
}

func (rb *runBuf) release() {
	if rb.refs.Add(-1) != 0 {
		return
	}
	c := rb.c
	c.freeMu.Lock()
	held := c.runBytes.Add(-int64(cap(rb.b)))
	if c.idleRuns.Load()+held+int64(cap(rb.b)) <= c.runBudget() {
		c.runs = append(c.runs, rb.b)
		c.idleRuns.Add(int64(cap(rb.b)))
	}
	c.freeMu.Unlock()
	rb.b = nil
}
