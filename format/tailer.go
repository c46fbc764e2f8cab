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

// Tailer follows a .q file that another process may still be appending to. It maps only
// the header, to load the committed length and the sealed bit atomically, and reads
// records below the committed length with pread into its own buffer: it never sees a torn
// record, and it takes no page faults on the data (mapping pages is what costs most on
// virtual machines with shadow page tables; copying them out is cheaper).
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
}

// tailChunk is how much a Tailer reads at a time when that much is committed.
const tailChunk = 1 << 20

// OpenTailer opens path for following from the first record.
func OpenTailer(path string) (*Tailer, error) {
	f, h, _, err := openWithHeader(path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	head, err := unix.Mmap(int(f.Fd()), 0, int(h.HeaderSize), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mmap %s header: %w", path, err)
	}
	return &Tailer{path: path, f: f, head: head, hdr: h, pos: h.DataStart(),
		committed: (*uint64)(unsafe.Pointer(&head[offCommitted])), state: (*uint32)(unsafe.Pointer(&head[offState]))}, nil
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
	t.pos = off
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

// window returns the committed bytes from the read position, at least need of them (a
// whole frame) when that many are committed, reading more from the file when the buffer
// does not hold them.
func (t *Tailer) window(end, need int64) ([]byte, error) {
	if t.pos >= t.bufOff && t.pos+need <= t.bufOff+int64(len(t.buf)) {
		return t.buf[t.pos-t.bufOff:], nil
	}
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
	return t.f.Close()
}
