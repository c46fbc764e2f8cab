// Package vfs is the small filesystem interface Chronicle's durable writers go through: the
// tier manager's moves, the refinery's checkpoint and meta.json, the feed's journal
// directory. The OS implementation is what runs in production; tests wrap it
// (internal/testkit/faults) to fail, corrupt or "crash" at any single operation, the way
// pebble's errorfs does, so every step of a write can be interrupted. It lies under
// internal/fileutil, a leaf open to every floor, so any writer may take an FS.
package vfs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/chronicle/chronicle/internal/fileutil"
)

// File is an open file.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Closer
	Sync() error
	Stat() (fs.FileInfo, error)
	Chmod(mode fs.FileMode) error
	Name() string
}

// FS is every filesystem operation a move performs. Paths are absolute host paths.
type FS interface {
	// Create makes a new file for writing (O_EXCL, mode 0644).
	Create(name string) (File, error)
	// Open opens a file read-only.
	Open(name string) (File, error)
	// Mkdir makes one directory (mode 0755); it fails if it exists.
	Mkdir(name string) error
	Rename(oldname, newname string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// SyncDir fsyncs a directory, making the entries created, renamed or removed in it durable.
	SyncDir(name string) error
	ReadDir(name string) ([]fs.DirEntry, error)
	Lstat(name string) (fs.FileInfo, error)
}

// OS is the real filesystem.
type OS struct{}

var _ FS = OS{}

func (OS) Create(name string) (File, error) {
	return os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
}
func (OS) Open(name string) (File, error)             { return os.Open(name) }
func (OS) Mkdir(name string) error                    { return os.Mkdir(name, 0o755) }
func (OS) Rename(oldname, newname string) error       { return os.Rename(oldname, newname) }
func (OS) Remove(name string) error                   { return os.Remove(name) }
func (OS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }
func (OS) Lstat(name string) (fs.FileInfo, error)     { return os.Lstat(name) }

func (OS) SyncDir(name string) error { return fileutil.SyncDir(name) }

// MkdirAll creates dir and any missing parents (mode 0755), fsyncing the parent of each
// directory it creates so the path survives a crash.
func MkdirAll(fsys FS, dir string) error {
	st, err := fsys.Lstat(dir)
	if err == nil {
		// A symbolic link (a root on another volume) is taken for the directory it names:
		// what is created in it fails there if it names none.
		if !st.IsDir() && st.Mode()&fs.ModeSymlink == 0 {
			return fmt.Errorf("mkdir %s: exists and is not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent == dir {
		return err
	}
	if err := MkdirAll(fsys, parent); err != nil {
		return err
	}
	if err := fsys.Mkdir(dir); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return fsys.SyncDir(parent)
}

// Exists reports whether name exists (without following a final symlink).
func Exists(fsys FS, name string) bool {
	_, err := fsys.Lstat(name)
	return err == nil
}

// WriteFile replaces path atomically and durably through fsys, in the steps every durable
// writer takes (fileutil.WriteFile's, made injectable): create a temporary file beside path
// (fileutil.TempName), write b, set perm, fsync, close, rename over path, fsync the
// directory. A reader sees the old content or the new; on an error path is untouched and
// the temporary file removed (a crash leaves it for fileutil.RemoveTemps). Errors name path.
func WriteFile(fsys FS, path string, b []byte, perm fs.FileMode) error {
	var tag [6]byte
	rand.Read(tag[:])
	tmp := fileutil.TempName(path, hex.EncodeToString(tag[:]))
	f, err := fsys.Create(tmp)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	renamed := false
	defer func() {
		if f != nil {
			f.Close()
		}
		if !renamed {
			fsys.Remove(tmp)
		}
	}()
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	cf := f
	f = nil
	if err := cf.Close(); err != nil {
		return fmt.Errorf("write %s: close: %w", path, err)
	}
	if err := fsys.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	renamed = true
	if err := fsys.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
