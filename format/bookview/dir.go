package bookview

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookindex"
)

// Index file paths, relative to a partition directory.
var (
	TimePath      = bookindex.Dir + "/" + bookindex.TimeName
	SnapshotsPath = bookindex.Dir + "/" + bookindex.SnapshotsName
	EventsPath    = bookindex.Dir + "/" + bookindex.EventsName
	// BooksPath is read by range, a state at a time (OpenBooks), not whole.
	BooksPath = bookindex.Dir + "/" + bookindex.BooksName
)

// MaxIndexBytes bounds each index file a loader reads.
var MaxIndexBytes = map[string]int64{
	TimePath:      bookindex.HeaderSize + bookindex.MaxSeconds*bookindex.TimeEntrySize,
	SnapshotsPath: bookindex.HeaderSize + bookindex.MaxSnapshots*bookindex.SnapshotEntrySize,
	EventsPath:    bookindex.HeaderSize + bookindex.MaxEventEntries*bookindex.EventsEntrySize,
}

// LoadIndexes reads a partition's index/ files through read (which returns a file's bytes
// by its path relative to the partition, refusing more than max bytes, and an error
// matching fs.ErrNotExist for a file that is not there). Absent files are nil; a damaged
// one is an error naming it. name labels errors ("v1/.../2024-08-08").
func LoadIndexes(name string, read func(rel string, max int64) ([]byte, error)) (Indexes, error) {
	ix := Indexes{SnapsOf: -1}
	get := func(rel string) ([]byte, error) {
		b, err := read(rel, MaxIndexBytes[rel])
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return b, err
	}
	b, err := get(TimePath)
	if err != nil {
		return ix, err
	}
	if b != nil {
		if ix.Time, err = bookindex.ParseTime(b, filepath.Join(name, TimePath)); err != nil {
			return ix, err
		}
	}
	if b, err = get(SnapshotsPath); err != nil {
		return ix, err
	}
	if b != nil {
		if ix.Snapshots, ix.SnapsOf, err = bookindex.ParseSnapshots(b, filepath.Join(name, SnapshotsPath)); err != nil {
			return ix, err
		}
	}
	if b, err = get(EventsPath); err != nil {
		return ix, err
	}
	if b != nil {
		if ix.Events, err = bookindex.ParseEvents(b, filepath.Join(name, EventsPath)); err != nil {
			return ix, err
		}
	}
	return ix, nil
}

// OpenBooks reads the table of a partition's book index (index/books.idx) from r, a reader
// of the file's size bytes that the partition keeps using for the states; name labels
// errors ("v1/.../2024-08-08").
func OpenBooks(name string, r io.ReaderAt, size int64) (*bookindex.Books, error) {
	return bookindex.OpenBooks(r, size, filepath.Join(name, BooksPath))
}

// Local is a partition opened from a local directory (a tier's, or one seen through the
// mount): book.q mapped read-only, index/ read from beside it.
type Local struct {
	*Partition
	m     *format.Mapped
	books *os.File // index/books.idx, when there is one
}

// OpenDir opens the partition in dir. A growing book is served up to its committed length
// at the time; Refresh reads further.
func OpenDir(dir string) (*Local, error) {
	p := filepath.Join(dir, bookindex.BookName)
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: p, Err: errors.New("is a directory")}
	}
	m, err := format.MapFile(p)
	if err != nil {
		return nil, err
	}
	h, err := format.ReadHeader(m, m.Size(), p)
	if err != nil {
		m.Close()
		return nil, err
	}
	ix, err := LoadIndexes(dir, func(rel string, max int64) ([]byte, error) {
		return format.ReadFileLimit(filepath.Join(dir, rel), max)
	})
	if err != nil {
		m.Close()
		return nil, err
	}
	l := &Local{m: m}
	if f, err := os.Open(filepath.Join(dir, BooksPath)); err == nil {
		l.books = f
		st, err := f.Stat()
		if err == nil {
			ix.Books, err = OpenBooks(dir, f, st.Size())
		}
		if err != nil {
			l.Close()
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		m.Close()
		return nil, err
	}
	if l.Partition, err = Open(m, int64(h.Committed), p, ix); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Close unmaps the book and closes its book index.
func (l *Local) Close() error {
	if l.books != nil {
		l.books.Close()
	}
	return l.m.Close()
}
