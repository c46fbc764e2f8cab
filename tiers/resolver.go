package tiers

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/format/stub"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/diskcache"
	"github.com/chronicle/chronicle/tiers/objstore"
	"golang.org/x/sys/unix"
)

// Options configure a Resolver.
type Options struct {
	// Store is the remote tier's object store; nil when layout.Roots.Remote is empty.
	Store objstore.Store
	// Cache holds decoded cold and remote frames for every open file; nil creates one of
	// qzst.DefaultCacheBytes.
	Cache *qzst.Cache
	// Readahead is the number of frames decoded ahead of sequential readers (0 = qzst default).
	Readahead int
	// Direct opens cold and remote books with qzst's Direct reads: a read of a whole frame
	// decodes into the caller's buffer, uncached, and compressed bytes are fetched ahead in
	// runs instead of decoded frames. For callers that read ahead and cache themselves, like
	// the kernel behind chronicle-fs.
	Direct bool
	// RemoteTimeout bounds one remote read, retries included (default 30 s).
	RemoteTimeout time.Duration
	// DiskCache, when set, keeps what remote reads fetch (compressed frames, indexes, small
	// files) on local disk, so that reading the same days again fetches nothing.
	DiskCache *diskcache.Cache
	// BucketTTL is how long listings and stubs read from the bucket are trusted (default
	// 60 s): a partition uploaded later appears within it. Negative: partitions are found
	// only through local stubs, never by listing the bucket.
	BucketTTL time.Duration
	// Now is the clock bucket listings age by (tests); nil is time.Now.
	Now func() time.Time
	// Retries is how often Open re-resolves a partition that moved under it (default 4).
	Retries int
	Logger  *slog.Logger
}

// Resolver maps logical paths to tiers. It is safe for concurrent use.
type Resolver struct {
	roots    layout.Roots
	local    [3]root
	store    objstore.Store
	cache    *qzst.Cache
	ownCache bool
	opts     Options
	log      *slog.Logger

	idxMu sync.Mutex
	idx   lru[string, *qzst.Index] // remote indexes by the stub's idx SHA-256 (maxCachedIndexes)

	bucket *bucket // nil without a store, or when BucketTTL < 0

	stats Stats
}

// Stats counts what the resolver did, for /metrics.
type Stats struct {
	Opens          [layout.NumTiers]atomic.Int64
	Retries        atomic.Int64
	RemoteRequests atomic.Int64
	RemoteBytes    atomic.Int64
	RemoteErrors   atomic.Int64
	BucketLists    atomic.Int64 // directory listings requested from the bucket
	BucketStubs    atomic.Int64 // partition stubs fetched from the bucket (found or not)
}

// Store returns the remote tier's object store, nil when there is none.
func (r *Resolver) Store() objstore.Store { return r.store }

// DiskCache returns the on-disk cache of remote reads, nil when there is none.
func (r *Resolver) DiskCache() *diskcache.Cache { return r.opts.DiskCache }

// New returns a Resolver over roots.
func New(roots layout.Roots, opts Options) (*Resolver, error) {
	r := &Resolver{roots: roots, store: opts.Store, cache: opts.Cache, opts: opts, log: opts.Logger, idx: newLRU[string, *qzst.Index](maxCachedIndexes)}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.opts.RemoteTimeout <= 0 {
		r.opts.RemoteTimeout = 30 * time.Second
	}
	if r.opts.Retries <= 0 {
		r.opts.Retries = 4
	}
	for t := layout.Hot; t <= layout.Cold; t++ {
		p := roots.Local(t)
		if p != "" {
			abs, err := filepath.Abs(p)
			if err != nil {
				return nil, fmt.Errorf("tier %s root %q: %w", t, p, err)
			}
			p = abs
		}
		r.local[t] = root{tier: t, path: p}
	}
	if roots.Remote != "" && r.store == nil {
		return nil, fmt.Errorf("remote tier %q: %w: pass Options.Store", roots.Remote, ErrNoRemote)
	}
	if r.opts.BucketTTL == 0 {
		r.opts.BucketTTL = 60 * time.Second
	}
	if r.store != nil && r.opts.BucketTTL > 0 {
		r.bucket = newBucket(r.store, r.opts.BucketTTL, r.opts.RemoteTimeout)
		r.bucket.stats = &r.stats
		if opts.Now != nil {
			r.bucket.now = opts.Now
		}
	}
	if r.cache == nil {
		c, err := qzst.NewCache(qzst.CacheOptions{})
		if err != nil {
			return nil, err
		}
		r.cache, r.ownCache = c, true
	}
	return r, nil
}

// Close releases the cache if the resolver created it.
func (r *Resolver) Close() error {
	if r.ownCache {
		r.cache.Close()
	}
	return nil
}

// layout.Roots returns the configured roots.
func (r *Resolver) Roots() layout.Roots { return r.roots }

// Cache returns the frame cache shared by cold and remote reads.
func (r *Resolver) Cache() *qzst.Cache { return r.cache }

// Stats returns the live counters.
func (r *Resolver) Stats() *Stats { return &r.stats }

// Kind says how a partition's book is stored in its tier.
type Kind uint8

const (
	KindPlain  Kind = iota // book.q (hot, warm, or cold before compression)
	KindZstd               // book.q.zst + book.q.zst.idx (cold)
	KindStub               // book.q.zst.remote.json (remote)
	KindBucket             // only the bucket holds it (its stub copy, no local trace)
)

// Location is where a partition lives.
type Location struct {
	Key  layout.Key
	Tier layout.Tier // layout.Remote for KindStub
	Kind Kind
	Dir  string // the local partition directory (the cold one for remote partitions; the URI for KindBucket)
	root *root
}

// bucketStub fetches (or finds cached) the version a partition the bucket lists serves. A
// listed date without one is an upload still in progress, or one that failed: not found
// (but its other hosts' versions, when it has some, list below hosts/).
func (r *Resolver) bucketStub(loc Location) (*bstub, error) {
	bs, err := r.bucket.partition(loc.Key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", loc.Key.Dir(), err)
	}
	if bs == nil {
		return nil, fmt.Errorf("%s: %w: listed in the bucket without its stub (upload in progress or failed)", loc.Key.Dir(), ErrNotFound)
	}
	return bs, nil
}

// bucketTarget resolves a path inside a bucket partition to the version it is in and the
// path inside that version: hosts/{id}/... names host id's own version, anything else the
// served one. hostsDir reports the hosts/ directory itself.
func (r *Resolver) bucketTarget(loc Location, rest string) (bs *bstub, inner string, hostsDir bool, err error) {
	h, ok := strings.CutPrefix(rest, stub.HostsDir)
	if !ok || (h != "" && h[0] != '/') {
		bs, err := r.bucketStub(loc)
		return bs, rest, false, err
	}
	if h == "" {
		return nil, "", true, nil
	}
	id, inner, _ := strings.Cut(h[1:], "/")
	v, err := r.bucket.hostVersion(loc.Key, id)
	if err != nil {
		return nil, "", false, fmt.Errorf("%s/%s: %w", loc.Key.Dir(), rest, err)
	}
	if v == nil {
		return nil, "", false, fmt.Errorf("%s/%s: %w: no version of host %q", loc.Key.Dir(), rest, ErrNotFound, id)
	}
	return v, inner, false, nil
}

// Locate finds the first tier, in priority order, that holds k's book.
func (r *Resolver) Locate(k layout.Key) (Location, error) {
	if err := k.Validate(); err != nil {
		return Location{}, err
	}
	// Two passes: a partition that moved to a higher-priority tier while the first pass
	// was looking further down is found by the second.
	for pass := 0; pass < 2; pass++ {
		if loc, ok := r.locate(k); ok {
			return loc, nil
		}
	}
	if r.bucket != nil {
		// Listed under its symbol (one listing answers for years of dates): the stub is
		// fetched only when something inside the partition is asked for.
		names, err := r.bucket.subdirs(path.Join(layout.LayoutVersion, k.Venue, k.Symbol))
		if err != nil {
			return Location{}, fmt.Errorf("%s: %w", k.Dir(), err)
		}
		if _, ok := slices.BinarySearch(names, k.Date); ok {
			return Location{Key: k, Tier: layout.Remote, Kind: KindBucket, Dir: r.store.URI(k.Dir())}, nil
		}
	}
	return Location{}, fmt.Errorf("%s: %w", k.Dir(), ErrNotFound)
}

func (r *Resolver) locate(k layout.Key) (Location, bool) {
	dir := k.Dir()
	for t := layout.Hot; t <= layout.Cold; t++ {
		rt := &r.local[t]
		if rt.path == "" {
			continue
		}
		loc := Location{Key: k, Tier: t, Dir: filepath.Join(rt.path, dir), root: rt}
		if rt.exists(path.Join(dir, layout.BookName)) {
			return loc, true
		}
		if t != layout.Cold {
			continue
		}
		if rt.exists(path.Join(dir, layout.ZstName)) {
			loc.Kind = KindZstd
			return loc, true
		}
		if rt.exists(path.Join(dir, layout.StubName)) {
			loc.Kind, loc.Tier = KindStub, layout.Remote
			return loc, true
		}
	}
	return Location{}, false
}

// Entry describes one logical file or directory.
type Entry struct {
	Name    string
	IsDir   bool
	Size    int64
	Tier    layout.Tier
	Source  string // physical path or URI
	Sealed  bool   // immutable content
	ModTime time.Time
	Ino     uint64 // physical inode (0 for directories and remote objects)
	// HeaderSize is a book's header length when known without reading it (books of bucket
	// partitions whose stub records it); 0 otherwise.
	HeaderSize int64
}

// Open opens a logical file for reading. If the partition moves to another tier between
// resolving and opening, it resolves again: the content is identical in every tier.
func (r *Resolver) Open(ctx context.Context, logical string) (Handle, error) {
	l, err := layout.ParseLogical(logical)
	if err != nil {
		return nil, err
	}
	if l.Depth() < 4 {
		return nil, fmt.Errorf("%s: %w", logical, ErrIsDir)
	}
	var lastErr error
	for attempt := 0; attempt <= r.opts.Retries; attempt++ {
		if attempt > 0 {
			r.stats.Retries.Add(1)
			time.Sleep(time.Duration(attempt) * time.Millisecond)
		}
		loc, err := r.Locate(l.Key)
		if err != nil {
			return nil, err
		}
		h, err := r.openAt(ctx, loc, l.Rest)
		if err == nil {
			r.stats.Opens[h.Tier()].Add(1)
			return h, nil
		}
		if !isNotExist(err) && !errors.Is(err, ErrIncomplete) {
			return nil, err
		}
		lastErr = err // moved away under us: resolve again
	}
	return nil, fmt.Errorf("%s: %w (partition kept moving: %v)", logical, ErrNotFound, lastErr)
}

// OpenBook opens k's book.q.
func (r *Resolver) OpenBook(ctx context.Context, k layout.Key) (Handle, error) {
	return r.Open(ctx, path.Join(k.Dir(), layout.BookName))
}

func (r *Resolver) openAt(ctx context.Context, loc Location, rest string) (Handle, error) {
	if loc.Kind == KindBucket {
		bs, inner, hostsDir, err := r.bucketTarget(loc, rest)
		switch {
		case err != nil:
			return nil, err
		case hostsDir || inner == "":
			return nil, fmt.Errorf("%s/%s: %w", loc.Key.Dir(), rest, ErrIsDir)
		case bs.s == nil:
			return nil, fmt.Errorf("%s/%s: %w: the key's own version is not in the bucket (yet)", loc.Key.Dir(), rest, ErrNotFound)
		case inner == layout.BookName:
			return r.openRemoteBook(ctx, bs.s, bs.zk, bs.ik)
		}
		return r.openBucketFile(ctx, loc.Key, bs, inner)
	}
	rel := path.Join(loc.Key.Dir(), rest)
	if rest != layout.BookName {
		return r.openPlain(loc, rel, false)
	}
	switch loc.Kind {
	case KindZstd:
		return r.openZstd(loc)
	case KindStub:
		return r.openRemote(ctx, loc)
	}
	return r.openPlain(loc, rel, true)
}

func (r *Resolver) openPlain(loc Location, rel string, book bool) (Handle, error) {
	f, err := loc.root.open(rel, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		f.Close()
		return nil, fmt.Errorf("%s: %w", rel, ErrIsDir)
	}
	h := &plainHandle{f: f, tier: loc.Tier, ino: st.Ino, mtime: time.Unix(st.Mtim.Unix()), size: st.Size, sealed: true}
	if book {
		if err := h.initBook(); err != nil {
			f.Close()
			return nil, err
		}
	}
	return h, nil
}

func (r *Resolver) openZstd(loc Location) (Handle, error) {
	dir := loc.Key.Dir()
	f, err := loc.root.open(path.Join(dir, layout.ZstName), unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	ib, err := r.readLocal(loc.root, path.Join(dir, layout.IdxName), stub.MaxIdxSize)
	if err != nil {
		f.Close()
		if isNotExist(err) {
			return nil, fmt.Errorf("%s: %w: %s without %s", loc.Dir, ErrIncomplete, layout.ZstName, layout.IdxName)
		}
		return nil, err
	}
	idx, err := qzst.ParseIndex(ib, filepath.Join(loc.Dir, layout.IdxName))
	if err != nil {
		f.Close()
		return nil, err
	}
	zr, err := qzst.Open(f, st.Size(), idx, r.cache, qzst.ReaderOptions{Name: f.Name(), Readahead: r.opts.Readahead, Direct: r.opts.Direct, Logger: r.opts.Logger})
	if err != nil {
		f.Close()
		return nil, err
	}
	return &zstdHandle{r: zr, f: f, sealedFile: sealedFile{tier: layout.Cold, src: f.Name(), version: "zst:" + hex.EncodeToString(idx.SHA256[:]), mtime: st.ModTime()}}, nil
}

// readLocal reads a whole small file of a local tier, refusing one above max bytes before
// allocating: sizes on disk are not trusted.
func (r *Resolver) readLocal(rt *root, rel string, max int64) ([]byte, error) {
	f, err := rt.open(rel, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return format.ReadAllLimit(f, f.Name(), max)
}

// ReadStub reads and validates the remote stub of a partition located in the cold root.
func (r *Resolver) readStub(loc Location) (*stub.Stub, string, string, error) {
	name := filepath.Join(loc.Dir, layout.StubName)
	b, err := r.readLocal(loc.root, path.Join(loc.Key.Dir(), layout.StubName), 1<<20)
	if err != nil {
		return nil, "", "", err
	}
	s, err := stub.Parse(b, name)
	if err != nil {
		return nil, "", "", err
	}
	if r.store == nil {
		return nil, "", "", fmt.Errorf("%s: %w", name, ErrNoRemote)
	}
	zk, ik, err := s.Validate(r.store, loc.Key, name)
	if err != nil {
		return nil, "", "", err
	}
	return s, zk, ik, nil
}

func (r *Resolver) openRemote(ctx context.Context, loc Location) (Handle, error) {
	s, zk, ik, err := r.readStub(loc)
	if err != nil {
		return nil, err
	}
	return r.openRemoteBook(ctx, s, zk, ik)
}

// openRemoteBook opens the book a validated stub describes.
func (r *Resolver) openRemoteBook(ctx context.Context, s *stub.Stub, zk, ik string) (Handle, error) {
	idx, err := r.remoteIndex(ctx, s, ik)
	if err != nil {
		return nil, err
	}
	src := r.remoteBookSource(s, zk, idx)
	zr, err := qzst.Open(src, s.Zst.Size, idx, r.cache, qzst.ReaderOptions{
		Name: s.Zst.URI, Readahead: r.opts.Readahead, Direct: r.opts.Direct, Logger: r.opts.Logger,
		// The index was checked against the stub's hashes, which were checked at upload:
		// reading the seek table too would cost a round trip on every open.
		SkipSeekTableCheck: true,
	})
	if err != nil {
		return nil, err
	}
	return &zstdHandle{r: zr, sealedFile: sealedFile{tier: layout.Remote, src: s.Zst.URI, version: "remote:" + s.Zst.SHA256, mtime: s.UploadedAt}}, nil
}

// remoteIndex returns the partition's .idx: from memory, the local idx cache, or one GET,
// always checked against the stub's SHA-256 and sizes.
func (r *Resolver) remoteIndex(ctx context.Context, s *stub.Stub, key string) (*qzst.Index, error) {
	r.idxMu.Lock()
	idx, _, _ := r.idx.get(s.Idx.SHA256)
	r.idxMu.Unlock()
	if idx != nil {
		return idx, nil
	}
	b, err := r.fetchVerified(ctx, key, s.Idx.URI, s.Idx.Size, s.Idx.SHA256)
	if err != nil {
		return nil, err
	}
	idx, err = qzst.ParseIndex(b, s.Idx.URI)
	if err != nil {
		return nil, err
	}
	if idx.Size != s.UncompressedSize || idx.ZstSize != s.Zst.Size {
		return nil, fmt.Errorf("%s: %w: index describes %d bytes in a %d-byte .zst, stub says %d in %d",
			s.Idx.URI, stub.ErrInvalid, idx.Size, idx.ZstSize, s.UncompressedSize, s.Zst.Size)
	}
	if idx.SHA256 != [32]byte{} && hex.EncodeToString(idx.SHA256[:]) != s.Zst.SHA256 {
		return nil, fmt.Errorf("%s: %w: index names .zst sha256 %x, stub says %s", s.Idx.URI, stub.ErrInvalid, idx.SHA256, s.Zst.SHA256)
	}
	r.idxMu.Lock()
	r.idx.put(s.Idx.SHA256, idx, time.Time{})
	r.idxMu.Unlock()
	return idx, nil
}

func (r *Resolver) getAll(ctx context.Context, key, uri string, size int64) ([]byte, error) {
	b := make([]byte, size)
	src := &remoteAt{r: r, key: key, uri: uri, size: size}
	ctx, cancel := context.WithTimeout(ctx, r.opts.RemoteTimeout)
	defer cancel()
	if _, err := src.readAt(ctx, b, 0); err != nil {
		return nil, err
	}
	return b, nil
}

// remoteAt is an io.ReaderAt over one object: each ReadAt is one ranged GET. The qzst
// reader coalesces adjacent frames, so sequential reads become large GETs.
type remoteAt struct {
	r    *Resolver
	key  string
	uri  string
	size int64
}

func (a *remoteAt) ReadAt(p []byte, off int64) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), a.r.opts.RemoteTimeout)
	defer cancel()
	return a.readAt(ctx, p, off)
}

// StreamRange streams bytes [off, off+n) of the object as they arrive, within the remote
// timeout (qzst.RangeStreamer: a random read decodes a frame while it arrives).
func (a *remoteAt) StreamRange(off, n int64) (io.ReadCloser, error) {
	if off < 0 || n < 0 || off+n > a.size {
		return nil, fmt.Errorf("%w: GET %s [%d,%d): outside the object's %d bytes", ErrRemoteFailed, a.uri, off, off+n, a.size)
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.r.opts.RemoteTimeout)
	a.r.stats.RemoteRequests.Add(1)
	rc, err := a.r.store.GetRange(ctx, a.key, off, n)
	if err != nil {
		cancel()
		a.r.stats.RemoteErrors.Add(1)
		return nil, fmt.Errorf("%w: GET %s [%d,%d): %w", ErrRemoteFailed, a.uri, off, off+n, err)
	}
	return &remoteStream{a: a, rc: rc, cancel: cancel, off: off, n: n}, nil
}

// remoteStream is one ranged GET's body, counted, with its errors labelled.
type remoteStream struct {
	a      *remoteAt
	rc     io.ReadCloser
	cancel context.CancelFunc
	off, n int64
	got    int64
}

func (s *remoteStream) Read(p []byte) (int, error) {
	k, err := s.rc.Read(p)
	s.got += int64(k)
	s.a.r.stats.RemoteBytes.Add(int64(k))
	if err != nil && err != io.EOF {
		s.a.r.stats.RemoteErrors.Add(1)
		err = fmt.Errorf("%w: GET %s [%d,%d) after %d bytes: %w", ErrRemoteFailed, s.a.uri, s.off, s.off+s.n, s.got, err)
	}
	return k, err
}

func (s *remoteStream) Close() error {
	err := s.rc.Close()
	s.cancel()
	return err
}

func (a *remoteAt) readAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off >= a.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), a.size-off)
	a.r.stats.RemoteRequests.Add(1)
	rc, err := a.r.store.GetRange(ctx, a.key, off, n)
	if err != nil {
		a.r.stats.RemoteErrors.Add(1)
		return 0, fmt.Errorf("%w: GET %s [%d,%d): %w", ErrRemoteFailed, a.uri, off, off+n, err)
	}
	defer rc.Close()
	got, err := io.ReadFull(rc, p[:n])
	a.r.stats.RemoteBytes.Add(int64(got))
	if err != nil {
		a.r.stats.RemoteErrors.Add(1)
		return got, fmt.Errorf("%w: GET %s [%d,%d): %w", ErrRemoteFailed, a.uri, off, off+n, err)
	}
	if int(n) < len(p) {
		return got, io.EOF
	}
	return got, nil
}

// Stat describes a logical path without opening file contents (except a cold partition's
// small .idx, to learn the uncompressed size).
func (r *Resolver) Stat(logical string) (Entry, error) {
	l, err := layout.ParseLogical(logical)
	if err != nil {
		return Entry{}, err
	}
	name := l.Name()
	if l.Depth() < 3 {
		for t := layout.Hot; t <= layout.Cold; t++ {
			if fi, err := r.local[t].stat(l.Rel()); err == nil && fi.IsDir() {
				return Entry{Name: name, IsDir: true, ModTime: fi.ModTime()}, nil
			}
		}
		if r.bucket != nil {
			return r.statBucketDir(l, name, logical)
		}
		return Entry{}, fmt.Errorf("%s: %w", logical, ErrNotFound)
	}
	for attempt := 0; ; attempt++ {
		e, err := r.statIn(l, name)
		if err == nil || !(isNotExist(err) || errors.Is(err, ErrIncomplete)) || attempt >= r.opts.Retries {
			return e, err
		}
		r.stats.Retries.Add(1)
	}
}

func (r *Resolver) statIn(l layout.Logical, name string) (Entry, error) {
	loc, err := r.Locate(l.Key)
	if err != nil {
		return Entry{}, err
	}
	if loc.Kind == KindBucket && l.Rest == "" {
		return Entry{Name: name, IsDir: true, Tier: layout.Remote, Source: loc.Dir, Sealed: true}, nil
	}
	if loc.Kind == KindBucket {
		bs, inner, hostsDir, err := r.bucketTarget(loc, l.Rest)
		if err != nil {
			return Entry{}, err
		}
		if hostsDir {
			return Entry{Name: name, IsDir: true, Tier: layout.Remote, Source: r.store.URI(path.Join(l.Key.Dir(), stub.HostsDir)), Sealed: true}, nil
		}
		e, ok := bs.stat(l.Key, inner, name, r.store.URI(bs.fileKey(l.Key, inner)))
		if !ok {
			return Entry{}, fmt.Errorf("%s/%s: %w", l.Key.Dir(), l.Rest, ErrNotFound)
		}
		return e, nil
	}
	if l.Rest == "" {
		fi, err := loc.root.stat(l.Key.Dir())
		if err != nil {
			return Entry{}, err
		}
		return Entry{Name: name, IsDir: true, Tier: loc.Tier, Source: loc.Dir, ModTime: fi.ModTime(), Sealed: true}, nil
	}
	if l.Rest == layout.BookName && loc.Kind != KindPlain {
		h, err := r.openAt(context.Background(), loc, layout.BookName)
		if err != nil {
			return Entry{}, err
		}
		defer h.Close()
		return Entry{Name: name, Size: h.Size(), Tier: h.Tier(), Source: h.Source(), Sealed: true, ModTime: h.ModTime()}, nil
	}
	rel := path.Join(l.Key.Dir(), l.Rest)
	fi, err := loc.root.stat(rel)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Name: name, IsDir: fi.IsDir(), Size: fi.Size(), Tier: loc.Tier, Source: filepath.Join(loc.root.path, rel),
		ModTime: fi.ModTime(), Sealed: true, Ino: fi.Sys().(*unix.Stat_t).Ino}
	if l.Rest == layout.BookName && !e.IsDir {
		h, err := r.openPlain(loc, rel, true)
		if err != nil {
			return Entry{}, err
		}
		e.Size, e.Sealed = h.Size(), h.Sealed()
		h.Close()
	}
	return e, nil
}

// ReadDir lists a logical directory: the union over tiers for v1, venue and symbol levels;
// the logical files of the partition's one tier inside a partition.
func (r *Resolver) ReadDir(logical string) ([]Entry, error) {
	l, err := layout.ParseLogical(logical)
	if err != nil {
		return nil, err
	}
	if l.Depth() >= 3 {
		return r.readPartitionDir(l)
	}
	rel := l.Rel()
	seen := map[string]bool{}
	var out []Entry
	found := false
	for t := layout.Hot; t <= layout.Cold; t++ {
		ents, err := r.local[t].readDir(rel)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return nil, err
		}
		found = true
		for _, e := range ents {
			if !e.IsDir || seen[e.Name] || layout.IsTemp(e.Name) {
				continue
			}
			var k layout.Key
			switch l.Depth() {
			case 0, 1:
				if !layout.ValidName(e.Name) {
					continue
				}
			case 2:
				k = layout.Key{Venue: l.Key.Venue, Symbol: l.Key.Symbol, Date: e.Name}
				if k.Validate() != nil {
					continue
				}
				// A date directory without a book in any tier (a move's leftovers) is not a partition.
				if _, err := r.Locate(k); err != nil {
					continue
				}
			}
			seen[e.Name] = true
			out = append(out, Entry{Name: e.Name, IsDir: true})
		}
	}
	if r.bucket != nil {
		names, err := r.bucket.subdirs(rel)
		switch {
		case err != nil && !found:
			return nil, fmt.Errorf("%s: %w", logical, err)
		case err != nil:
			r.log.Warn("listing the bucket failed: local tiers only", "dir", logical, "err", err)
		case len(names) > 0:
			found = true
		}
		local := len(out) > 0 // only then can a name be listed twice
		out = slices.Grow(out, len(names))
		for _, n := range names {
			if (local && seen[n]) || !r.bucketChild(l, n) {
				continue
			}
			out = append(out, Entry{Name: n, IsDir: true, Tier: layout.Remote})
		}
		if !local && len(out) > 0 {
			return out, nil // the bucket lists in order
		}
	}
	if !found && l.Depth() > 0 {
		return nil, fmt.Errorf("%s: %w", logical, ErrNotFound)
	}
	sortEntries(out)
	return out, nil
}

// bucketChild reports whether a name listed in the bucket below l can be a logical
// directory there. Dates are not checked one by one (a listing of years of dates must
// stay one request); a date whose partition is incomplete fails at lookup.
func (r *Resolver) bucketChild(l layout.Logical, name string) bool {
	switch l.Depth() {
	case 0, 1:
		return layout.ValidName(name)
	case 2:
		return layout.Key{Venue: l.Key.Venue, Symbol: l.Key.Symbol, Date: name}.Validate() == nil
	}
	return false
}

// statBucketDir describes v1, a venue or a symbol directory that only the bucket holds.
func (r *Resolver) statBucketDir(l layout.Logical, name, logical string) (Entry, error) {
	if l.Depth() == 0 {
		return Entry{Name: name, IsDir: true, Tier: layout.Remote}, nil
	}
	parent := path.Dir(l.Rel())
	names, err := r.bucket.subdirs(parent)
	if err != nil {
		return Entry{}, fmt.Errorf("%s: %w", logical, err)
	}
	if _, ok := slices.BinarySearch(names, name); ok {
		return Entry{Name: name, IsDir: true, Tier: layout.Remote}, nil
	}
	return Entry{}, fmt.Errorf("%s: %w", logical, ErrNotFound)
}

func (r *Resolver) readPartitionDir(l layout.Logical) ([]Entry, error) {
	loc, err := r.Locate(l.Key)
	if err != nil {
		return nil, err
	}
	if loc.Kind == KindBucket {
		bs, inner, hostsDir, err := r.bucketTarget(loc, l.Rest)
		if err != nil {
			return nil, err
		}
		if hostsDir {
			ids, err := r.bucket.hostVersions(l.Key)
			if err != nil {
				return nil, fmt.Errorf("%s/%s: %w", l.Key.Dir(), l.Rest, err)
			}
			out := make([]Entry, 0, len(ids))
			for _, id := range ids {
				out = append(out, Entry{Name: id, IsDir: true, Tier: layout.Remote})
			}
			return out, nil
		}
		if inner == "" && l.Rest != "" {
			bs = &bstub{s: bs.s, zk: bs.zk, ik: bs.ik, slot: bs.slot} // a host's version: no hosts/ of its own
		}
		es, ok := bs.entries(inner)
		if !ok {
			return nil, fmt.Errorf("%s/%s: %w", l.Key.Dir(), l.Rest, ErrNotFound)
		}
		return es, nil
	}
	ents, err := loc.root.readDir(path.Join(l.Key.Dir(), l.Rest))
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, e := range ents {
		if layout.IsTemp(e.Name) {
			continue
		}
		if l.Rest == "" {
			switch e.Name {
			case layout.IdxName:
				continue
			case layout.ZstName, layout.StubName:
				e.Name = layout.BookName
			}
		}
		out = append(out, Entry{Name: e.Name, IsDir: e.IsDir, Tier: loc.Tier})
	}
	sortEntries(out)
	return dedupe(out), nil
}

func sortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
}

func dedupe(es []Entry) []Entry {
	out := es[:0]
	for i, e := range es {
		if i > 0 && e.Name == es[i-1].Name {
			continue
		}
		out = append(out, e)
	}
	return out
}

// Partitions lists the partitions whose book is held by local tier t itself (not by
// priority): for the tier manager's scans. For t == layout.Remote it lists stubs in the cold root.
func (r *Resolver) Partitions(t layout.Tier) ([]layout.Key, error) {
	lt := t
	if t == layout.Remote {
		lt = layout.Cold
	}
	rt := &r.local[lt]
	if rt.path == "" {
		return nil, nil
	}
	var keys []layout.Key
	venues, err := rt.readDir(layout.LayoutVersion)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	for _, v := range venues {
		if !v.IsDir || !layout.ValidName(v.Name) {
			continue
		}
		syms, err := rt.readDir(path.Join(layout.LayoutVersion, v.Name))
		if err != nil {
			continue
		}
		for _, s := range syms {
			if !s.IsDir || !layout.ValidName(s.Name) {
				continue
			}
			dates, err := rt.readDir(path.Join(layout.LayoutVersion, v.Name, s.Name))
			if err != nil {
				continue
			}
			for _, d := range dates {
				k := layout.Key{Venue: v.Name, Symbol: s.Name, Date: d.Name}
				if !d.IsDir || k.Validate() != nil {
					continue
				}
				dir := k.Dir()
				var has bool
				switch t {
				case layout.Remote:
					has = rt.exists(path.Join(dir, layout.StubName))
				case layout.Cold:
					has = rt.exists(path.Join(dir, layout.ZstName)) || rt.exists(path.Join(dir, layout.BookName))
				default:
					has = rt.exists(path.Join(dir, layout.BookName))
				}
				if has {
					keys = append(keys, k)
				}
			}
		}
	}
	return keys, nil
}
