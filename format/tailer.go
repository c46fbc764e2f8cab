package format

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Tailer follows a .q file that another process may still be appending to. It maps the
// file read-only with a large reservation so growth needs no remap, loads the committed
// length atomically and reads only below it, so it never sees a torn record.
type Tailer struct {
	path      string
	f         *os.File
	mem       []byte
	hdr       Header
	committed *uint64
	state     *uint32
	pos       int64
}

// tailReserve is the address space a Tailer maps; a writer's MaxSize larger than this
// makes the Tailer remap when the file outgrows it.
const tailReserve = DefaultMaxSize

// OpenTailer opens path for following from the first record.
func OpenTailer(path string) (*Tailer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	h, err := ReadHeader(f, st.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	t := &Tailer{path: path, f: f, hdr: h, pos: h.DataStart()}
	if err := t.mapAtLeast(max(tailReserve, st.Size())); err != nil {
		f.Close()
		return nil, err
	}
	return t, nil
}

func (t *Tailer) mapAtLeast(n int64) error {
	if t.mem != nil {
		unix.Munmap(t.mem)
	}
	mem, err := unix.Mmap(int(t.f.Fd()), 0, int(n), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_NORESERVE)
	if err != nil {
		return fmt.Errorf("mmap %s: %w", t.path, err)
	}
	t.mem = mem
	t.committed = (*uint64)(unsafe.Pointer(&mem[offCommitted]))
	t.state = (*uint32)(unsafe.Pointer(&mem[offState]))
	return nil
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

// visible returns the committed end, remapping if the file outgrew the reservation.
func (t *Tailer) visible() (int64, error) {
	c := t.Committed()
	if c > int64(len(t.mem)) {
		if err := t.mapAtLeast(c * 2); err != nil {
			return 0, err
		}
		c = t.Committed()
	}
	if c < t.pos {
		return 0, corrupt(t.path, offCommitted, ErrBadHeader, "committed length %d went backwards past read position %d", c, t.pos)
	}
	return c, nil
}

// NextBook returns the next committed canonical record; ok is false when none is available
// yet. Unknown type ids are skipped.
func (t *Tailer) NextBook() (rec BookRecord, ok bool, err error) {
	if t.hdr.Layout != LayoutBook {
		return rec, false, corrupt(t.path, offLayout, ErrWrongLayout, "%s file read as book", t.hdr.Layout)
	}
	end, err := t.visible()
	if err != nil {
		return rec, false, err
	}
	for t.pos+BookRecordSize <= end {
		rec = DecodeBook(t.mem[t.pos:])
		t.pos += BookRecordSize
		if KnownType(rec.TypeID) {
			return rec, true, nil
		}
	}
	return rec, false, nil
}

// NextJournal returns the next committed journal frame; ok is false when none is available
// yet. The payload aliases the mapping: copy it to keep it past Close.
func (t *Tailer) NextJournal() (rec JournalRecord, ok bool, err error) {
	if t.hdr.Layout != LayoutJournal {
		return rec, false, corrupt(t.path, offLayout, ErrWrongLayout, "%s file read as journal", t.hdr.Layout)
	}
	end, err := t.visible()
	if err != nil {
		return rec, false, err
	}
	if t.pos >= end {
		return rec, false, nil
	}
	rec, fl, err := decodeJournalFrame(t.mem[t.pos:end], t.pos, t.path)
	if err != nil {
		return rec, false, err
	}
	t.pos += fl
	return rec, true, nil
}

// Raw returns the mapped bytes [off, end) of the file, which must lie below the committed
// length (a frame just read, for hashing). The slice aliases the mapping.
func (t *Tailer) Raw(off, end int64) []byte {
	if off < 0 || end < off || end > t.Committed() || end > int64(len(t.mem)) {
		return nil
	}
	return t.mem[off:end]
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

// Close releases the mapping.
func (t *Tailer) Close() error {
	if t.mem != nil {
		unix.Munmap(t.mem)
		t.mem = nil
	}
	return t.f.Close()
}
