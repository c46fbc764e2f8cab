package qzst

import (
	"fmt"
	"io"
	"os"
	"sync"
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

var (
	wholeOnce sync.Once
	wholeDec  frameDecoder
	wholeErr  error
)

// DecodeFrame decodes frame fi of a .zst whole from its compressed bytes comp into dst
// (whose capacity must hold the frame), with this build's default decoder and the same
// checks as a Reader: what one frame costs a reader that decodes it whole. For benchmarks
// and tools that need that cost beside a Reader's.
func DecodeFrame(x *Index, fi int, comp, dst []byte) ([]byte, error) {
	wholeOnce.Do(func() { wholeDec, wholeErr = newDecoderFuncs[Decoders()[0]](1) })
	if wholeErr != nil {
		return nil, wholeErr
	}
	if fi < 0 || fi >= len(x.Frames) || len(comp) != int(x.Frames[fi].CompressedSize) {
		return nil, fmt.Errorf("frame %d: %d compressed bytes do not match the index", fi, len(comp))
	}
	return decodeFrame(wholeDec, x, fi, comp, dst, "")
}
