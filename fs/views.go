package fs

import (
	"context"
	"io"
	"path"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/chronicle/chronicle/format/bookview"
	"github.com/chronicle/chronicle/layout"
	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// ViewsDir is the virtual directory of research views in every partition
// (docs/format/views.md): views/top{N}.npy for the configured N, views/trades.npy and
// views/bbo.npy, computed from book.q whatever tier holds it.
const ViewsDir = "views"

// View attributes, besides the tier, source, version and sealed ones of every file.
const (
	XattrView       = "user.chronicle.view"        // top10, trades, bbo
	XattrViewN      = "user.chronicle.view.n"      // N of a top-N view
	XattrViewSource = "user.chronicle.view.source" // the logical book.q the rows come from
	XattrViewRows   = "user.chronicle.view.rows"   // rows now
)

// viewNames are the files of every views/ directory, sorted.
func (f *FS) viewNames() []string {
	ns := slices.Clone(f.cfg.Views)
	slices.Sort(ns)
	var out []string
	for _, n := range ns {
		out = append(out, bookview.View{Kind: bookview.KindTop, N: n}.Name())
	}
	out = append(out, bookview.BBOName, bookview.TradesName)
	slices.Sort(out)
	return out
}

// viewOf returns the view a name in views/ stands for, false for a name outside the
// configured set.
func (f *FS) viewOf(name string) (bookview.View, bool) {
	v, ok := bookview.ParseName(name)
	if !ok || v.Kind == bookview.KindTop && !slices.Contains(f.cfg.Views, v.N) {
		return bookview.View{}, false
	}
	return v, true
}

// viewsNode is a partition's views/ directory.
type viewsNode struct {
	gofs.Inode
	fs   *FS
	part string // the partition directory's logical path
}

var (
	_ gofs.NodeLookuper       = (*viewsNode)(nil)
	_ gofs.NodeOpendirHandler = (*viewsNode)(nil)
	_ gofs.NodeGetattrer      = (*viewsNode)(nil)
	_ gofs.NodeSetattrer      = (*viewsNode)(nil)
	_ gofs.NodeAccesser       = (*viewsNode)(nil)
	_ gofs.NodeGetxattrer     = (*viewsNode)(nil)
	_ gofs.NodeListxattrer    = (*viewsNode)(nil)
	_ gofs.NodeStatfser       = (*viewsNode)(nil)
	_ gofs.NodeOpener         = (*viewNode)(nil)
	_ gofs.NodeGetattrer      = (*viewNode)(nil)
	_ gofs.NodeSetattrer      = (*viewNode)(nil)
	_ gofs.NodeAccesser       = (*viewNode)(nil)
	_ gofs.NodeGetxattrer     = (*viewNode)(nil)
	_ gofs.NodeListxattrer    = (*viewNode)(nil)
	_ gofs.NodeStatfser       = (*viewNode)(nil)
	_ gofs.FileReader         = (*viewHandle)(nil)
	_ gofs.FileReleaser       = (*viewHandle)(nil)
	_ gofs.FileGetattrer      = (*viewHandle)(nil)
)

func (d *viewsNode) logical() string { return path.Join(d.part, ViewsDir) }

// lookupViews answers the name views in a partition directory: there whenever its book is.
func (d *dirNode) lookupViews(ctx context.Context, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	f := d.fs
	e, err := f.res.Stat(d.child(layout.BookName))
	if err != nil {
		return nil, f.errno("lookup", d.child(ViewsDir), err)
	}
	logical := d.child(ViewsDir)
	ino := inoOf(logical)
	ch := d.NewInode(ctx, &viewsNode{fs: f, part: d.logical}, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino})
	if _, ok := ch.Operations().(*viewsNode); !ok {
		return nil, f.collision(logical, ch)
	}
	f.fillDir(&out.Attr, ino, e.ModTime)
	out.SetEntryTimeout(f.partDirEntryTimeout(levelPartition + 1)) // goes with its partition's book (FS.invalidate)
	out.SetAttrTimeout(d.attrTimeout())
	return ch, 0
}

func (d *viewsNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	e, err := d.fs.res.Stat(path.Join(d.part, layout.BookName))
	if err != nil {
		return d.fs.errno("getattr", d.logical(), err)
	}
	d.fs.fillDir(&out.Attr, inoOf(d.logical()), e.ModTime)
	timeout := d.fs.cfg.DirTimeout // its partition's
	if _, parent := d.Parent(); parent != nil {
		if p, ok := parent.Operations().(*dirNode); ok {
			timeout = p.attrTimeout()
		}
	}
	out.SetTimeout(timeout)
	return 0
}

func (d *viewsNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

func (d *viewsNode) Access(ctx context.Context, mask uint32) syscall.Errno { return access(mask) }

func (d *viewsNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return statfs(out)
}

func (d *viewsNode) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	var out []fuse.DirEntry
	for _, n := range d.fs.viewNames() {
		out = append(out, fuse.DirEntry{Name: n, Mode: syscall.S_IFREG, Ino: inoOf(path.Join(d.logical(), n))})
	}
	return newDirHandle(out, nil), fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

func (d *viewsNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	f := d.fs
	v, ok := f.viewOf(name)
	if !ok {
		return nil, syscall.ENOENT
	}
	logical := path.Join(d.logical(), name)
	n := &viewNode{fs: f, logical: logical, part: d.part, view: v}
	vp, err := f.views.get(ctx, d.part)
	if err != nil {
		return nil, f.errno("lookup", logical, err)
	}
	timeout := n.attr(&out.Attr, vp)
	f.views.put(vp)
	ch := d.NewInode(ctx, n, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: inoOf(logical)})
	if _, ok := ch.Operations().(*viewNode); !ok {
		return nil, f.collision(logical, ch)
	}
	out.SetAttrTimeout(timeout)
	out.SetEntryTimeout(f.cfg.SealedTimeout)
	return ch, 0
}

func (d *viewsNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	e, err := d.fs.res.Stat(d.part)
	if err != nil {
		return 0, d.fs.errno("getxattr", d.logical(), err)
	}
	return getxattr(map[string]string{XattrTier: e.Tier.String(), XattrSource: e.Source}, 0)(attr, dest)
}

func (d *viewsNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listxattr(dest, XattrTier, XattrSource)
}

// viewNode is one view file.
type viewNode struct {
	gofs.Inode
	fs      *FS
	logical string
	part    string
	view    bookview.View
}

// attr fills the view's attributes from the partition's state and returns their timeout.
func (n *viewNode) attr(a *fuse.Attr, vp *viewPart) time.Duration {
	n.fs.fillFile(a, inoOf(n.logical), n.view.Size(vp.part.Rows(n.view)), vp.bi.mtime)
	if vp.bi.sealed {
		return n.fs.cfg.SealedTimeout
	}
	return n.fs.cfg.GrowingTimeout
}

func (n *viewNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if h, ok := fh.(*viewHandle); ok {
		return h.Getattr(ctx, out)
	}
	vp, err := n.fs.views.get(ctx, n.part)
	if err != nil {
		return n.fs.errno("getattr", n.logical, err)
	}
	defer n.fs.views.put(vp)
	out.SetTimeout(n.attr(&out.Attr, vp))
	return 0
}

func (n *viewNode) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}

func (n *viewNode) Access(ctx context.Context, mask uint32) syscall.Errno { return access(mask) }

func (n *viewNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return statfs(out)
}

// Open serves the view from the partition's state: the header counts the rows there are
// now. Sealed views keep the kernel's page cache across opens (their bytes never change);
// a growing view's header changes, so each open drops it.
func (n *viewNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	f := n.fs
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		return nil, 0, syscall.EROFS
	}
	vp, err := f.views.get(ctx, n.part)
	if err != nil {
		return nil, 0, f.errno("open", n.logical, err)
	}
	h := &viewHandle{node: n, vp: vp, vf: vp.part.OpenView(n.view, f.segs.source(vp))}
	f.st.open(vp.bi.tier, false)
	var out uint32
	if vp.bi.sealed {
		out |= fuse.FOPEN_KEEP_CACHE
	}
	return h, out, 0
}

func (n *viewNode) xattrs(ctx context.Context) (map[string]string, syscall.Errno) {
	vp, err := n.fs.views.get(ctx, n.part)
	if err != nil {
		return nil, n.fs.errno("getxattr", n.logical, err)
	}
	defer n.fs.views.put(vp)
	m := map[string]string{
		XattrTier:       vp.bi.tier.String(),
		XattrSource:     vp.bi.source,
		XattrVersion:    vp.th.Version() + ":" + n.view.Name() + ":" + strconv.FormatInt(vp.part.Rows(n.view), 10),
		XattrSealed:     strconv.FormatBool(vp.bi.sealed),
		XattrView:       n.view.Name()[:len(n.view.Name())-len(".npy")],
		XattrViewSource: path.Join(n.part, layout.BookName),
		XattrViewRows:   strconv.FormatInt(vp.part.Rows(n.view), 10),
	}
	if n.view.Kind == bookview.KindTop {
		m[XattrViewN] = strconv.Itoa(n.view.N)
	}
	return m, 0
}

func (n *viewNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	switch attr {
	case XattrTier, XattrSource, XattrVersion, XattrSealed, XattrView, XattrViewSource, XattrViewRows, XattrViewN:
	default:
		return 0, syscall.ENODATA
	}
	return getxattr(n.xattrs(ctx))(attr, dest)
}

func (n *viewNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	names := []string{XattrTier, XattrSource, XattrVersion, XattrSealed, XattrView, XattrViewSource, XattrViewRows}
	if n.view.Kind == bookview.KindTop {
		names = append(names, XattrViewN)
	}
	return listxattr(dest, names...)
}

// viewHandle is one open view file.
type viewHandle struct {
	node   *viewNode
	vp     *viewPart
	vf     *bookview.ViewFile
	closed bool
}

// Read fills dest with the view's bytes. Failures (a damaged book or index, a remote
// read that times out) are EIO with a log line, never a short read.
func (h *viewHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f := h.node.fs
	start := time.Now()
	if !h.vp.bi.sealed {
		if bi, err := inspectBook(h.vp.th, h.vp.bi.headerSize); err == nil {
			if err := h.vp.part.Refresh(bi.size); err != nil {
				return nil, h.fail(off, len(dest), err)
			}
		}
	}
	n, err := h.vf.ReadAt(dest, off)
	if err != nil && n < len(dest) && !isEOF(err) {
		return nil, h.fail(off, len(dest), err)
	}
	f.st.read(h.vp.bi.tier, n, time.Since(start), false)
	// A vector, written as it is: go-fuse would try to splice a byte result (handle.Read).
	return fuse.ReadResultVector([][]byte{dest[:n]}), 0
}

func (h *viewHandle) fail(off int64, n int, err error) syscall.Errno {
	f := h.node.fs
	f.st.readError(h.vp.bi.tier)
	f.log.Error("view read failed", "path", h.node.logical, "tier", h.vp.bi.tier.String(), "off", off, "len", n, "err", err)
	return syscall.EIO
}

// Getattr answers fstat of an open view from its own partition state.
func (h *viewHandle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	if !h.vp.bi.sealed {
		if bi, err := inspectBook(h.vp.th, h.vp.bi.headerSize); err == nil {
			h.vp.part.Refresh(bi.size)
		}
	}
	out.SetTimeout(h.node.attr(&out.Attr, h.vp))
	return 0
}

func (h *viewHandle) Release(ctx context.Context) syscall.Errno {
	if !h.closed {
		h.closed = true
		h.node.fs.views.put(h.vp)
	}
	return 0
}

func isEOF(err error) bool { return err == io.EOF }
