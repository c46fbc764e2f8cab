package fs

import (
	"context"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// replier answers the reads of one open file.
type replier interface {
	// readResult reads n bytes at off, into dest or as a result the kernel takes from
	// elsewhere (book.npy's tier file).
	readResult(dest []byte, off int64) (rr fuse.ReadResult, n int, err error)
	close()
}

// readerReplies answers reads with the bytes of a ReaderAt, read into the request's buffer
// and written as a vector (go-fuse would try to splice a plain byte result through a pipe
// it cannot make large enough for a 1 MiB reply).
type readerReplies struct{ io.ReaderAt }

func (r readerReplies) readResult(dest []byte, off int64) (fuse.ReadResult, int, error) {
	n, err := r.ReadAt(dest, off)
	if err != nil && err != io.EOF {
		return nil, n, err
	}
	return fuse.ReadResultVector([][]byte{dest[:n]}), n, nil
}

func (readerReplies) close() {}

// handle is one open file. It keeps the tiers.Handle of the tier the file was opened on, so
// it serves the same bytes after the partition moves (local files stay readable through
// their descriptor after the mover deletes them; remote objects are never deleted by a move).
type handle struct {
	fs   *FS
	node *fileNode
	h    tiers.Handle
	src  replier // h, or the book.npy view over it
	tier layout.Tier
	pt   bool // opened for kernel passthrough
	ptFd int

	closed atomic.Bool
}

// PassthroughFd gives go-fuse the backing file to register with the kernel. Every
// passthrough open of one inode returns the same descriptor (the node's shared one).
func (h *handle) PassthroughFd() (int, bool) { return h.ptFd, h.pt }

// Read fills dest from the handle's tier. It returns a short count only at end of file: a
// short read would make the kernel shrink the file, so any failure is EIO instead (the
// remote tier's reads are bounded by the resolver's RemoteTimeout).
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	start := time.Now()
	rr, n, err := h.src.readResult(dest, off)
	if err != nil {
		h.fs.st.readError(h.tier)
		h.fs.log.Error("read failed", "path", h.node.logical, "tier", h.tier.String(), "off", off, "len", len(dest), "err", err)
		return nil, syscall.EIO
	}
	h.fs.st.read(h.tier, n, time.Since(start), h.pt)
	return rr, 0
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	if h.closed.Swap(true) {
		return 0
	}
	h.node.release(h)
	h.src.close()
	if err := h.h.Close(); err != nil {
		h.fs.log.Warn("close", "path", h.node.logical, "err", err)
	}
	return 0
}

// dupFile duplicates f's descriptor: the node's shared backing file must outlive the handle
// that happened to open it first.
func dupFile(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

func (f *FS) errno(op, logical string, err error) syscall.Errno {
	e := toErrno(err)
	if e == syscall.ENOENT {
		f.log.Debug(op, "path", logical, "err", err)
	} else {
		f.log.Warn(op, "path", logical, "err", err)
	}
	return e
}
