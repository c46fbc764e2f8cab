package fs

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookview"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
)

// The seam between the views and the rest of the mount: a viewPart reads its partition's
// book through one tiers.Handle (whatever tier, the resolver's frame cache behind it) and
// its index/ files through the resolver; rendered rows live in the segment cache below,
// bounded by views_cache_bytes. Nothing else of the mount knows about views.

// viewPart is one partition whose views are being served.
type viewPart struct {
	logical string // partition directory
	th      tiers.Handle
	books   tiers.Handle // index/books.idx, read a state at a time (nil: none; built in memory)
	// resident is what the partition's book index may hold in memory: one built by the
	// scan at open, or a remote one (a bucket's small files are fetched whole by tiers).
	resident int64
	part     *bookview.Partition
	bi       bookInfo
	created  int64 // the book header's created_ns: with the logical path, names its rows

	refs int  // open views and calls in progress (viewParts.mu)
	dead bool // out of the table: the handle closes with the last ref
}

// viewParts keeps the partitions views were read from, least recently used first out:
// a sealed partition's index loads (or, without index/events.idx, its one scan) once.
type viewParts struct {
	f       *FS
	mu      sync.Mutex
	byPath  map[string]*list.Element // of *viewPart
	lru     list.List
	max     int
	loading map[string]*loadCall
	// resident is the book index bytes the partitions in the table may hold in memory,
	// kept at most maxResident (views_cache_bytes) by dropping the least recently used.
	resident, maxResident int64
}

type loadCall struct {
	done chan struct{}
	vp   *viewPart
	err  error
}

const maxViewParts = 256

func newViewParts(f *FS) *viewParts {
	return &viewParts{f: f, byPath: map[string]*list.Element{}, max: maxViewParts, loading: map[string]*loadCall{}, maxResident: int64(f.cfg.ViewsCacheBytes)}
}

// get returns the partition's view state with a reference (release it with put). A
// growing partition takes in the records committed since the last call; one that has been
// sealed since is opened again (its index/ may be there now).
func (v *viewParts) get(ctx context.Context, logical string) (*viewPart, error) {
	for {
		v.mu.Lock()
		if el, ok := v.byPath[logical]; ok {
			vp := el.Value.(*viewPart)
			v.lru.MoveToFront(el)
			vp.refs++
			v.mu.Unlock()
			if vp.bi.sealed {
				return vp, nil
			}
			bi, err := inspectBook(vp.th, vp.bi.headerSize)
			if err == nil && !bi.sealed {
				if err = vp.part.Refresh(bi.size); err == nil {
					return vp, nil
				}
			}
			// Sealed since (or failing): drop it and load afresh.
			v.drop(logical, vp)
			v.put(vp)
			if err != nil {
				return nil, err
			}
			continue
		}
		if c, ok := v.loading[logical]; ok {
			v.mu.Unlock()
			<-c.done
			if c.err != nil {
				return nil, c.err
			}
			continue
		}
		c := &loadCall{done: make(chan struct{})}
		v.loading[logical] = c
		v.mu.Unlock()
		c.vp, c.err = v.load(ctx, logical)
		v.mu.Lock()
		delete(v.loading, logical)
		if c.err == nil {
			c.vp.refs++ // the caller's
			v.byPath[logical] = v.lru.PushFront(c.vp)
			v.resident += c.vp.resident
			v.evict()
		}
		v.mu.Unlock()
		close(c.done)
		return c.vp, c.err
	}
}

func (v *viewParts) load(ctx context.Context, logical string) (*viewPart, error) {
	f := v.f
	book := path.Join(logical, layout.BookName)
	th, bi, err := f.openBook(ctx, book, 0)
	if err != nil {
		return nil, err
	}
	ix, err := bookview.LoadIndexes(logical, func(rel string, max int64) ([]byte, error) {
		h, err := f.res.Open(uninterrupted(ctx), path.Join(logical, rel))
		if err != nil {
			if errors.Is(err, tiers.ErrNotFound) {
				err = fmt.Errorf("%s: %w", rel, fs.ErrNotExist)
			}
			return nil, err
		}
		defer h.Close()
		return readAllHandle(h, path.Join(logical, rel), max)
	})
	if err != nil {
		th.Close()
		return nil, err
	}
	vp := &viewPart{logical: logical, th: th, bi: bi}
	bh, err := f.res.Open(uninterrupted(ctx), path.Join(logical, bookview.BooksPath))
	switch {
	case errors.Is(err, tiers.ErrNotFound):
		err = nil
	case err == nil:
		vp.books = bh
		if bh.Tier() == layout.Remote {
			vp.resident = bh.Size()
		}
		ix.Books, err = bookview.OpenBooks(logical, bh, bh.Size())
	}
	if err != nil {
		vp.close()
		return nil, err
	}
	began := time.Now()
	part, err := bookview.Open(th, bi.size, book, ix)
	if err != nil {
		vp.close()
		return nil, err
	}
	if ix.Books == nil {
		// Built by the scan: its states are in memory.
		vp.resident = part.Books().StatesSize()
	}
	if ix.Events == nil || ix.Books == nil {
		f.log.Info("views: indexed a partition without index/events.idx or index/books.idx", "partition", logical, "tier", bi.tier.String(),
			"records", part.Records(), "took", time.Since(began).Round(time.Millisecond))
	}
	f.st.viewLoads.Add(1)
	vp.part, vp.created = part, part.Header().CreatedNs
	return vp, nil
}

// close closes the partition's handles.
func (vp *viewPart) close() {
	vp.th.Close()
	if vp.books != nil {
		vp.books.Close()
	}
}

// readAllHandle reads a whole small file through its handle, refusing more than max bytes.
func readAllHandle(h tiers.Handle, name string, max int64) ([]byte, error) {
	size := h.Size()
	if size > max {
		return nil, fmt.Errorf("%s: %w: %d bytes, at most %d", name, format.ErrTooLarge, size, max)
	}
	b := make([]byte, size)
	if n, err := h.ReadAt(b, 0); int64(n) < size {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// put releases a reference.
func (v *viewParts) put(vp *viewPart) {
	v.mu.Lock()
	vp.refs--
	closeIt := vp.dead && vp.refs == 0
	v.mu.Unlock()
	if closeIt {
		vp.close()
	}
}

// drop takes a partition out of the table (moved, sealed, failing); vp, when set, only if
// it is still the one there.
func (v *viewParts) drop(logical string, vp *viewPart) {
	v.mu.Lock()
	el, ok := v.byPath[logical]
	var closeIt *viewPart
	if ok && (vp == nil || el.Value.(*viewPart) == vp) {
		old := el.Value.(*viewPart)
		v.lru.Remove(el)
		delete(v.byPath, logical)
		v.resident -= old.resident
		old.dead = true
		if old.refs == 0 {
			closeIt = old
		}
	}
	v.mu.Unlock()
	if closeIt != nil {
		closeIt.close()
	}
}

// evict drops the least recently used partitions past the bounds (v.mu held): the count,
// and the book index bytes they may hold (the one just loaded always stays).
func (v *viewParts) evict() {
	for v.lru.Len() > v.max || v.resident > v.maxResident && v.lru.Len() > 1 {
		el := v.lru.Back()
		vp := el.Value.(*viewPart)
		v.lru.Remove(el)
		delete(v.byPath, vp.logical)
		v.resident -= vp.resident
		vp.dead = true
		if vp.refs == 0 {
			go vp.close()
		}
	}
}

// closeAll closes every handle (the mount is going away).
func (v *viewParts) closeAll() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, el := range v.byPath {
		vp := el.Value.(*viewPart)
		vp.dead = true
		if vp.refs == 0 {
			vp.close()
		}
		delete(v.byPath, k)
	}
	v.lru.Init()
	v.resident = 0
}

// segKey names rendered rows for good: rows never change once written.
type segKey struct {
	logical string
	created int64
	view    string
	lo, hi  int64
}

type segEntry struct {
	key  segKey
	data []byte
	err  error
	done chan struct{}
	refs int
	el   *list.Element // in the LRU once rendered
}

// segCache holds rendered segments of views up to a byte bound, renders each once however
// many readers ask for it at the same time, and renders at most two per core at once (a
// render holds its rows and two 1 MiB read buffers).
type segCache struct {
	mu      sync.Mutex
	max     int64
	used    int64
	entries map[segKey]*segEntry
	lru     list.List
	sem     chan struct{}
	st      *stats
}

func newSegCache(max int64, st *stats) *segCache {
	return &segCache{max: max, entries: map[segKey]*segEntry{}, sem: make(chan struct{}, 2*runtime.GOMAXPROCS(0)), st: st}
}

// source returns the SegmentSource of one open view of vp.
func (c *segCache) source(vp *viewPart) bookview.SegmentSource { return &segSource{c: c, vp: vp} }

type segSource struct {
	c  *segCache
	vp *viewPart
}

// Cached returns a segment already rendered (not one being rendered), for small reads.
func (s *segSource) Cached(p *bookview.Partition, seg bookview.Segment) ([]byte, func(), bool) {
	k := segKey{logical: s.vp.logical, created: s.vp.created, view: seg.View.Name(), lo: seg.Lo, hi: seg.Hi}
	c := s.c
	c.mu.Lock()
	e, ok := c.entries[k]
	if !ok || e.el == nil {
		c.mu.Unlock()
		return nil, nil, false
	}
	e.refs++
	c.lru.MoveToFront(e.el)
	c.mu.Unlock()
	c.st.viewHits.Add(1)
	return e.data, func() { c.release(e) }, true
}

func (s *segSource) Segment(p *bookview.Partition, seg bookview.Segment) ([]byte, func(), error) {
	k := segKey{logical: s.vp.logical, created: s.vp.created, view: seg.View.Name(), lo: seg.Lo, hi: seg.Hi}
	return s.c.get(k, func() ([]byte, error) {
		b := make([]byte, (seg.Hi-seg.Lo)*seg.View.RowSize())
		return b, p.Render(seg, b)
	})
}

func (c *segCache) get(k segKey, render func() ([]byte, error)) ([]byte, func(), error) {
	c.mu.Lock()
	e, ok := c.entries[k]
	if ok {
		e.refs++
		if e.el != nil {
			c.lru.MoveToFront(e.el)
		}
		c.mu.Unlock()
		<-e.done
		if e.err != nil {
			c.release(e)
			return nil, nil, e.err
		}
		c.st.viewHits.Add(1)
		return e.data, func() { c.release(e) }, nil
	}
	e = &segEntry{key: k, done: make(chan struct{}), refs: 1}
	c.entries[k] = e
	c.mu.Unlock()

	c.sem <- struct{}{}
	began := time.Now()
	data, err := render()
	<-c.sem
	c.st.viewRender(time.Since(began), len(data), err)

	c.mu.Lock()
	e.data, e.err = data, err
	if err != nil {
		delete(c.entries, k) // the next reader tries again
	} else {
		e.el = c.lru.PushFront(e)
		c.used += int64(len(data))
		c.evict()
	}
	c.mu.Unlock()
	close(e.done)
	if err != nil {
		c.release(e)
		return nil, nil, err
	}
	return data, func() { c.release(e) }, nil
}

func (c *segCache) release(e *segEntry) {
	c.mu.Lock()
	e.refs--
	c.mu.Unlock()
}

// evict drops least recently used segments until the cache fits its bound (c.mu held).
// A segment being copied by a reader stays alive with that reader (the collector frees it).
func (c *segCache) evict() {
	for c.used > c.max && c.lru.Len() > 1 {
		el := c.lru.Back()
		e := el.Value.(*segEntry)
		c.lru.Remove(el)
		e.el = nil
		delete(c.entries, e.key)
		c.used -= int64(len(e.data))
	}
}

// Bytes is the size of the rendered rows held.
func (c *segCache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// viewStats count the views' work for /metrics.
type viewStats struct {
	viewLoads, viewRenders, viewRenderErrors, viewHits, viewRenderBytes atomic.Uint64
	viewRenderNanos                                                     atomic.Int64
}

func (s *stats) viewRender(d time.Duration, n int, err error) {
	s.viewRenders.Add(1)
	s.viewRenderNanos.Add(int64(d))
	s.viewRenderBytes.Add(uint64(n))
	if err != nil {
		s.viewRenderErrors.Add(1)
	}
}
