// Package fileutil is the one home of file safety: fsync of directories, durable
// directory creation, atomic replacement of small files, the naming rule of temporary
// files, and the JSON encoding of Chronicle's documents and state files. It is a leaf (the
// standard library only), open to every package, so that a writer in any floor follows
// the same rules (Prometheus keeps the like in tsdb/fileutil).
package fileutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// tempMarker sits between a final name and the random tail of its temporary name.
const tempMarker = ".tmp-"

// TempName is the temporary name a writer of final uses before it renames the file into
// place: "." + final's base name + ".tmp-" + tag, in final's directory. The leading dot
// hides it from every listing (layout.IsTemp) and the marker lets recovery find it.
func TempName(final, tag string) string {
	return filepath.Join(filepath.Dir(final), "."+filepath.Base(final)+tempMarker+tag)
}

// CreateTemp creates a new file under a TempName of final with a random tag (mode 0600,
// as os.CreateTemp makes it).
func CreateTemp(final string) (*os.File, error) {
	return os.CreateTemp(filepath.Dir(final), "."+filepath.Base(final)+tempMarker+"*")
}

// IsTemp reports whether a base name is a TempName: a file not yet in place, which no
// reader lists and which recovery may remove once its writer is gone.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, tempMarker)
}

// RemoveTemps removes the TempName files directly in dir (not in its subdirectories): what
// a killed writer left. keep, when not nil, spares the names it accepts. A missing dir has
// none.
func RemoveTemps(dir string, keep func(name string) bool) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !IsTemp(n) || (keep != nil && keep(n)) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

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
	f, err := CreateTemp(path)
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

// WriteJSON replaces the JSON state file path atomically and durably (WriteFile) with v
// encoded as EncodeJSON encodes it. Errors name path.
func WriteJSON(path string, v any, perm os.FileMode) error {
	b, err := EncodeJSON(v)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return WriteFile(path, b, perm)
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

// DecodeJSON decodes b, one JSON document as EncodeJSON writes them, into v strictly: a
// field v does not have, or anything after the document, is an error.
func DecodeJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
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
