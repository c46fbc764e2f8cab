package fs

import (
	"errors"
	"io/fs"
	"syscall"

	"github.com/chronicle/chronicle/tiers"
)

var (
	// ErrMounted means a live file system is already mounted on the mount point.
	ErrMounted = errors.New("mount point already has a live mount")

	// ErrNoMountPoint means the mount point does not exist (and creating it was not asked).
	ErrNoMountPoint = errors.New("mount point does not exist (--mkdir creates it)")

	// ErrNotMounted means an unmount was asked of a directory that is not a mount point.
	ErrNotMounted = errors.New("not a mount point")
	// ErrBadConfig wraps invalid [fs] settings.
	ErrBadConfig = errors.New("invalid fs configuration")
	// ErrNotBook means a book.q does not hold canonical book records, so it has no book.npy.
	ErrNotBook = errors.New("not a canonical book file")
	// ErrUnmountTimeout means a lazily detached mount still had users when the grace period ended.
	ErrUnmountTimeout = errors.New("mount still busy after the shutdown grace period")
)

// toErrno maps resolver errors to what the kernel understands. Only syscall.Errno leaves
// this package towards FUSE.
func toErrno(err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.Is(err, tiers.ErrNotFound), errors.Is(err, tiers.ErrInvalidPath), errors.Is(err, fs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, tiers.ErrIsDir):
		return syscall.EISDIR
	case errors.Is(err, tiers.ErrNotDir), errors.Is(err, syscall.ENOTDIR):
		return syscall.ENOTDIR
	case errors.As(err, &errno) && errno == syscall.EACCES, errors.Is(err, tiers.ErrForeignOwner):
		return syscall.EACCES
	}
	return syscall.EIO
}
