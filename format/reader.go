package format

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// bytesReader is implemented by ReaderAts that can hand out their bytes without copying
// (a memory mapping); decoders use it to avoid a copy per record.
type bytesReader interface {
	Bytes() []byte
}

// Mapped is a read-only memory mapping of a whole file. It implements io.ReaderAt.
type Mapped struct {
	name string
	mem  []byte
}

// Causes a reader reports, wrapped in a *CorruptError naming the file and offset.
var (
	ErrBadHeader   = errors.New("invalid header")
	ErrTruncated   = errors.New("truncated")
	ErrRecordSize  = errors.New("record size mismatch")
	ErrWrongLayout = errors.New("wrong record layout")
)

// MapFile maps path read-only. An empty file maps to an empty slice.
func MapFile(path string) (*Mapped, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	m := &Mapped{name: path}
	if st.Size() == 0 {
		return m, nil
	}
	m.mem, err = unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return m, nil
}

func (m *Mapped) Bytes() []byte { return m.mem }
func (m *Mapped) Size() int64   { return int64(len(m.mem)) }
func (m *Mapped) Name() string  { return m.name }

func (m *Mapped) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", m.name, off)
	}
	if off >= int64(len(m.mem)) {
		return 0, io.EOF
	}
	n := copy(p, m.mem[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *Mapped) Close() error {
	if m.mem == nil {
		return nil
	}
	err := unix.Munmap(m.mem)
	m.mem = nil
	return err
}

// BookReader gives random and sequential access to the committed records of a canonical
// book file held by any io.ReaderAt (a local file, a mapping, a decompressing reader, a
// remote object).
type BookReader struct {
	r    io.ReaderAt
	name string
	h    Header
}

// OpenBookFile opens the book file at path and reads it through the file (pread), not a
// mapping: what a one-pass reader wants. The caller closes f once done with the reader. An
// error from opening the file is os.Open's, so errors.Is(err, fs.ErrNotExist) holds for a
// missing file.
func OpenBookFile(path string) (br *BookReader, f *os.File, err error) {
	if f, err = os.Open(path); err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err == nil {
		br, err = OpenBook(f, st.Size(), path)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return br, f, nil
}

// OpenBook reads and checks the header. size is the source's length, or -1 if unknown.
func OpenBook(r io.ReaderAt, size int64, name string) (*BookReader, error) {
	h, err := readLayout(r, size, name, LayoutBook, "a book file")
	if err != nil {
		return nil, err
	}
	return &BookReader{r: r, name: name, h: h}, nil
}

// readLayout reads the header of r and checks that the file holds want records (what, in
// the error).
func readLayout(r io.ReaderAt, size int64, name string, want Layout, what string) (Header, error) {
	h, err := ReadHeader(r, size, name)
	if err == nil && h.Layout != want {
		err = corrupt(name, offLayout, ErrWrongLayout, "%s file where %s was expected", h.Layout, what)
	}
	return h, err
}

func (b *BookReader) Header() Header { return b.h }

// Len is the number of committed records when the header was read.
func (b *BookReader) Len() int64 { return b.h.Records() }

// Record returns record i.
func (b *BookReader) Record(i int64) (BookRecord, error) {
	var buf [BookRecordSize]byte
	if i < 0 || i >= b.Len() {
		return BookRecord{}, fmt.Errorf("%s: record %d out of range [0,%d)", b.name, i, b.Len())
	}
	off := b.h.DataStart() + i*BookRecordSize
	if _, err := b.r.ReadAt(buf[:], off); err != nil {
		return BookRecord{}, b.readErr(off, err)
	}
	return DecodeBook(buf[:]), nil
}

func (b *BookReader) readErr(off int64, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return corrupt(b.name, off, ErrTruncated, "file ends before the committed length %d", b.h.Committed)
	}
	return fmt.Errorf("read %s at %d: %w", b.name, off, err)
}

// Iter returns a sequential iterator over all committed records that skips type ids this
// reader does not know (counted by Skipped).
func (b *BookReader) Iter() *BookIter { return b.IterRange(0, b.Len()) }

// IterRange iterates records [lo, hi) (record numbers, clamped to the committed records).
func (b *BookReader) IterRange(lo, hi int64) *BookIter {
	lo, hi = max(0, min(lo, b.Len())), max(0, min(hi, b.Len()))
	hi = max(lo, hi)
	it := &BookIter{br: b, next: b.h.DataStart() + lo*BookRecordSize, end: b.h.DataStart() + hi*BookRecordSize}
	if m, ok := b.r.(bytesReader); ok && int64(len(m.Bytes())) >= it.end {
		if recs, ok := BookRecords(m.Bytes()[it.next:it.end]); ok {
			it.recs, it.next = recs, it.end // the whole file in one window, no copies
		}
	}
	return it
}

// BookIter iterates records in file order, a window of records at a time.
type BookIter struct {
	br      *BookReader
	recs    []BookRecord // current window
	i       int          // next index in recs
	buf     []byte
	next    int64 // file offset of the first record after the window
	end     int64
	cur     *BookRecord
	err     error
	skipped int64
}

const iterChunk = 1 << 20 // multiple of BookRecordSize

// Next advances to the next known record. It returns false at the end or on error.
func (it *BookIter) Next() bool {
	for {
		for it.i < len(it.recs) {
			r := &it.recs[it.i]
			it.i++
			if KnownType(r.TypeID) {
				it.cur = r
				return true
			}
			it.skipped++
		}
		if it.err != nil || it.next >= it.end || !it.fill() {
			return false
		}
	}
}

func (it *BookIter) fill() bool {
	n := min(it.end-it.next, iterChunk)
	if it.buf == nil {
		it.buf = make([]byte, iterChunk)
	}
	buf := it.buf[:n]
	// A ReaderAt may return io.EOF together with a full buffer at the very end.
	if got, err := it.br.r.ReadAt(buf, it.next); int64(got) < n {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		it.err = it.br.readErr(it.next+int64(got), err)
		return false
	}
	recs, ok := BookRecords(buf)
	if !ok {
		recs = make([]BookRecord, len(buf)/BookRecordSize)
		for i := range recs {
			recs[i] = DecodeBook(buf[i*BookRecordSize:])
		}
	}
	it.recs, it.i = recs, 0
	it.next += n
	return true
}

// Record returns the current record. It points into the iterator's buffer or the file's
// read-only mapping: treat it as read-only and copy it to keep it past the next call.
func (it *BookIter) Record() *BookRecord { return it.cur }

// Offset is the file offset just past the current record.
func (it *BookIter) Offset() int64 { return it.next - int64(len(it.recs)-it.i)*BookRecordSize }

// Err returns the error that stopped the iteration, if any.
func (it *BookIter) Err() error { return it.err }

// Skipped counts records with unknown type ids that were passed over.
func (it *BookIter) Skipped() int64 { return it.skipped }

// JournalIter iterates the committed frames of a raw journal held by an io.ReaderAt.
type JournalIter struct {
	r      io.ReaderAt
	name   string
	buf    []byte
	bufOff int64
	next   int64
	end    int64
	rec    JournalRecord
	err    error
	mapped bool
}

// NewJournalIter reads the header of r (size -1 if unknown) and iterates its frames.
func NewJournalIter(r io.ReaderAt, size int64, name string) (*JournalIter, error) {
	h, err := readLayout(r, size, name, LayoutJournal, "a journal")
	if err != nil {
		return nil, err
	}
	return NewJournalIterHeader(r, h, name), nil
}

// NewJournalIterHeader iterates frames of r given its already-parsed header.
func NewJournalIterHeader(r io.ReaderAt, h Header, name string) *JournalIter {
	it := &JournalIter{r: r, name: name, next: h.DataStart(), end: int64(h.Committed)}
	if m, ok := r.(bytesReader); ok && int64(len(m.Bytes())) >= it.end {
		it.buf, it.mapped = m.Bytes()[:it.end], true
	}
	return it
}

// Next advances to the next frame.
func (it *JournalIter) Next() bool {
	if it.err != nil || it.next >= it.end {
		return false
	}
	rel := it.next - it.bufOff
	if !it.mapped {
		// Ensure the frame header and then the whole frame are buffered.
		if rel < 0 || rel+JournalFrameHeader > int64(len(it.buf)) {
			if !it.fill(JournalFrameHeader) {
				return false
			}
			rel = 0
		}
		if fl := peekFrameLen(it.buf[rel:]); fl > 0 && rel+fl > int64(len(it.buf)) && fl <= it.end-it.next {
			if !it.fill(fl) {
				return false
			}
			rel = 0
		}
	}
	rec, fl, err := decodeJournalFrame(it.buf[rel:min(int64(len(it.buf)), it.end-it.bufOff)], it.next, it.name)
	if err != nil {
		it.err = err
		return false
	}
	it.rec = rec
	it.next += fl
	return true
}

func peekFrameLen(b []byte) int64 {
	if len(b) < 4 {
		return 0
	}
	n := int(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
	if n > MaxJournalPayload {
		return 0
	}
	return JournalFrameLen(n)
}

// fill buffers at least need bytes (or up to the end) starting at it.next.
func (it *JournalIter) fill(need int64) bool {
	n := it.end - it.next
	want := max(need, iterChunk)
	if n > want {
		n = want
	}
	if int64(cap(it.buf)) < n {
		it.buf = make([]byte, n)
	}
	it.buf = it.buf[:n]
	got, err := it.r.ReadAt(it.buf, it.next)
	if int64(got) < n {
		if err == nil || err == io.EOF {
			it.err = corrupt(it.name, it.next+int64(got), ErrTruncated, "file ends before the committed length %d", it.end)
		} else {
			it.err = fmt.Errorf("read %s at %d: %w", it.name, it.next, err)
		}
		return false
	}
	it.bufOff = it.next
	return true
}

// Record returns the current frame; its Payload is valid until the next call to Next.
func (it *JournalIter) Record() *JournalRecord { return &it.rec }

// Offset is the file offset just past the current frame (a resume point).
func (it *JournalIter) Offset() int64 { return it.next }

func (it *JournalIter) Err() error { return it.err }

// ErrTooLarge: a file is larger than any file of its kind can be. Sizes come from disk and
// are never trusted for an allocation.
var ErrTooLarge = errors.New("file too large")

// SizedReaderAt is a file that knows its size: *os.File and the tier manager's files.
type SizedReaderAt interface {
	io.ReaderAt
	Stat() (fs.FileInfo, error)
}

// ReadAllLimit reads the whole of f (name is for errors), refusing a file of more than max
// bytes before it allocates anything.
func ReadAllLimit(f SizedReaderAt, name string, max int64) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s: %w: %d bytes, at most %d", name, ErrTooLarge, st.Size(), max)
	}
	b := make([]byte, st.Size())
	if k, err := f.ReadAt(b, 0); k < len(b) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// ReadFileLimit reads the whole file at path with ReadAllLimit.
func ReadFileLimit(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAllLimit(f, path, max)
}
