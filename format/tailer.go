package format

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Tailer follows a .q file that another process may still be appending to. It maps the
// header, to load the committed length and the sealed bit atomically, and reads records
// below the committed length only, so it never sees a torn record. The data is mapped too,
// read-only (address space for the largest file a writer makes, mapped as far as the file
// goes), and each stretch of it is populated a megabyte at a time ahead of the reader
// (MADV_POPULATE_READ: the page-table entries in one call, no fault per page); records
// are returned without a copy. Where the mapping cannot be made, or the file outgrows it,
// records are read with pread into the Tailer's own buffer. A file cut below its committed
// length is reported as corrupt when seen; one cut under the reader's feet faults, which a
// reader guards with debug.SetPanicOnFault (the refinery does).
type Tailer struct {
	path      string
	f         *os.File
	head      []byte
	hdr       Header
	committed *uint64
	state     *uint32
	pos       int64
	buf       []byte // file bytes [bufOff, bufOff+len(buf)), all below the committed length
	bufOff    int64
	consume   func(off int64, b []byte)
	fed       int64  // bytes below this offset were given to consume
	mm        []byte // the file mapped read-only (length tailMapLen); nil when reading with pread
	size      int64  // the file's size as last seen: mapped bytes below it may be read
	popTo     int64  // the mapping is populated below this offset
	noPop     bool   // MADV_POPULATE_READ is not supported: pages fault in
}

// tailMapLen is the address space a Tailer reserves for the file: the journal's largest
// segment (format.DefaultMaxSize).
const tailMapLen = DefaultMaxSize

// madvPopulateRead is MADV_POPULATE_READ (Linux 5.14).
const madvPopulateRead = 22

// tailChunk is how much a Tailer reads (or populates) at a time when that much is
// committed.
const tailChunk = 1 << 20

// consumeChunk is how much a consumer is given at a time: large enough that a call costs
// nothing per record, small enough that the bytes are still in the core's cache, from
// their reading, when it hashes them.
const consumeChunk = 64 << 10

// OpenTailer opens path for following from the first record.
func OpenTailer(path string) (*Tailer, error) {
	f, h, size, err := openWithHeader(path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	head, err := unix.Mmap(int(f.Fd()), 0, int(h.HeaderSize), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mmap %s header: %w", path, err)
	}
	t := &Tailer{path: path, f: f, head: head, hdr: h, pos: h.DataStart(), size: size,
		committed: (*uint64)(unsafe.Pointer(&head[offCommitted])), state: (*uint32)(unsafe.Pointer(&head[offState]))}
	if mm, err := unix.Mmap(int(f.Fd()), 0, tailMapLen, unix.PROT_READ, unix.MAP_SHARED); err == nil {
		t.mm = mm
	}
	return t, nil
}

// Header returns the header read at open (its Committed is not kept current).
func (t *Tailer) Header() Header { return t.hdr }

// Committed loads the writer's committed length.
func (t *Tailer) Committed() int64 { return int64(atomic.LoadUint64(t.committed)) }

// Sealed reports whether the writer has sealed the file: no more records will come.
func (t *Tailer) Sealed() bool { return atomic.LoadUint32(t.state)&stateSealed != 0 }

// Offset is the file offset of the next record to read (a resume point).
func (t *Tailer) Offset() int64 { return t.pos }

// SeekTo sets the next read position, for resuming from a checkpoint. off must be a record
// boundary; a wrong one is caught as corruption when read.
func (t *Tailer) SeekTo(off int64) error {
	if off < t.hdr.DataStart() || off > t.Committed() {
		return fmt.Errorf("seek %s to %d: outside [%d,%d]", t.path, off, t.hdr.DataStart(), t.Committed())
	}
	if t.hdr.RecordSize != 0 && (off-t.hdr.DataStart())%int64(t.hdr.RecordSize) != 0 {
		return fmt.Errorf("seek %s to %d: not a record boundary", t.path, off)
	}
	t.Flush()
	t.pos, t.fed = off, off
	return nil
}

// visible returns the committed end, checking that it never moves backwards.
func (t *Tailer) visible() (int64, error) {
	c := t.Committed()
	if c < t.pos {
		return 0, corrupt(t.path, offCommitted, ErrBadHeader, "committed length %d went backwards past read position %d", c, t.pos)
	}
	return c, nil
}

// SetConsumer has fn receive the bytes of every record the Tailer returns from now on, in
// order and in pieces of about consumeChunk: those of the records read so far, each time
// that much was read, before the Tailer reuses its buffer, and whenever Flush is called.
// Hashing a journal that way costs a call per 64 KiB instead of one per record. The slice
// is valid during the call only.
func (t *Tailer) SetConsumer(fn func(off int64, b []byte)) {
	t.consume, t.fed = fn, t.pos
}

// Flush gives the consumer the bytes of the records read since it last received any.
func (t *Tailer) Flush() {
	if t.consume == nil || t.fed >= t.pos {
		return
	}
	var b []byte
	switch {
	case t.mm != nil && t.pos <= int64(len(t.mm)) && t.pos <= t.size:
		b = t.mm[t.fed:t.pos]
	case t.fed >= t.bufOff && t.pos <= t.bufOff+int64(len(t.buf)):
		b = t.buf[t.fed-t.bufOff : t.pos-t.bufOff]
	default:
		// Cannot happen: bytes leave the buffer only after the consumer had them.
		panic(fmt.Sprintf("tailer %s: consumed bytes [%d,%d) are not in the buffer [%d,%d)", t.path, t.fed, t.pos, t.bufOff, t.bufOff+int64(len(t.buf))))
	}
	t.consume(t.fed, b)
	t.fed = t.pos
}

// window returns the committed bytes from the read position, at least need of them (a
// whole frame) when that many are committed, reading more from the file when the buffer
// does not hold them.
func (t *Tailer) window(end, need int64) ([]byte, error) {
	if t.mm != nil && end <= int64(len(t.mm)) {
		if end <= t.size && t.pos+need <= t.popTo {
			t.buf, t.bufOff = t.mm[:end], 0
			return t.buf[t.pos:], nil
		}
		return t.mapped(end, need)
	}
	if t.mm != nil && len(t.buf) > 0 && &t.buf[0] == &t.mm[0] {
		t.buf, t.bufOff = nil, 0 // past the mapping (a file larger than tailMapLen): pread from here
	}
	if t.pos >= t.bufOff && t.pos+need <= t.bufOff+int64(len(t.buf)) {
		return t.buf[t.pos-t.bufOff:], nil
	}
	t.Flush() // the buffer is about to be reused
	n := min(end-t.pos, max(need, tailChunk))
	if int64(cap(t.buf)) < n {
		t.buf = make([]byte, n)
	}
	b := t.buf[:n]
	got, err := t.f.ReadAt(b, t.pos)
	if int64(got) < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		t.buf, t.bufOff = t.buf[:0], 0
		return nil, corrupt(t.path, t.pos+int64(got), ErrTruncated, "file ends before its committed length %d: %v", end, err)
	}
	t.buf, t.bufOff = b, t.pos
	return b, nil
}

// mapped is window over the mapping: every committed byte from the read position, the
// stretch ahead of it populated.
func (t *Tailer) mapped(end, need int64) ([]byte, error) {
	if end > t.size {
		st, err := t.f.Stat()
		if err != nil {
			return nil, fmt.Errorf("stat %s: %w", t.path, err)
		}
		if t.size = st.Size(); end > t.size {
			return nil, corrupt(t.path, t.size, ErrTruncated, "file ends before its committed length %d", end)
		}
	}
	if want := t.pos + max(need, tailChunk); want > t.popTo && !t.noPop {
		from := max(t.popTo, t.pos) &^ (pageSize - 1)
		to := (min(want, end) + pageSize - 1) &^ (pageSize - 1)
		if to > from {
			if err := unix.Madvise(t.mm[from:to], madvPopulateRead); err != nil {
				t.noPop = true // an older kernel: let the pages fault in
			}
			t.popTo = to
		}
	}
	t.buf, t.bufOff = t.mm[:end], 0
	return t.buf[t.pos:], nil
}

// Raw returns the bytes [off, end) of the record just read (for hashing). The slice
// aliases the Tailer's buffer until the next call.
func (t *Tailer) Raw(off, end int64) []byte {
	if off < t.bufOff || end < off || end > t.bufOff+int64(len(t.buf)) {
		return nil
	}
	return t.buf[off-t.bufOff : end-t.bufOff]
}

// visibleAs checks that the file holds want records (read as what) and returns the end of
// what is visible.
func (t *Tailer) visibleAs(want Layout, what string) (int64, error) {
	if t.hdr.Layout != want {
		return 0, corrupt(t.path, offLayout, ErrWrongLayout, "%s file read as %s", t.hdr.Layout, what)
	}
	return t.visible()
}

// NextBook returns the next committed canonical record; ok is false when none is available
// yet. Unknown type ids are skipped.
func (t *Tailer) NextBook() (rec BookRecord, ok bool, err error) {
	end, err := t.visibleAs(LayoutBook, "book")
	if err != nil {
		return rec, false, err
	}
	for t.pos+BookRecordSize <= end {
		b, err := t.window(end, BookRecordSize)
		if err != nil {
			return rec, false, err
		}
		rec = DecodeBook(b)
		t.pos += BookRecordSize
		if KnownType(rec.TypeID) {
			return rec, true, nil
		}
	}
	return rec, false, nil
}

// NextJournal returns the next committed journal frame; ok is false when none is available
// yet. The payload aliases the Tailer's buffer: copy it to keep it past the next call.
func (t *Tailer) NextJournal() (rec JournalRecord, ok bool, err error) {
	end, err := t.visibleAs(LayoutJournal, "journal")
	if err != nil {
		return rec, false, err
	}
	if t.pos >= end {
		return rec, false, nil
	}
	b, err := t.window(end, min(JournalFrameHeader, end-t.pos))
	if err != nil {
		return rec, false, err
	}
	if len(b) >= JournalFrameHeader {
		// Make sure the whole frame is in the window (a damaged length is caught below).
		if fl := JournalFrameLen(int(min(binary.LittleEndian.Uint32(b), MaxJournalPayload))); int64(len(b)) < fl {
			if b, err = t.window(end, min(fl, end-t.pos)); err != nil {
				return rec, false, err
			}
		}
	}
	rec, fl, err := decodeJournalFrame(b[:min(int64(len(b)), end-t.pos)], t.pos, t.path)
	if err != nil {
		return rec, false, err
	}
	t.pos += fl
	if t.consume != nil && t.pos-t.fed >= consumeChunk {
		t.Flush()
	}
	return rec, true, nil
}

// Wait blocks until records past the read position are committed, the file is sealed, or
// ctx ends, polling the committed length every poll interval.
func (t *Tailer) Wait(ctx context.Context, poll time.Duration) error {
	for {
		if t.Committed() > t.pos || t.Sealed() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// Close releases the file.
func (t *Tailer) Close() error {
	if t.head != nil {
		unix.Munmap(t.head)
		t.head = nil
	}
	if t.mm != nil {
		unix.Munmap(t.mm)
		t.mm, t.buf = nil, nil
	}
	return t.f.Close()
}
