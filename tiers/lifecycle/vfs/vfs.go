// Package vfs is the small filesystem interface the tier manager moves partitions through.
// The OS implementation is what runs in production; tests wrap it (package faults) to fail,
// corrupt or "crash" at any single operation, the way pebble's errorfs does, so every step
// of a move can be interrupted.
package vfs

import (
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

// MkdirAll creates dir and any missing parents, fsyncing the parent of each directory it
// creates so the path survives a crash.
func MkdirAll(fsys FS, dir string) error {
	st, err := fsys.Lstat(dir)
	if err == nil {
		if !st.IsDir() {
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
