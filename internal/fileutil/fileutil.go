// Package fileutil is the one home of file safety: fsync of directories, durable
// directory creation, atomic replacement of small files, the naming rule of temporary
// files, and the JSON encoding of Chronicle's documents and state files. It is a leaf (the
// standard library only), open to every package, so that a writer in any floor follows
// the same rules (Prometheus keeps the like in tsdb/fileutil).
package fileutil

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// SyncDir fsyncs a directory, making the entries created, renamed or removed in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// WriteFile is os.WriteFile made atomic and durable: b goes to a temporary file in path's
// directory (mode perm), which is fsynced and renamed over path, and the directory is
// fsynced. A reader sees the old content or the new, never a mix; on an error path is
// untouched. Errors name path.
func WriteFile(path string, b []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	err = f.Chmod(perm) // CreateTemp makes 0600 files
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(filepath.Dir(path))
}

// EncodeJSON encodes v as Chronicle's JSON documents (meta.json, stubs) are written:
// indented by two spaces, with a final newline.
func EncodeJSON(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// MkdirAll is os.MkdirAll made durable: each directory it creates is fsynced into its
// parent, so that a file later made durable in it (fsync of the file and of dir) survives a
// power cut with its whole path.
func MkdirAll(dir string, perm os.FileMode) error {
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("mkdir %s: %w", dir, syscall.ENOTDIR)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil // made meanwhile by someone else, who syncs it
		}
		return err
	}
	return SyncDir(parent)
}
