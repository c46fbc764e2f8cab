package tiers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/chronicle/chronicle/layout"
	"golang.org/x/sys/unix"
)

// root is one local tier folder. Every access goes through openat2 below it, so neither a
// symlink nor ".." inside the tier can lead elsewhere.
type root struct {
	tier layout.Tier
	path string

	uidOnce sync.Once
	uid     uint32
}

const beneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

func (r *root) open(rel string, flags int) (*os.File, error) {
	if r.path == "" {
		return nil, fs.ErrNotExist
	}
	dfd, err := unix.Open(r.path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: r.path, Err: err}
	}
	defer unix.Close(dfd)
	if rel == "" {
		rel = "."
	}
	fd, err := unix.Openat2(dfd, rel, &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: beneath})
	if err != nil {
		if err == unix.ELOOP || err == unix.EXDEV {
			// A symlink or an escape attempt: refuse it as if absent.
			err = syscall.ENOENT
		}
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(r.path, rel), Err: err}
	}
	// A file another user put in the tier is not served: the tier's owner (the daemons)
	// writes everything in it.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "stat", Path: filepath.Join(r.path, rel), Err: err}
	}
	if uid := r.owner(dfd); st.Uid != uid && flags&unix.O_PATH == 0 {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(r.path, rel),
			Err: fmt.Errorf("%w: owned by uid %d, the tier root by %d", ErrForeignOwner, st.Uid, uid)}
	}
	return os.NewFile(uintptr(fd), filepath.Join(r.path, rel)), nil
}

// owner is the uid owning the tier root (looked up once).
func (r *root) owner(dfd int) uint32 {
	r.uidOnce.Do(func() {
		var st unix.Stat_t
		if unix.Fstat(dfd, &st) == nil {
			r.uid = st.Uid
		}
	})
	return r.uid
}

// stat returns the file info of rel without following symlinks out of the root.
func (r *root) stat(rel string) (os.FileInfo, error) {
	f, err := r.open(rel, unix.O_PATH)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: f.Name(), Err: err}
	}
	return statInfo{name: filepath.Base(rel), st: st}, nil
}

func (r *root) exists(rel string) bool {
	fi, err := r.stat(rel)
	return err == nil && fi.Mode().IsRegular()
}

// readDir lists rel's entries (names and whether they are directories), sorted.
func (r *root) readDir(rel string) ([]dirent, error) {
	f, err := r.open(rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", f.Name(), err)
	}
	out := make([]dirent, 0, len(ents))
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink != 0 {
			continue // symlinks are never served
		}
		out = append(out, dirent{Name: e.Name(), IsDir: e.IsDir()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

type dirent struct {
	Name  string
	IsDir bool
}

func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// statInfo adapts a raw stat to os.FileInfo.
type statInfo struct {
	name string
	st   unix.Stat_t
}

func (s statInfo) Name() string { return s.name }
func (s statInfo) Size() int64  { return s.st.Size }
func (s statInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFREG:
	default:
		m |= fs.ModeIrregular
	}
	return m
}
func (s statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }
func (s statInfo) IsDir() bool        { return s.Mode().IsDir() }
func (s statInfo) Sys() any           { return &s.st }
