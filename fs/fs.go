package fs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
)

// FS serves a tiers.Resolver as a FUSE file system. Create it with New and mount it with
// Mount; one FS serves one mount.
type FS struct {
	res *tiers.Resolver
	cfg Config
	log *slog.Logger
	st  *stats

	uid, gid uint32

	partsMu sync.Mutex
	parts   map[string]*dirNode // partition directories the kernel knows, by logical path

	views *viewParts // partitions whose views/ are being read (viewcache.go)
	segs  *segCache  // their rendered rows
}

// New returns an FS over res. cfg should start from DefaultConfig.
func New(res *tiers.Resolver, cfg Config, log *slog.Logger) (*FS, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &FS{
		res: res, cfg: cfg, log: log, st: newStats(),
		uid: uint32(os.Geteuid()), gid: uint32(os.Getegid()),
		parts: map[string]*dirNode{},
	}
	f.views = newViewParts(f)
	f.segs = newSegCache(int64(cfg.ViewsCacheBytes), f.st)
	return f, nil
}

// Config returns the configuration in use.
func (f *FS) Config() Config { return f.cfg }

// Resolver returns the resolver the FS serves.
func (f *FS) Resolver() *tiers.Resolver { return f.res }

// bookInfo is what the file system needs to know about a book.q beyond its bytes.
type bookInfo struct {
	size       int64 // committed length: the logical size
	sealed     bool  // immutable, and the local file (if any) is trimmed to size
	headerSize int64
	tier       layout.Tier
	source     string
	mtime      time.Time
}

// inspectBook describes the book behind h. A book is treated as sealed only once its file
// is trimmed to the committed length: the writer sets the sealed bit before it truncates
// the preallocated tail, and neither a cached size nor a passthrough backing file may ever
// include that tail. knownHS (the header size, if already known) spares compressed books a
// frame decode: their size and seal come from the index.
func inspectBook(h tiers.Handle, knownHS int64) (bookInfo, error) {
	bi := bookInfo{size: h.Size(), sealed: h.Sealed(), headerSize: knownHS, tier: h.Tier(), source: h.Source(), mtime: h.ModTime()}
	if knownHS > 0 && bi.sealed && h.File() == nil {
		return bi, nil
	}
	hdr, err := format.ReadHeader(h, -1, h.Source())
	if err != nil {
		return bookInfo{}, err
	}
	if hdr.Layout != format.LayoutBook {
		return bookInfo{}, fmt.Errorf("%s: %w: layout %s", h.Source(), ErrNotBook, hdr.Layout)
	}
	bi.headerSize = int64(hdr.HeaderSize)
	if bi.sealed && int64(hdr.Committed) != bi.size {
		bi.sealed = false
		bi.size = min(bi.size, int64(hdr.Committed))
	}
	return bi, nil
}

// openBook opens the book.q of a partition and inspects it.
func (f *FS) openBook(ctx context.Context, logical string, knownHS int64) (tiers.Handle, bookInfo, error) {
	h, err := f.res.Open(uninterrupted(ctx), logical)
	if err != nil {
		return nil, bookInfo{}, err
	}
	bi, err := inspectBook(h, knownHS)
	if err != nil {
		h.Close()
		return nil, bookInfo{}, err
	}
	return h, bi, nil
}

// describeBook is what a lookup needs of a book: from the resolver's entry when that says
// everything (a bucket partition's stub records the size and the header's), otherwise by
// opening the book, which for a remote book costs its index and first frame. find(1) over
// a bucket of years of partitions looks every book up.
func (f *FS) describeBook(ctx context.Context, logical string, knownHS int64) (bookInfo, error) {
	if e, err := f.res.Stat(logical); err == nil && e.HeaderSize > 0 && e.Sealed && e.Tier == layout.Remote {
		return bookInfo{size: e.Size, sealed: true, headerSize: e.HeaderSize, tier: e.Tier, source: e.Source, mtime: e.ModTime}, nil
	}
	h, bi, err := f.openBook(ctx, logical, knownHS)
	if err != nil {
		return bookInfo{}, err
	}
	h.Close()
	return bi, nil
}

func (f *FS) addPart(d *dirNode) {
	f.partsMu.Lock()
	f.parts[d.logical] = d
	f.partsMu.Unlock()
}

func (f *FS) dropPart(d *dirNode) {
	f.partsMu.Lock()
	if f.parts[d.logical] == d {
		delete(f.parts, d.logical)
	}
	f.partsMu.Unlock()
}

func (f *FS) partList() []*dirNode {
	f.partsMu.Lock()
	defer f.partsMu.Unlock()
	out := make([]*dirNode, 0, len(f.parts))
	for _, d := range f.parts {
		out = append(out, d)
	}
	return out
}

// uninterrupted keeps a request's values but not its cancellation. The kernel interrupts a
// FUSE request whenever the reading thread gets any signal, including the ones a runtime
// handles and resumes from (Go's preemption SIGURG, a profiler's SIGPROF); go-fuse turns
// that into a cancelled context. An open fetches an index or a stub that every later
// reader shares, bounded by remote_timeout: abandoning it would fail the read with EIO and
// fetch it all again on the retry.
func uninterrupted(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }
