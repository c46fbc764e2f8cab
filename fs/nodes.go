package fs

import (
	"context"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

const (
	fileMode = 0o444
	dirMode  = 0o555
	blkSize  = 1 << 20 // st_blksize: tools size their reads from it (cp, cat)
)

// Extended attributes (getfattr -d).
const (
	XattrTier    = "user.chronicle.tier"    // hot, warm, cold or remote
	XattrSource  = "user.chronicle.source"  // physical path or object URI serving the bytes
	XattrVersion = "user.chronicle.version" // changes whenever the bytes behind could differ
	XattrSealed  = "user.chronicle.sealed"  // "true" once the content can never change
)

// level is a directory's depth in the mount's tree: the root, v1/, a venue, a symbol, a
// partition, then the directories inside a partition (index/, derived/...) one level each.
type level int8

const (
	levelRoot      level = iota - 1 // the mount root: v1/ and hive/
	levelLayout                     // v1/
	levelVenue                      // v1/{venue}
	levelSymbol                     // v1/{venue}/{symbol}
	levelPartition                  // v1/{venue}/{symbol}/{date}: book.q, meta.json, index/, the views
)

// dirNode is a directory of the union: the mount root, v1, venue, symbol, partition, or a
// directory inside a partition.
type dirNode struct {
	gofs.Inode
	fs      *FS
	logical string // "" for the mount root, then "v1", "v1/venue", ...
	level   level  // where it stands in the tree

	mu       sync.Mutex
	loc      locState        // partitions: where the book was when last checked
	listed   bool            // entries holds the last listing served
	listedAt time.Time       // when it was made; reused for dir_timeout
	entries  []fuse.DirEntry // never modified: a new listing replaces the slice
	used     atomic.Int64    // partitions: when the kernel last asked about it (unix ns)
}

type locState struct {
	tier  layout.Tier
	kind  tiers.Kind
	found bool
	set   bool
}

var (
	_ gofs.NodeLookuper        = (*dirNode)(nil)
	_ gofs.NodeOpendirHandler  = (*dirNode)(nil)
	_ gofs.NodeGetattrer       = (*dirNode)(nil)
	_ gofs.NodeSetattrer       = (*dirNode)(nil)
	_ gofs.NodeAccesser        = (*dirNode)(nil)
	_ gofs.NodeGetxattrer      = (*dirNode)(nil)
	_ gofs.NodeListxattrer     = (*dirNode)(nil)
	_ gofs.NodeOnForgetter     = (*dirNode)(nil)
	_ gofs.NodeStatfser        = (*dirNode)(nil)
	_ gofs.NodeOpener          = (*fileNode)(nil)
	_ gofs.NodeGetattrer       = (*fileNode)(nil)
	_ gofs.NodeSetattrer       = (*fileNode)(nil)
	_ gofs.NodeAccesser        = (*fileNode)(nil)
	_ gofs.NodeGetxattrer      = (*fileNode)(nil)
	_ gofs.NodeListxattrer     = (*fileNode)(nil)
	_ gofs.NodeStatfser        = (*fileNode)(nil)
	_ gofs.FileReader          = (*handle)(nil)
	_ gofs.FileReleaser        = (*handle)(nil)
	_ gofs.FilePassthroughFder = (*handle)(nil)
)

func (d *dirNode) child(name string) string {
	if d.logical == "" {
		return name
	}
	return d.logical + "/" + name
}

func (f *FS) fillDir(a *fuse.Attr, ino uint64, mtime time.Time) {
	a.Ino = ino
	a.Mode = syscall.S_IFDIR | dirMode
	a.Nlink = 2
	a.Uid, a.Gid = f.uid, f.gid
	a.Blksize = blkSize
	setTimes(a, mtime)
}

func setTimes(a *fuse.Attr, t time.Time) {
	if t.IsZero() {
		return
	}
	sec, nsec := uint64(t.Unix()), uint32(t.Nanosecond())
	a.Mtime, a.Mtimensec = sec, nsec
	a.Ctime, a.Ctimensec = sec, nsec
	a.Atime, a.Atimensec = sec, nsec
}

func (f *FS) fillFile(a *fuse.Attr, ino uint64, size int64, mtime time.Time) {
	a.Ino = ino
	a.Mode = syscall.S_IFREG | fileMode
	a.Nlink = 1
	a.Size = uint64(size)
	a.Blocks = uint64(size+511) / 512
	a.Uid, a.Gid = f.uid, f.gid
	a.Blksize = blkSize
	setTimes(a, mtime)
}

func (d *dirNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if d.level == levelRoot {
		d.fs.fillDir(&out.Attr, rootIno, time.Time{})
		out.SetTimeout(d.fs.cfg.DirTimeout)
		return 0
	}
	e, err := d.fs.res.Stat(d.logical)
	if err != nil && !(d.level == levelLayout && toErrno(err) == syscall.ENOENT) { // v1 exists even when no tier has it yet
		return d.fs.errno("getattr", d.logical, err)
	}
	d.fs.fillDir(&out.Attr, inoOf(d.logical), e.ModTime)
	out.SetTimeout(d.attrTimeout())
	return 0
}

// Setattr refuses every change: the mount is read-only (the kernel stops most before here).
func (d *dirNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

func (d *dirNode) Access(ctx context.Context, mask uint32) syscall.Errno { return access(mask) }

func (d *dirNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return statfs(out)
}

func statfs(out *fuse.StatfsOut) syscall.Errno {
	out.Bsize = blkSize
	out.Frsize = blkSize
	out.NameLen = 255
	return 0
}

// access answers access(2) for read-only content: writes are refused, the rest is left to
// the kernel's permission check (default_permissions).
func access(mask uint32) syscall.Errno {
	if mask&2 != 0 { // W_OK
		return syscall.EROFS
	}
	return 0
}

// touch records a use of a partition directory (the least recently used are forgotten
// first, see FS.forget).
func (d *dirNode) touch() {
	if d.level == levelPartition {
		d.used.Store(time.Now().UnixNano())
	}
}

func (d *dirNode) OnForget() {
	if d.level == levelPartition {
		d.fs.dropPart(d)
	}
}

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	f := d.fs
	if d.level == levelRoot {
		if name == layout.HiveDir {
			return d.lookupHive(ctx, out) // hive.go
		}
		if name != layout.LayoutVersion {
			return nil, syscall.ENOENT
		}
		// v1 always exists, even before any tier has data: the mount's shape never changes.
		ch := d.NewInode(ctx, &dirNode{fs: f, logical: name, level: levelLayout}, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: inoOf(name)})
		f.fillDir(&out.Attr, inoOf(name), time.Time{})
		out.SetEntryTimeout(f.cfg.SealedTimeout)
		out.SetAttrTimeout(f.cfg.DirTimeout)
		return ch, 0
	}
	child := d.child(name)
	d.touch()
	if d.level == levelPartition && (name == layout.BookName || name == NPYName) {
		return d.lookupBook(ctx, name, out)
	}
	if d.level == levelPartition && name == ViewsDir {
		return d.lookupViews(ctx, out)
	}
	e, err := f.res.Stat(child)
	if err != nil {
		return nil, f.errno("lookup", child, err)
	}
	ino := inoOf(child)
	if e.IsDir {
		ch := d.NewInode(ctx, &dirNode{fs: f, logical: child, level: d.level + 1}, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino})
		cd, ok := ch.Operations().(*dirNode)
		if !ok {
			return nil, f.collision(child, ch)
		}
		if cd.level == levelPartition {
			cd.touch()
			cd.checkLoc()
			f.addPart(cd)
		}
		f.fillDir(&out.Attr, ino, e.ModTime)
		out.SetEntryTimeout(f.partDirEntryTimeout(cd.level))
		if cd.level == levelPartition+1 {
			out.SetAttrTimeout(d.attrTimeout()) // its partition's (not linked to it yet)
		} else {
			out.SetAttrTimeout(cd.attrTimeout())
		}
		return ch, 0
	}
	ch := d.NewInode(ctx, newFileNode(f, child, "", kindPlain), gofs.StableAttr{Mode: syscall.S_IFREG, Ino: ino})
	if _, ok := ch.Operations().(*fileNode); !ok {
		return nil, f.collision(child, ch)
	}
	f.fillFile(&out.Attr, ino, e.Size, e.ModTime)
	out.SetEntryTimeout(f.cfg.DirTimeout)
	out.SetAttrTimeout(f.cfg.DirTimeout)
	return ch, 0
}

func (d *dirNode) lookupBook(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	f := d.fs
	child, book := d.child(name), d.child(layout.BookName)
	var hs int64
	if ch := d.GetChild(name); ch != nil {
		if fn, ok := ch.Operations().(*fileNode); ok {
			hs = fn.knownHS()
		}
	}
	bi, err := f.describeBook(ctx, book, hs)
	if err != nil {
		return nil, f.errno("lookup", child, err)
	}
	kind := kindBook
	if name == NPYName {
		kind = kindNPY
	}
	ch := d.NewInode(ctx, newFileNode(f, child, book, kind), gofs.StableAttr{Mode: syscall.S_IFREG, Ino: inoOf(child)})
	fn, ok := ch.Operations().(*fileNode)
	if !ok {
		return nil, f.collision(child, ch)
	}
	out.SetAttrTimeout(fn.bookAttr(&out.Attr, bi))
	out.SetEntryTimeout(f.cfg.SealedTimeout)
	return ch, 0
}

// partDirEntryTimeout is how long the kernel may keep the name of a directory at level l (a
// partition, or inside one). A partition directory and the directories in it only go away
// with the partition or by a tier move, and the watch drops the names (and attributes)
// below every partition the kernel knows when it moves or goes (FS.invalidate), so they are
// kept as long as sealed books' attributes. A find then enters every partition and its
// views/ without a LOOKUP (readdirplus gave the names), however long the walk takes.
// Venues and symbols keep dir_timeout.
func (f *FS) partDirEntryTimeout(l level) time.Duration {
	if l >= levelPartition {
		return max(f.cfg.SealedTimeout, f.cfg.DirTimeout)
	}
	return f.cfg.DirTimeout
}

// attrTimeout is how long the kernel may keep the directory's attributes. A cold or remote
// partition changes only by a move or a new version, after which the watch invalidates it
// (FS.invalidate), so its attributes are kept long: a find enters it without a GETATTR (the
// kernel's permission check wants fresh attributes). Directories in it follow it; hot and
// warm partitions (growing, sealing: their mtime moves) and the directories above
// partitions keep dir_timeout. (Listings are checked at every OPENDIR either way.)
func (d *dirNode) attrTimeout() time.Duration {
	p := d
	if d.level == levelPartition+1 {
		if _, parent := d.Parent(); parent != nil {
			p, _ = parent.Operations().(*dirNode)
		}
	}
	if p == nil || p.level != levelPartition {
		return d.fs.cfg.DirTimeout
	}
	p.mu.Lock()
	loc := p.loc
	p.mu.Unlock()
	if loc.set && loc.found && loc.tier >= layout.Cold {
		return max(d.fs.cfg.SealedTimeout, d.fs.cfg.DirTimeout)
	}
	return d.fs.cfg.DirTimeout
}

func (f *FS) collision(logical string, ch *gofs.Inode) syscall.Errno {
	f.log.Error("inode number collision: two logical paths hash to one inode", "path", logical, "ino", ch.StableAttr().Ino)
	return syscall.EIO
}

// checkLoc records where a partition's book is now and reports whether that changed since
// the last check.
func (d *dirNode) checkLoc() (changed bool) {
	l, err := layout.ParseLogical(d.logical)
	if err != nil {
		return false
	}
	loc, err := d.fs.res.Locate(l.Key)
	now := locState{tier: loc.Tier, kind: loc.Kind, found: err == nil, set: true}
	d.mu.Lock()
	defer d.mu.Unlock()
	changed = d.loc.set && d.loc != now
	d.loc = now
	return changed
}

// OpendirHandle lists the directory once per open and lets the kernel keep the listing in
// its page cache (FOPEN_CACHE_DIR) unless it differs from the one served last: listing
// 3,650 dates again then costs one OPENDIR instead of a READDIR round trip per page. A
// listing that changed is served without the flag, which drops the kernel's copy, so a
// partition that appears (or goes) shows at the next open after dir_timeout, the time
// directories' attributes are trusted too. (A node listed for the first time has a new
// kernel inode, with nothing cached yet.)
func (d *dirNode) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	d.touch()
	d.mu.Lock()
	if d.listed && time.Since(d.listedAt) < d.fs.cfg.DirTimeout {
		out := d.entries
		d.mu.Unlock()
		return newDirHandle(out, d.Lookup), fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
	}
	d.mu.Unlock()
	out, errno := d.list()
	if errno != 0 {
		return nil, 0, errno
	}
	d.mu.Lock()
	changed := d.listed && !slices.Equal(d.entries, out)
	d.listed, d.listedAt, d.entries = true, time.Now(), out
	d.mu.Unlock()
	var fl uint32
	if !changed {
		fl = fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
	}
	return newDirHandle(out, d.Lookup), fl, 0
}

// list returns the directory's entries, sorted by name.
func (d *dirNode) list() ([]fuse.DirEntry, syscall.Errno) {
	if d.level == levelRoot {
		return []fuse.DirEntry{{Name: layout.HiveDir, Mode: syscall.S_IFDIR, Ino: inoOf(layout.HiveDir)},
			{Name: layout.LayoutVersion, Mode: syscall.S_IFDIR, Ino: inoOf(layout.LayoutVersion)}}, 0
	}
	ents, err := d.fs.res.ReadDir(d.logical)
	if err != nil {
		return nil, d.fs.errno("readdir", d.logical, err)
	}
	out := make([]fuse.DirEntry, 0, len(ents)+1)
	for _, e := range ents {
		if d.level == levelPartition && (e.Name == NPYName || e.Name == ViewsDir) {
			continue // the virtual one takes the name
		}
		mode := uint32(syscall.S_IFREG)
		if e.IsDir {
			mode = syscall.S_IFDIR
		}
		out = append(out, fuse.DirEntry{Name: e.Name, Mode: mode, Ino: inoOf(d.child(e.Name))})
		if d.level == levelPartition && e.Name == layout.BookName && !e.IsDir {
			out = append(out, fuse.DirEntry{Name: NPYName, Mode: syscall.S_IFREG, Ino: inoOf(d.child(NPYName))},
				fuse.DirEntry{Name: ViewsDir, Mode: syscall.S_IFDIR, Ino: inoOf(d.child(ViewsDir))})
		}
	}
	if less := func(i, j int) bool { return out[i].Name < out[j].Name }; !sort.SliceIsSorted(out, less) {
		sort.Slice(out, less)
	}
	return out, 0
}

func (d *dirNode) xattrs(ctx context.Context) (map[string]string, syscall.Errno) {
	if d.level < levelPartition {
		return nil, 0
	}
	e, err := d.fs.res.Stat(d.logical)
	if err != nil {
		return nil, d.fs.errno("getxattr", d.logical, err)
	}
	return map[string]string{XattrTier: e.Tier.String(), XattrSource: e.Source}, 0
}

func (d *dirNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return getxattr(d.xattrs(ctx))(attr, dest)
}

func (d *dirNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if d.level < levelPartition {
		return 0, 0
	}
	return listxattr(dest, XattrTier, XattrSource)
}

func getxattr(vals map[string]string, errno syscall.Errno) func(string, []byte) (uint32, syscall.Errno) {
	return func(attr string, dest []byte) (uint32, syscall.Errno) {
		if errno != 0 {
			return 0, errno
		}
		v, ok := vals[attr]
		if !ok {
			return 0, syscall.ENODATA
		}
		if len(dest) < len(v) {
			return uint32(len(v)), syscall.ERANGE
		}
		return uint32(copy(dest, v)), 0
	}
}

func listxattr(dest []byte, names ...string) (uint32, syscall.Errno) {
	var b []byte
	for _, n := range names {
		b = append(append(b, n...), 0)
	}
	if len(dest) < len(b) {
		return uint32(len(b)), syscall.ERANGE
	}
	return uint32(copy(dest, b)), 0
}

type fileKind uint8

const (
	kindPlain fileKind = iota // meta.json, index/..., derived/...
	kindBook                  // book.q
	kindNPY                   // the virtual book.npy
)

// fileNode is one logical file. The kernel keeps one per inode number; its fields remember
// what was reported so that moves between tiers stay invisible.
type fileNode struct {
	gofs.Inode
	fs      *FS
	logical string // the path shown
	book    string // the book.q it serves (kindBook, kindNPY)
	kind    fileKind

	mu sync.Mutex
	// Last reported attributes: a sealed book keeps the mtime it was first seen with while its
	// size stays the same, so a tier move (new physical file) never looks like a change.
	seenSealed bool
	seenSize   int64
	seenMtime  time.Time
	// openedSealed is the size at the last open of a sealed book (-1: none): the next open
	// keeps the page cache only if it is the same sealed content.
	openedSealed int64
	openedVer    string // plain files: Version at the last open, for the same decision
	headerSize   int64  // the book's header size once known (the same in every tier)
	// Passthrough: the kernel lets one inode be open either through one backing file or
	// through the page cache, never both at once and never through two backing files.
	ptFile     *os.File // backing file of every passthrough open while ptRefs > 0
	ptRefs     int
	cachedRefs int
}

func newFileNode(f *FS, logical, book string, kind fileKind) *fileNode {
	return &fileNode{fs: f, logical: logical, book: book, kind: kind, openedSealed: -1}
}

func (n *fileNode) Access(ctx context.Context, mask uint32) syscall.Errno { return access(mask) }

func (n *fileNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return statfs(out)
}

func (n *fileNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

func (n *fileNode) knownHS() int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.headerSize
}

// bookAttr fills a book's or book.npy's attributes and returns the attribute timeout.
func (n *fileNode) bookAttr(a *fuse.Attr, bi bookInfo) time.Duration {
	size := bi.size
	if n.kind == kindNPY {
		size = npySize(bi.headerSize, bi.size)
	}
	n.mu.Lock()
	n.headerSize = bi.headerSize
	mtime := bi.mtime
	if bi.sealed && n.seenSealed && n.seenSize == size {
		mtime = n.seenMtime
	}
	n.seenSealed, n.seenSize, n.seenMtime = bi.sealed, size, mtime
	n.mu.Unlock()
	n.fs.fillFile(a, inoOf(n.logical), size, mtime)
	if bi.sealed {
		return n.fs.cfg.SealedTimeout
	}
	return n.fs.cfg.GrowingTimeout
}

func (n *fileNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f := n.fs
	if h, ok := fh.(*handle); ok && n.kind != kindPlain {
		// fstat of an open book answers from the tier it was opened on.
		bi, err := inspectBook(h.h, n.knownHS())
		if err != nil {
			return f.errno("getattr", n.logical, err)
		}
		out.SetTimeout(n.bookAttr(&out.Attr, bi))
		return 0
	}
	if n.kind != kindPlain {
		bi, err := f.describeBook(ctx, n.book, n.knownHS())
		if err != nil {
			return f.errno("getattr", n.logical, err)
		}
		out.SetTimeout(n.bookAttr(&out.Attr, bi))
		return 0
	}
	e, err := f.res.Stat(n.logical)
	if err != nil {
		return f.errno("getattr", n.logical, err)
	}
	f.fillFile(&out.Attr, inoOf(n.logical), e.Size, e.ModTime)
	out.SetTimeout(f.cfg.DirTimeout)
	return 0
}

// Open opens the file read-only: on its tier (openSource), then, under the node's lock, the
// page cache policy (keepCacheLocked) and the way the kernel reads it (attachLocked).
func (n *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	f := n.fs
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		return nil, 0, syscall.EROFS
	}
	o, err := n.openSource(ctx)
	if err != nil {
		return nil, 0, f.errno("open", n.logical, err)
	}
	h := &handle{node: n, h: o.th, src: o.src, tier: o.th.Tier(), fs: f}
	n.mu.Lock()
	keep := n.keepCacheLocked(o)
	n.attachLocked(h, o)
	n.mu.Unlock()

	mode := "served"
	if h.pt {
		mode = "passthrough"
	}
	f.st.open(h.tier, h.pt)
	f.log.Debug("open", "path", n.logical, "tier", h.tier.String(), "mode", mode, "keep_cache", keep && !h.pt, "source", o.th.Source())
	var out uint32
	if keep && !h.pt {
		out |= fuse.FOPEN_KEEP_CACHE
	}
	return h, out, 0
}

// opened is a file opened on its tier, with what serves its reads.
type opened struct {
	th     tiers.Handle
	src    replier // th's bytes, or the .npy view of them
	sealed bool    // the content can never change
	size   int64   // the size served
}

// openSource opens the file on the tier that holds it: a plain file as it is, a book
// through openBook (its header checked), a .npy view on top of its book.
func (n *fileNode) openSource(ctx context.Context) (opened, error) {
	f := n.fs
	if n.kind == kindPlain {
		th, err := f.res.Open(uninterrupted(ctx), n.logical)
		if err != nil {
			return opened{}, err
		}
		return opened{th: th, src: readerReplies{th}, sealed: th.Sealed(), size: th.Size()}, nil
	}
	th, bi, err := f.openBook(ctx, n.book, n.knownHS())
	if err != nil {
		return opened{}, err
	}
	o := opened{th: th, src: readerReplies{th}, sealed: bi.sealed, size: bi.size}
	if n.kind == kindNPY {
		v, err := newNPYView(th, bi.headerSize, bi.size, f.st)
		if err != nil {
			th.Close()
			return opened{}, err
		}
		o.src, o.size = v, npySize(bi.headerSize, bi.size)
	}
	return o, nil
}

// keepCacheLocked is the page cache policy: an open keeps what the kernel cached from the
// last one only when the content is the same (a plain file of the same version, a sealed
// book of the same size), and it records this open for the next. n.mu is held.
func (n *fileNode) keepCacheLocked(o opened) bool {
	if n.kind == kindPlain {
		keep := o.th.Version() == n.openedVer
		n.openedVer = o.th.Version()
		return keep
	}
	keep := o.sealed && n.openedSealed == o.size
	n.openedSealed = -1
	if o.sealed {
		n.openedSealed = o.size
	}
	return keep
}

// attachLocked decides how the kernel reads h: through a backing file (passthrough, for a
// sealed book or plain file on a local tier, shared by every open of the inode while one
// holds it) or through the daemon and the page cache, counting the inode's opens of each
// kind (release undoes it). The kernel allows one or the other per inode, never both, and
// one backing file. n.mu is held.
func (n *fileNode) attachLocked(h *handle, o opened) {
	f := n.fs
	backing := o.th.File()
	switch {
	case n.ptRefs > 0:
		// Another open holds a backing file: share it (same bytes; the kernel allows one).
		h.pt, h.ptFd = true, int(n.ptFile.Fd())
		n.ptRefs++
		return
	case f.cfg.Passthrough && n.kind != kindNPY && o.sealed && backing != nil && n.cachedRefs == 0:
		dup, err := dupFile(backing)
		if err == nil {
			n.ptFile, n.ptRefs = dup, 1
			h.pt, h.ptFd = true, int(dup.Fd())
			return
		}
		f.log.Warn("passthrough: dup backing file failed; serving through the daemon", "path", n.logical, "err", err)
	}
	n.cachedRefs++
}

// release undoes Open's accounting.
func (n *fileNode) release(h *handle) {
	n.mu.Lock()
	var closeFile *os.File
	if h.pt {
		n.ptRefs--
		if n.ptRefs == 0 {
			closeFile, n.ptFile = n.ptFile, nil
		}
	} else {
		n.cachedRefs--
	}
	n.mu.Unlock()
	if closeFile != nil {
		closeFile.Close()
	}
}

func (n *fileNode) xattrs(ctx context.Context) (map[string]string, syscall.Errno) {
	f := n.fs
	var (
		th     tiers.Handle
		sealed bool
		err    error
	)
	if n.kind == kindPlain {
		th, err = f.res.Open(uninterrupted(ctx), n.logical)
		if err == nil {
			sealed = th.Sealed()
		}
	} else {
		var bi bookInfo
		th, bi, err = f.openBook(ctx, n.book, n.knownHS())
		sealed = bi.sealed
	}
	if err != nil {
		return nil, f.errno("getxattr", n.logical, err)
	}
	defer th.Close()
	return map[string]string{
		XattrTier:    th.Tier().String(),
		XattrSource:  th.Source(),
		XattrVersion: th.Version(),
		XattrSealed:  strconv.FormatBool(sealed),
	}, 0
}

func (n *fileNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	switch attr {
	case XattrTier, XattrSource, XattrVersion, XattrSealed:
	default:
		return 0, syscall.ENODATA
	}
	return getxattr(n.xattrs(ctx))(attr, dest)
}

func (n *fileNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listxattr(dest, XattrTier, XattrSource, XattrVersion, XattrSealed)
}
