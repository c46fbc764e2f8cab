package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// READDIRPLUS (readdirplus, on by default) answers a listing with each entry's attributes, so
// the kernel does not come back with a LOOKUP for every name it then opens. A `find` walks
// every directory: a symbol's readdirplus gives it its 3,650 dates, a partition's its views/
// and index/, one round trip instead of one per name. Only sub-directories are answered this
// way: they cost the daemon what their LOOKUP would (a resolver Stat from the listings in
// memory). Files are left for the kernel to look up when it needs them (a view's size
// renders its partition's views, a book's may fetch its stub): go-fuse would otherwise look
// up every file of every listed directory, and `ls` of a partition would render its views.
// An entry answered without attributes (node id 0) is only a name to the kernel
// (fuse_direntplus_link), exactly what READDIR gives.

// dirStream is what go-fuse's list stream implements for a directory handle.
type dirStream interface {
	gofs.FileReaddirenter
	gofs.FileSeekdirer
	gofs.FileReleasedirer
}

// plusDir is a directory handle whose READDIRPLUS looks up only sub-directories, through
// lookup (the directory node's Lookup); nil lookup answers no entry.
type plusDir struct {
	dirStream
	lookup func(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno)
	last   fuse.DirEntry // the entry Readdirent produced last: go-fuse's Lookup names it
}

var (
	_ gofs.FileLookuper     = (*plusDir)(nil)
	_ gofs.FileReaddirenter = (*plusDir)(nil)
)

// newDirHandle serves the listing ents; lookup answers the attributes of its directories.
func newDirHandle(ents []fuse.DirEntry, lookup func(context.Context, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno)) *plusDir {
	return &plusDir{dirStream: gofs.NewListDirStream(ents).(dirStream), lookup: lookup}
}

func (h *plusDir) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	de, errno := h.dirStream.Readdirent(ctx)
	if de != nil {
		h.last = *de
	}
	return de, errno
}

// errNoPlus declines an entry's attributes; go-fuse then leaves its node id 0.
const errNoPlus = syscall.ENOENT

// Lookup answers READDIRPLUS for the entry just produced when it is a directory.
func (h *plusDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if h.lookup == nil || name != h.last.Name || h.last.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, errNoPlus
	}
	ch, errno := h.lookup(ctx, name, out)
	if errno != 0 {
		return nil, errNoPlus // gone since the listing: the kernel looks it up if asked
	}
	return ch, 0
}
