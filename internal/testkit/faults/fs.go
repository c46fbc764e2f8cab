package faults

import (
	"io/fs"

	"github.com/chronicle/chronicle/internal/fileutil/vfs"
)

// FS wraps a vfs.FS and consults the Injector before every operation.
type FS struct {
	Inner vfs.FS
	In    *Injector
}

var _ vfs.FS = (*FS)(nil)

// NewFS wraps inner (nil means vfs.OS).
func NewFS(inner vfs.FS, in *Injector) *FS {
	if inner == nil {
		inner = vfs.OS{}
	}
	return &FS{Inner: inner, In: in}
}

func (f *FS) Create(name string) (vfs.File, error) { return f.file(OpCreate, name, f.Inner.Create) }
func (f *FS) Open(name string) (vfs.File, error)   { return f.file(OpOpen, name, f.Inner.Open) }

// file opens name with open unless op on it is to fail; the file it returns injects too.
func (f *FS) file(op Op, name string, open func(string) (vfs.File, error)) (vfs.File, error) {
	if f.In.decide(op, name) != pass {
		return nil, injected(op, name)
	}
	h, err := open(name)
	if err != nil {
		return nil, err
	}
	return &file{inner: h, in: f.In}, nil
}

func (f *FS) Mkdir(name string) error {
	if f.In.decide(OpMkdir, name) != pass {
		return injected(OpMkdir, name)
	}
	return f.Inner.Mkdir(name)
}

func (f *FS) Rename(oldname, newname string) error {
	if f.In.decide(OpRename, newname) != pass {
		return injected(OpRename, oldname+" -> "+newname)
	}
	return f.Inner.Rename(oldname, newname)
}

func (f *FS) Remove(name string) error {
	if f.In.decide(OpRemove, name) != pass {
		return injected(OpRemove, name)
	}
	return f.Inner.Remove(name)
}

func (f *FS) SyncDir(name string) error {
	if f.In.decide(OpSyncDir, name) != pass {
		return injected(OpSyncDir, name)
	}
	return f.Inner.SyncDir(name)
}

func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	if f.In.decide(OpReadDir, name) != pass {
		return nil, injected(OpReadDir, name)
	}
	return f.Inner.ReadDir(name)
}

func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	if f.In.decide(OpStat, name) != pass {
		return nil, injected(OpStat, name)
	}
	return f.Inner.Lstat(name)
}

type file struct {
	inner vfs.File
	in    *Injector
}

func (f *file) Name() string { return f.inner.Name() }

func (f *file) Read(p []byte) (int, error) {
	switch f.in.decide(OpRead, f.Name()) {
	case fail:
		return 0, injected(OpRead, f.Name())
	case corrupt:
		n, err := f.inner.Read(p)
		if n > 0 {
			p[n/2] ^= 0x10
		}
		return n, err
	}
	return f.inner.Read(p)
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	switch f.in.decide(OpRead, f.Name()) {
	case fail:
		return 0, injected(OpRead, f.Name())
	case corrupt:
		n, err := f.inner.ReadAt(p, off)
		if n > 0 {
			p[n/2] ^= 0x10
		}
		return n, err
	}
	return f.inner.ReadAt(p, off)
}

func (f *file) Write(p []byte) (int, error) {
	switch f.in.decide(OpWrite, f.Name()) {
	case fail:
		return 0, injected(OpWrite, f.Name())
	case corrupt:
		return f.inner.Write(flip(p))
	}
	return f.inner.Write(p)
}

func (f *file) Sync() error {
	if f.in.decide(OpSync, f.Name()) != pass {
		return injected(OpSync, f.Name())
	}
	return f.inner.Sync()
}

func (f *file) Close() error {
	if f.in.decide(OpClose, f.Name()) != pass {
		f.inner.Close() // the descriptor goes away with a dead process too
		return injected(OpClose, f.Name())
	}
	return f.inner.Close()
}

func (f *file) Stat() (fs.FileInfo, error) {
	if f.in.decide(OpStat, f.Name()) != pass {
		return nil, injected(OpStat, f.Name())
	}
	return f.inner.Stat()
}

func (f *file) Chmod(mode fs.FileMode) error {
	if f.in.decide(OpChmod, f.Name()) != pass {
		return injected(OpChmod, f.Name())
	}
	return f.inner.Chmod(mode)
}
