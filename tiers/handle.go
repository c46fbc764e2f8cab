package tiers

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/layout"
)

// Handle reads one logical file from the tier that held it when it was opened. A handle
// keeps serving the same bytes after its partition moves on: local files stay readable
// through their open descriptor after a move deletes them.
type Handle interface {
	io.ReaderAt
	// Size is the logical size now: for a book that is still being written, its committed
	// length, which only grows.
	Size() int64
	Tier() layout.Tier
	// Source is the physical file or URI that serves the bytes.
	Source() string
	// Version changes whenever the bytes behind the handle could differ (for caches).
	Version() string
	// Sealed reports that the content will never change.
	Sealed() bool
	ModTime() time.Time
	// File returns the local file whose bytes are exactly the logical content, for kernel
	// passthrough; nil for compressed, remote or still-growing files.
	File() *os.File
	Close() error
}

// Local is implemented by the handles of local files served as they are (hot and warm):
// bytes [0, Size()) of LocalFile are the logical content, also while a book still grows
// (its committed length is Size). FUSE can answer reads of such a file by splicing its
// page-cache pages (fuse.ReadResultFd) where it cannot pass the whole file through.
type Local interface {
	LocalFile() *os.File
}

// plainHandle serves a local file as is. For a book still being written it reads the
// committed length from the header, so readers only ever see whole records.
type plainHandle struct {
	f      *os.File
	tier   layout.Tier
	ino    uint64
	mtime  time.Time
	size   int64 // file size, or the last committed length seen for a growing book
	sealed bool
	book   bool
	grown  atomic.Int64
}

func (h *plainHandle) initBook() error {
	hdr, err := format.ReadHeader(h.f, h.size, h.f.Name())
	if err != nil {
		return err
	}
	if hdr.Layout != format.LayoutBook {
		return fmt.Errorf("%s: %w", h.f.Name(), format.ErrWrongLayout)
	}
	h.book = true
	// Sealed means immutable only once the file is trimmed to its committed length; a
	// file with a preallocated tail is still settling.
	h.sealed = hdr.Sealed && int64(hdr.Committed) == h.size
	if !h.sealed {
		h.grown.Store(int64(hdr.Committed))
	}
	return nil
}

// committed re-reads the writer's committed length (one 8-byte pread).
func (h *plainHandle) committed() int64 {
	var b [8]byte
	if _, err := h.f.ReadAt(b[:], 24); err != nil {
		return h.grown.Load()
	}
	c := int64(binary.LittleEndian.Uint64(b[:]))
	// Never report shrinking: a reader must not see its file get shorter.
	for {
		old := h.grown.Load()
		if c <= old {
			return old
		}
		if h.grown.CompareAndSwap(old, c) {
			return c
		}
	}
}

func (h *plainHandle) Size() int64 {
	if h.book && !h.sealed {
		return h.committed()
	}
	return h.size
}

func (h *plainHandle) ReadAt(p []byte, off int64) (int, error) {
	end := h.size
	if h.book && !h.sealed {
		end = h.grown.Load()
		if off+int64(len(p)) > end {
			end = h.committed()
		}
	}
	return readBefore(h.f, p, off, end)
}

// readBefore reads r at off into p as io.ReaderAt does, with end as the end of the file:
// bytes at or past end are not read, and a read that reaches end returns io.EOF only when
// it is short of len(p).
func readBefore(r io.ReaderAt, p []byte, off, end int64) (int, error) {
	if off >= end {
		return 0, io.EOF
	}
	want := p
	if off+int64(len(p)) > end {
		want = p[:end-off]
	}
	n, err := r.ReadAt(want, off)
	if err == io.EOF && n == len(want) {
		err = nil
	}
	if err == nil && len(want) < len(p) {
		err = io.EOF
	}
	return n, err
}

func (h *plainHandle) Tier() layout.Tier  { return h.tier }
func (h *plainHandle) Source() string     { return h.f.Name() }
func (h *plainHandle) Sealed() bool       { return h.sealed }
func (h *plainHandle) ModTime() time.Time { return h.mtime }
func (h *plainHandle) Version() string {
	if h.sealed {
		return fmt.Sprintf("%s:%d:%d:%d", h.tier, h.ino, h.size, h.mtime.UnixNano())
	}
	return fmt.Sprintf("%s:%d:growing:%d", h.tier, h.ino, h.Size())
}
func (h *plainHandle) File() *os.File {
	if h.sealed {
		return h.f
	}
	return nil
}
func (h *plainHandle) LocalFile() *os.File { return h.f }
func (h *plainHandle) Close() error        { return h.f.Close() }

// zstdHandle serves a seekable .zst through the shared frame cache, from a local file
// (cold) or the object store (remote).
type zstdHandle struct {
	sealedFile
	r *qzst.Reader
	f *os.File // nil for remote
}

func (h *zstdHandle) ReadAt(p []byte, off int64) (int, error) { return h.r.ReadAt(p, off) }
func (h *zstdHandle) Size() int64                             { return h.r.Size() }

// sealedFile describes a handle's file that is not served from a local descriptor (a
// decoded .zst or a remote object): immutable, with no *os.File to pass through.
type sealedFile struct {
	tier    layout.Tier
	src     string
	version string
	mtime   time.Time
}

func (s *sealedFile) Tier() layout.Tier  { return s.tier }
func (s *sealedFile) Source() string     { return s.src }
func (s *sealedFile) Version() string    { return s.version }
func (s *sealedFile) Sealed() bool       { return true }
func (s *sealedFile) ModTime() time.Time { return s.mtime }
func (s *sealedFile) File() *os.File     { return nil }

// Reader exposes the decompressing reader (for its statistics).
func (h *zstdHandle) Reader() *qzst.Reader { return h.r }

func (h *zstdHandle) Close() error {
	err := h.r.Close()
	if h.f != nil {
		if e := h.f.Close(); err == nil {
			err = e
		}
	}
	return err
}
