package qzst

import (
	"fmt"
	"io"
	"os"
)

// ReadIndexFile reads and parses a .idx file.
func ReadIndexFile(path string) (*Index, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	return ParseIndex(b, path)
}

// OpenFile opens a local .zst and its .idx (idxPath empty: rebuilt from the seek table).
// Closing the Reader closes the file. opts.Name defaults to zstPath.
func OpenFile(zstPath, idxPath string, cache *Cache, opts ReaderOptions) (*Reader, error) {
	var x *Index
	if idxPath != "" {
		var err error
		if x, err = ReadIndexFile(idxPath); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(zstPath)
	if err != nil {
		return nil, fmt.Errorf("open zst: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat zst: %w", err)
	}
	if opts.Name == "" {
		opts.Name = zstPath
	}
	r, err := Open(f, fi.Size(), x, cache, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

var _ io.ReaderAt = (*Reader)(nil)
