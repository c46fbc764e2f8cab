// Package bookindex builds, writes and reads a partition's index/ directory: the time
// index (index/time.idx: for every second of the partition, the range of records that can
// hold exchange times in it, so a read by time seeks instead of scanning) and the snapshot
// index (index/snapshots.idx: every snapshot run's exchange time and record number, so a
// reader can start rebuilding the book at the run before any instant).
//
// Records in a book are in the refinery's processing order, which is not strictly ordered
// by exchange time (trades carry their trade time, depth updates their event time, and a
// resync emits buffered updates after later trades). The time index therefore stores for
// each second s two bounds that hold whatever the order: lo[s], the first record with an
// exchange time at or after s, and hi[s], one past the last record with an exchange time
// before s+1. Filtering records[lo[floor(start)] : hi[ceil(end)-1]] by time gives exactly
// the records in [start, end).
//
// The index is a pure function of book.q: Build makes it from the records alone, so it
// can always be rebuilt. Byte layout: docs/format/index.md.
package bookindex

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"path/filepath"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/internal/fileutil/vfs"
)

// File names inside a partition's index/ directory.
const (
	Dir           = "index"
	TimeName      = "time.idx"
	SnapshotsName = "snapshots.idx"
)

const (
	Magic      = "\x89CHRIDX\n"
	Version    = 1
	HeaderSize = 64

	KindTime      = 1
	KindSnapshots = 2

	TimeEntrySize     = 16
	SnapshotEntrySize = 32

	// MaxSeconds bounds a time index (400 days): a partition holds one date plus the
	// late grace, so a larger one is damage, and a reader never allocates more.
	MaxSeconds = 400 * 86400
	// MaxSnapshots bounds a snapshot index (one a second for 400 days).
	MaxSnapshots = MaxSeconds
)

// ErrCorrupt reports a damaged or foreign index file.
var ErrCorrupt = errors.New("corrupt book index")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Time is a time index: Lo[i] and Hi[i] bound the records of second Base+i.
type Time struct {
	Base    int64    // first second covered (Unix seconds)
	Records int64    // records of the book the index was built from
	Lo, Hi  []uint64 // record numbers
}

// Snapshot is one snapshot run.
type Snapshot struct {
	ExchTs int64  // exchange time of the run
	Record uint64 // record number of its snapshot_begin
	Seq    uint64 // the snapshot's last update id
	Levels uint32 // level records in the run
	Flags  uint16 // snapshot_begin's flags (BOOK_INVALID for an empty run of an unknown book)
}

// Build indexes n canonical records held in data (the bytes after the header).
func Build(data []byte, n int64) (*Time, []Snapshot, error) {
	if int64(len(data)) < n*format.BookRecordSize {
		return nil, nil, fmt.Errorf("%w: %d records need %d bytes, have %d", ErrCorrupt, n, n*format.BookRecordSize, len(data))
	}
	t := &Time{Records: n}
	var snaps []Snapshot
	if n == 0 {
		return t, snaps, nil
	}
	le := binary.LittleEndian
	minS, maxS := int64(math.MaxInt64), int64(math.MinInt64)
	for i := int64(0); i < n; i++ {
		s := floorSec(int64(le.Uint64(data[i*format.BookRecordSize+8:])))
		minS, maxS = min(minS, s), max(maxS, s)
	}
	if maxS-minS+1 > MaxSeconds {
		return nil, nil, fmt.Errorf("%w: exchange times span %d s, more than %d", ErrCorrupt, maxS-minS+1, MaxSeconds)
	}
	cnt := maxS - minS + 1
	t.Base = minS
	t.Lo, t.Hi = make([]uint64, cnt), make([]uint64, cnt)
	last := make([]int64, cnt) // last record with its time in each second, -1 for none
	for i := range last {
		last[i] = -1
	}
	next := int64(0) // seconds below this have their lo set
	for i := int64(0); i < n; i++ {
		r := data[i*format.BookRecordSize:]
		ts := int64(le.Uint64(r[8:]))
		s := floorSec(ts) - minS
		last[s] = i
		// lo: the first record reaching each second, by the running maximum of times.
		for ; next <= s; next++ {
			t.Lo[next] = uint64(i)
		}
		if le.Uint16(r[0:]) == format.TypeSnapshotBegin {
			snaps = append(snaps, Snapshot{ExchTs: ts, Record: uint64(i), Seq: le.Uint64(r[24:]),
				Levels: uint32(min(max(int64(le.Uint64(r[48:])), 0), math.MaxUint32)), Flags: le.Uint16(r[2:])})
		}
	}
	hi := int64(0)
	for s := int64(0); s < cnt; s++ {
		hi = max(hi, last[s]+1)
		t.Hi[s] = uint64(hi)
	}
	return t, snaps, nil
}

func floorSec(ns int64) int64 {
	s := ns / 1e9
	if ns%1e9 < 0 {
		s--
	}
	return s
}

// Range returns the record numbers [lo, hi) holding every record with an exchange time
// in [start, end) (ns); records in between may fall outside and must still be filtered.
func (t *Time) Range(start, end int64) (lo, hi int64) {
	n := int64(len(t.Lo))
	if n == 0 || end <= start {
		return 0, 0
	}
	lo = t.bound(t.Lo, floorSec(start)-t.Base)
	hi = t.bound(t.Hi, floorSec(end-1)-t.Base)
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

// bound is the record number of second s of the index in bounds (t.Lo or t.Hi): 0 before
// the first second, t.Records after the last.
func (t *Time) bound(bounds []uint64, s int64) int64 {
	switch {
	case s < 0:
		return 0
	case s >= int64(len(bounds)):
		return t.Records
	}
	return int64(bounds[s])
}

// Before returns the last snapshot run at or before ts, or false if none.
func Before(snaps []Snapshot, ts int64) (Snapshot, bool) {
	var best Snapshot
	ok := false
	for _, s := range snaps {
		if s.ExchTs <= ts && (!ok || s.Record > best.Record) {
			best, ok = s, true
		}
	}
	return best, ok
}

func header(kind uint16, entrySize uint32, count uint64, records uint64, base int64, entries []byte) []byte {
	h := make([]byte, HeaderSize)
	le := binary.LittleEndian
	copy(h, Magic)
	le.PutUint16(h[8:], Version)
	le.PutUint16(h[10:], kind)
	le.PutUint32(h[12:], entrySize)
	le.PutUint64(h[16:], count)
	le.PutUint64(h[24:], records)
	le.PutUint64(h[32:], uint64(base))
	le.PutUint32(h[40:], crc32.Checksum(entries, castagnoli))
	le.PutUint32(h[44:], crc32.Checksum(h[:44], castagnoli))
	return h
}

// MarshalTime encodes a time index file.
func MarshalTime(t *Time) []byte {
	e := make([]byte, len(t.Lo)*TimeEntrySize)
	for i := range t.Lo {
		binary.LittleEndian.PutUint64(e[i*16:], t.Lo[i])
		binary.LittleEndian.PutUint64(e[i*16+8:], t.Hi[i])
	}
	return append(header(KindTime, TimeEntrySize, uint64(len(t.Lo)), uint64(t.Records), t.Base, e), e...)
}

// MarshalSnapshots encodes a snapshot index file.
func MarshalSnapshots(snaps []Snapshot, records int64) []byte {
	e := make([]byte, len(snaps)*SnapshotEntrySize)
	le := binary.LittleEndian
	for i, s := range snaps {
		b := e[i*SnapshotEntrySize:]
		le.PutUint64(b[0:], uint64(s.ExchTs))
		le.PutUint64(b[8:], s.Record)
		le.PutUint64(b[16:], s.Seq)
		le.PutUint32(b[24:], s.Levels)
		le.PutUint16(b[28:], s.Flags)
	}
	return append(header(KindSnapshots, SnapshotEntrySize, uint64(len(snaps)), uint64(records), 0, e), e...)
}

// parse checks a file's header and returns its entries, record count and base.
func parse(b []byte, name string, kind uint16, entrySize uint32, maxCount uint64) (entries []byte, count, records uint64, base int64, err error) {
	if count, records, base, err = checkHeader(b, name, kind, entrySize, maxCount); err != nil {
		return nil, 0, 0, 0, err
	}
	le := binary.LittleEndian
	if want := HeaderSize + int64(count)*int64(entrySize); int64(len(b)) != want {
		return nil, 0, 0, 0, fmt.Errorf("%s: offset 16: %w: %d entries need %d bytes, file has %d", name, ErrCorrupt, count, want, len(b))
	}
	entries = b[HeaderSize:]
	if crc32.Checksum(entries, castagnoli) != le.Uint32(b[40:]) {
		return nil, 0, 0, 0, fmt.Errorf("%s: offset %d: %w: entries checksum mismatch", name, HeaderSize, ErrCorrupt)
	}
	return entries, count, records, base, nil
}

// parseStrided is parse for the indexes whose base field is a stride in records (books,
// events); it also returns the error of entry i of the table, what naming entries
// ("checkpoint", "anchor").
func parseStrided(b []byte, name string, kind uint16, entrySize uint32, maxCount uint64, what string) (entries []byte, count, records uint64, stride int64, fail func(i int, f string, a ...any) error, err error) {
	entries, count, records, stride, err = parse(b, name, kind, entrySize, maxCount)
	if err != nil {
		return nil, 0, 0, 0, nil, err
	}
	if stride < 1 || stride > math.MaxInt32 {
		return nil, 0, 0, 0, nil, fmt.Errorf("%s: offset 32: %w: stride %d", name, ErrCorrupt, stride)
	}
	fail = func(i int, f string, a ...any) error {
		return fmt.Errorf("%s: offset %d: %w: %s %d: %s", name, HeaderSize+i*int(entrySize), ErrCorrupt, what, i, fmt.Sprintf(f, a...))
	}
	return entries, count, records, stride, fail, nil
}

// checkHeader checks the header at the start of b (magic, version, checksum, kind, entry
// size, bounds of the count and of the record count).
func checkHeader(b []byte, name string, kind uint16, entrySize uint32, maxCount uint64) (count, records uint64, base int64, err error) {
	fail := func(off int, f string, a ...any) error {
		return fmt.Errorf("%s: offset %d: %w: %s", name, off, ErrCorrupt, fmt.Sprintf(f, a...))
	}
	le := binary.LittleEndian
	if len(b) < HeaderSize {
		return 0, 0, 0, fail(0, "%d bytes, shorter than the header", len(b))
	}
	if string(b[:8]) != Magic {
		return 0, 0, 0, fail(0, "bad magic %q", b[:8])
	}
	if v := le.Uint16(b[8:]); v != Version {
		return 0, 0, 0, fail(8, "unsupported version %d", v)
	}
	if crc32.Checksum(b[:44], castagnoli) != le.Uint32(b[44:]) {
		return 0, 0, 0, fail(44, "header checksum mismatch")
	}
	if k := le.Uint16(b[10:]); k != kind {
		return 0, 0, 0, fail(10, "kind %d, want %d", k, kind)
	}
	if es := le.Uint32(b[12:]); es != entrySize {
		return 0, 0, 0, fail(12, "entry size %d, want %d", es, entrySize)
	}
	count, records, base = le.Uint64(b[16:]), le.Uint64(b[24:]), int64(le.Uint64(b[32:]))
	if count > maxCount {
		return 0, 0, 0, fail(16, "%d entries, at most %d", count, maxCount)
	}
	if records > math.MaxInt64/format.BookRecordSize {
		return 0, 0, 0, fail(24, "%d records", records)
	}
	return count, records, base, nil
}

// ParseTime decodes a time index file; name labels errors.
func ParseTime(b []byte, name string) (*Time, error) {
	e, count, records, base, err := parse(b, name, KindTime, TimeEntrySize, MaxSeconds)
	if err != nil {
		return nil, err
	}
	t := &Time{Base: base, Records: int64(records), Lo: make([]uint64, count), Hi: make([]uint64, count)}
	le := binary.LittleEndian
	var prevLo, prevHi uint64
	for i := range t.Lo {
		t.Lo[i], t.Hi[i] = le.Uint64(e[i*16:]), le.Uint64(e[i*16+8:])
		// Both bounds grow with time and stay within the book.
		if t.Lo[i] < prevLo || t.Hi[i] < prevHi || t.Lo[i] > records || t.Hi[i] > records {
			return nil, fmt.Errorf("%s: offset %d: %w: entry %d (%d, %d) out of order or past %d records", name, HeaderSize+i*16, ErrCorrupt, i, t.Lo[i], t.Hi[i], records)
		}
		prevLo, prevHi = t.Lo[i], t.Hi[i]
	}
	return t, nil
}

// ParseSnapshots decodes a snapshot index file; it returns the runs and the record count
// the index was built from.
func ParseSnapshots(b []byte, name string) ([]Snapshot, int64, error) {
	e, count, records, _, err := parse(b, name, KindSnapshots, SnapshotEntrySize, MaxSnapshots)
	if err != nil {
		return nil, 0, err
	}
	out := make([]Snapshot, count)
	le := binary.LittleEndian
	for i := range out {
		r := e[i*SnapshotEntrySize:]
		out[i] = Snapshot{ExchTs: int64(le.Uint64(r[0:])), Record: le.Uint64(r[8:]), Seq: le.Uint64(r[16:]),
			Levels: le.Uint32(r[24:]), Flags: le.Uint16(r[28:])}
		if out[i].Record >= records || (i > 0 && out[i].Record <= out[i-1].Record) {
			return nil, 0, fmt.Errorf("%s: offset %d: %w: run %d at record %d out of order or past %d records", name, HeaderSize+i*SnapshotEntrySize, ErrCorrupt, i, out[i].Record, records)
		}
	}
	return out, int64(records), nil
}

// readFile reads a whole index file, refusing one larger than max bytes.
func readFile(path string, max int64) ([]byte, error) {
	b, err := format.ReadFileLimit(path, max)
	if errors.Is(err, format.ErrTooLarge) {
		err = fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return b, err
}

// ReadTime reads dir/index/time.idx of a partition directory.
func ReadTime(partDir string) (*Time, error) {
	p := filepath.Join(partDir, Dir, TimeName)
	b, err := readFile(p, HeaderSize+MaxSeconds*TimeEntrySize)
	if err != nil {
		return nil, err
	}
	return ParseTime(b, p)
}

// ReadSnapshots reads dir/index/snapshots.idx of a partition directory.
func ReadSnapshots(partDir string) ([]Snapshot, int64, error) {
	p := filepath.Join(partDir, Dir, SnapshotsName)
	b, err := readFile(p, HeaderSize+MaxSnapshots*SnapshotEntrySize)
	if err != nil {
		return nil, 0, err
	}
	return ParseSnapshots(b, p)
}

// Index is a partition's index/ directory: what the refinery writes when it seals a
// partition, a pure function of its book.q.
type Index struct {
	Time      *Time
	Snapshots []Snapshot
	Events    *Events
	Books     *Books
}

// BuildIndex indexes n canonical records held in data, the records of a book whose header
// is dataOffset bytes (format.Header's HeaderSize): every file of index/.
func BuildIndex(data []byte, n, dataOffset int64) (*Index, error) {
	t, snaps, err := Build(data, n)
	if err != nil {
		return nil, err
	}
	ev, err := BuildEvents(data, n)
	if err != nil {
		return nil, err
	}
	books, err := BuildBooks(data, n, dataOffset)
	if err != nil {
		return nil, err
	}
	return &Index{Time: t, Snapshots: snaps, Events: ev, Books: books}, nil
}

// Write writes partDir/index/: each file under a temporary name, fsynced and renamed into
// place, then the directory synced. Absent parts (Events, Books nil) are not written.
func (ix *Index) Write(partDir string) error { return ix.WriteFS(vfs.OS{}, partDir) }

// WriteFS is Write through fsys (the refinery's, which tests inject faults into).
func (ix *Index) WriteFS(fsys vfs.FS, partDir string) error {
	files := []indexFile{{TimeName, MarshalTime(ix.Time)}, {SnapshotsName, MarshalSnapshots(ix.Snapshots, ix.Time.Records)}}
	if ix.Events != nil {
		files = append(files, indexFile{EventsName, MarshalEvents(ix.Events)})
	}
	if ix.Books != nil {
		b, err := MarshalBooks(ix.Books)
		if err != nil {
			return err
		}
		files = append(files, indexFile{BooksName, b})
	}
	return writeFiles(fsys, partDir, files)
}

// Write writes partDir/index/ with the time, snapshot and (unless ev is nil) events
// indexes, as Index.Write does.
func Write(partDir string, t *Time, snaps []Snapshot, ev *Events) error {
	return (&Index{Time: t, Snapshots: snaps, Events: ev}).Write(partDir)
}

type indexFile struct {
	name string
	b    []byte
}

func writeFiles(fsys vfs.FS, partDir string, files []indexFile) error {
	d := filepath.Join(partDir, Dir)
	if err := vfs.MkdirAll(fsys, d); err != nil {
		return err
	}
	for _, f := range files {
		if err := vfs.WriteFile(fsys, filepath.Join(d, f.name), f.b, 0o644); err != nil {
			return err
		}
	}
	if err := fsys.SyncDir(partDir); err != nil {
		return fmt.Errorf("sync dir %s: %w", partDir, err)
	}
	return nil
}
