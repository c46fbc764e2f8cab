package bookview

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookindex"
)

// Errors. Each is wrapped with what it is about (the partition, the instant).
var (
	// ErrNoBook: no snapshot has given the partition a book by the instant asked.
	ErrNoBook = errors.New("no book yet")
	// ErrOutsideDay: an instant outside the partition's UTC date.
	ErrOutsideDay = errors.New("instant outside the partition's day")
	// ErrBadArgument: a depth, interval or view that cannot be served.
	ErrBadArgument = errors.New("bad argument")
)

// NoBookError says when the partition's first book starts (First, when Has).
type NoBookError struct {
	Name  string
	At    int64
	First int64
	Has   bool
}

func (e *NoBookError) Error() string {
	at := FormatTime(e.At)
	if !e.Has {
		return fmt.Sprintf("%s: no book at %s: the partition has no valid snapshot run", e.Name, at)
	}
	return fmt.Sprintf("%s: no book at %s: the first instant with a book is %s", e.Name, at, FormatTime(e.First))
}

func (e *NoBookError) Unwrap() error { return ErrNoBook }

// FormatTime prints ns since the epoch as RFC 3339 with nanoseconds, UTC (meta.json's form).
func FormatTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000000000Z")
}

// Indexes are a partition's index/ files, each nil when absent. A partition missing any
// of them is indexed by one scan of its book when opened.
type Indexes struct {
	Time      *bookindex.Time
	Snapshots []bookindex.Snapshot
	SnapsOf   int64 // records the snapshot index was built from (-1: absent)
	Events    *bookindex.Events
	Books     *bookindex.Books // states are read through it for as long as the partition is used
}

// state is what readers use; a new value replaces it when a growing book is refreshed.
type state struct {
	n      int64
	events *bookindex.Events
	snaps  []bookindex.Snapshot
	time   *bookindex.Time  // nil until needed when built by the Builder
	books  *bookindex.Books // checkpoints of the whole book (books.idx, or built by the Builder)
}

// Partition is one partition's book with its indexes: the source of the book at any
// instant, of top-N rows, and of the views' bytes. It reads through an io.ReaderAt, so any
// tier's handle serves (a mapped local file is read in place). Safe for concurrent use.
type Partition struct {
	name string
	src  io.ReaderAt
	hdr  format.Header

	mu  sync.Mutex
	st  atomic.Pointer[state]
	bld *bookindex.Builder // non-nil when the indexes come from a scan (absent files, a growing book)

	ckMu sync.Mutex
	ck   map[ckKey]*checkpoint // replay states at sub-segment starts (see render)
	ckQ  []ckKey
}

// Open opens the book held by src (size: its committed length, the logical size; name
// labels errors) with its indexes. A sealed partition's index/ files give everything at
// once; when any is missing, or shorter than the book, one scan of the book builds them.
func Open(src io.ReaderAt, size int64, name string, ix Indexes) (*Partition, error) {
	br, err := format.OpenBook(src, size, name)
	if err != nil {
		return nil, err
	}
	p := &Partition{name: name, src: src, hdr: br.Header(), ck: map[ckKey]*checkpoint{}}
	n := br.Len()
	for what, rec := range map[string]int64{bookindex.TimeName: recordsOf(ix.Time), bookindex.SnapshotsName: ix.SnapsOf, bookindex.EventsName: eventsOf(ix.Events),
		bookindex.BooksName: booksOf(ix.Books)} {
		if rec > n {
			return nil, fmt.Errorf("%s: %w: index/%s was built from %d records, the book has %d", name, bookindex.ErrCorrupt, what, rec, n)
		}
	}
	if ix.Time != nil && ix.Events != nil && ix.SnapsOf >= 0 && ix.Books != nil && ix.Time.Records == n && ix.Events.Records == n && ix.SnapsOf == n && ix.Books.Records == n {
		p.st.Store(&state{n: n, events: ix.Events, snaps: ix.Snapshots, time: ix.Time, books: ix.Books})
		return p, nil
	}
	p.bld = p.newBuilder()
	p.st.Store(&state{events: p.bld.Events()})
	if err := p.Refresh(size); err != nil {
		return nil, err
	}
	return p, nil
}

func recordsOf(t *bookindex.Time) int64 {
	if t == nil {
		return -1
	}
	return t.Records
}

func eventsOf(e *bookindex.Events) int64 {
	if e == nil {
		return -1
	}
	return e.Records
}

func booksOf(b *bookindex.Books) int64 {
	if b == nil {
		return -1
	}
	return b.Records
}

// booksStride is the checkpoint distance of book indexes built here (0: the default,
// as the refinery's; tests make it small).
var booksStride int64

func (p *Partition) newBuilder() *bookindex.Builder {
	return &bookindex.Builder{DataOffset: p.hdr.DataStart(), BooksStride: booksStride}
}

// Refresh takes in the records of a growing book up to committed (its committed length
// now): they are indexed and served from then on. A smaller or equal length changes
// nothing.
func (p *Partition) Refresh(committed int64) error {
	n := (committed - p.hdr.DataStart()) / format.BookRecordSize
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st.Load()
	if n <= st.n {
		return nil
	}
	if p.bld == nil {
		// Opened from index files, and the book grew after all: index it from the start.
		p.bld = p.newBuilder()
	}
	s := p.newScanner(p.bld.Records(), n)
	defer s.Close()
	for s.Next() {
		if err := p.bld.Add(s.raw); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	if err := s.Err(); err != nil {
		return err
	}
	p.st.Store(&state{n: n, events: p.bld.Events(), snaps: p.bld.Snapshots(), books: p.bld.Books()})
	return nil
}

// timeIndex returns the time index of a state, building it from the Builder the first
// time (a later Builder covers more records, whose bounds still hold for fewer).
func (p *Partition) timeIndex(st *state) *bookindex.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st.time == nil {
		st.time = p.bld.Time()
	}
	return st.time
}

// Name labels the partition in errors.
func (p *Partition) Name() string { return p.name }

// Header is the book's header (as read at Open).
func (p *Partition) Header() format.Header { return p.hdr }

// Records is the number of records served.
func (p *Partition) Records() int64 { return p.st.Load().n }

// Events is the event-ordinal index of the records served.
func (p *Partition) Events() *bookindex.Events { return p.st.Load().events }

// Snapshots are the snapshot runs of the records served.
func (p *Partition) Snapshots() []bookindex.Snapshot { return p.st.Load().snaps }

// Books is the book index (checkpoints of the whole book) of the records served.
func (p *Partition) Books() *bookindex.Books { return p.st.Load().books }

// Day returns the partition's UTC date as [start, end) in ns, ok false when the header
// names none.
func (p *Partition) Day() (start, end int64, ok bool) {
	if p.hdr.Date == 0 {
		return 0, 0, false
	}
	d := p.hdr.DateTime()
	return d.UnixNano(), d.Add(24 * time.Hour).UnixNano(), true
}

// firstValid returns the first valid snapshot run (by record) at or after record from.
func firstValid(snaps []bookindex.Snapshot, from uint64) (bookindex.Snapshot, bool) {
	for _, s := range snaps {
		if s.Record >= from && s.Flags&format.FlagBookInvalid == 0 {
			return s, true
		}
	}
	return bookindex.Snapshot{}, false
}

// Span returns the smallest and largest exchange times of the records served, ok false
// for an empty book. The time index bounds the records to look at: those of the first
// and of the last second.
func (p *Partition) Span() (first, last int64, ok bool) {
	st := p.st.Load()
	if st.n == 0 {
		return 0, 0, false
	}
	tix := st.time
	if tix == nil {
		tix = p.timeIndex(st)
	}
	first, last = int64(1<<63-1), int64(-1<<63)
	scan := func(lo, hi int64) {
		s := p.newScanner(lo, hi)
		defer s.Close()
		for s.Next() {
			for i := range s.recs {
				first, last = min(first, s.recs[i].ExchTs), max(last, s.recs[i].ExchTs)
			}
		}
	}
	if k := len(tix.Hi); k > 0 && tix.Records == st.n {
		scan(0, int64(tix.Hi[0]))
		scan(int64(tix.Lo[k-1]), st.n)
	} else {
		scan(0, st.n)
	}
	return first, last, first <= last
}
