package format

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BookWriter writes a canonical book file through a user-space buffer and pwrite(2),
// publishing records with the same atomic store of the header's committed length as the
// Appender (only the header page is mapped). It is the refinery's writer: a store into a
// fresh page of a shared mapping faults the page in, and on virtual machines with shadow
// page tables each such fault costs more than copying the page (measured: 33 MB of
// records stored through a mapping took 8x the time of pwrite in 1 MiB batches), while the
// kernel fills page-cache pages for pwrite without touching the process's page tables.
//
// Records become visible only at Commit, which flushes the buffer and then publishes; a
// writer that commits rarely (a backfill) writes in large batches, one that commits each
// exchange event (live) writes one small batch per event. One goroutine writes.
type BookWriter struct {
	path      string
	f         *os.File
	hdr       Header
	head      []byte // the mapped header page
	committed *uint64
	state     *uint32

	buf    []byte // records not yet written, for file offsets [bufOff, pos)
	bufOff int64
	pos    int64 // next record's offset
	pub    int64 // what the last Commit published
	// floor is the committed length a resumed file had: records below it are compared
	// with the file and written only where they differ; the header does not move until
	// the writer passes it.
	floor    int64
	diverged int64
	cmp      []byte

	alloc   int64 // bytes reserved with fallocate
	allocMu sync.Mutex
	noAlloc bool // tmpfs: fallocate would zero pages the writes fill anyway
	chunk   int64
	max     int64
	closed  bool

	// With a Writeback, full buffers are written by its goroutine: free returns them,
	// inflight counts those not written yet, werr keeps the first write error.
	wb       *Writeback
	free     chan []byte
	nbufs    int
	inflight sync.WaitGroup
	werr     atomic.Pointer[error]
}

// bookWriterBuf is the size of a BookWriter's buffer: the records of a megabyte stay in the
// core's cache until they are written, and the file grows by a megabyte per system call.
const bookWriterBuf = 1 << 20

// writebackBufs is how many buffers a BookWriter with a Writeback has: one being filled,
// the others being written.
const writebackBufs = 3

// Writeback writes the buffers of BookWriters on a goroutine of its own, so that a writer
// on another core keeps encoding records while its full buffers go to the kernel: pwrite
// copies every byte into the page cache, a fifth of the refinery's time on one core. The
// writes of one BookWriter are done in order; Commit waits for them before it publishes.
type Writeback struct {
	jobs chan wbJob
	done chan struct{}
}

type wbJob struct {
	w   *BookWriter
	b   []byte
	off int64
}

// NewWriteback starts a writeback goroutine; Close stops it.
func NewWriteback() *Writeback {
	q := &Writeback{jobs: make(chan wbJob, 16), done: make(chan struct{})}
	go func() {
		defer close(q.done)
		for j := range q.jobs {
			if j.w.werr.Load() == nil {
				if err := j.w.writeChunk(j.b, j.off); err != nil {
					j.w.werr.CompareAndSwap(nil, &err)
				}
			}
			j.w.free <- j.b[:0]
			j.w.inflight.Done()
		}
	}()
	return q
}

// Close stops the goroutine once the writes handed to it are done. Every BookWriter using
// it must be closed first.
func (q *Writeback) Close() {
	close(q.jobs)
	<-q.done
}

// CreateBook makes a new book file at path, which must not exist, like Create: the file
// appears under its final name with its whole header.
func CreateBook(path string, h Header, opt Options) (*BookWriter, error) {
	opt.fill()
	if h.Layout != LayoutBook {
		return nil, fmt.Errorf("create %s: %w: %s", path, ErrWrongLayout, h.Layout)
	}
	h.Committed, h.Sealed = 0, false
	if h.CreatedNs == 0 {
		h.CreatedNs = time.Now().UnixNano()
	}
	tmp, err := createWithHeader(path, h, 0)
	if err != nil {
		return nil, err
	}
	return startBook(path, tmp, h, int64(h.HeaderSize), opt)
}

// ResumeBook reopens an unsealed book file to write from off, a record boundary at or
// below its committed length (see ResumeAppender: records regenerated below the old
// length are compared, not blindly written, and the file never shrinks while catching up).
// off < 0 resumes at the committed length.
func ResumeBook(path string, off int64, opt Options) (*BookWriter, error) {
	opt.fill()
	f, h, size, err := openWithHeader(path, os.O_RDWR)
	if err != nil {
		return nil, err
	}
	switch {
	case h.Sealed:
		f.Close()
		return nil, fmt.Errorf("open %s for append: %w", path, ErrSealed)
	case h.Layout != LayoutBook:
		f.Close()
		return nil, fmt.Errorf("resume %s: %w: %s file", path, ErrWrongLayout, h.Layout)
	}
	c := int64(h.Committed)
	if off < 0 {
		off = c
	}
	if off < int64(h.HeaderSize) || off > c || (off-int64(h.HeaderSize))%BookRecordSize != 0 {
		f.Close()
		return nil, fmt.Errorf("resume %s at %d: %w: not a record boundary within [%d,%d]", path, off, ErrBadHeader, h.HeaderSize, c)
	}
	w, err := startBook(path, f, h, size, opt)
	if err != nil {
		return nil, err
	}
	w.pos, w.pub, w.bufOff = off, off, off
	if off < c {
		w.floor = c
	}
	return w, nil
}

func startBook(path string, f *os.File, h Header, size int64, opt Options) (*BookWriter, error) {
	head, err := unix.Mmap(int(f.Fd()), 0, int(h.HeaderSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mmap %s header: %w", path, err)
	}
	w := &BookWriter{path: path, f: f, hdr: h, head: head,
		committed: (*uint64)(unsafe.Pointer(&head[offCommitted])), state: (*uint32)(unsafe.Pointer(&head[offState])),
		pos: max(int64(h.Committed), int64(h.HeaderSize)), alloc: size, chunk: opt.ChunkSize, max: opt.MaxSize,
		buf: make([]byte, 0, bookWriterBuf)}
	w.pub, w.bufOff = w.pos, w.pos
	if opt.Writeback != nil {
		w.wb, w.free, w.nbufs = opt.Writeback, make(chan []byte, writebackBufs), 1
	}
	var st unix.Statfs_t
	if unix.Fstatfs(int(f.Fd()), &st) == nil && st.Type == unix.TMPFS_MAGIC {
		w.noAlloc = true
	}
	return w, nil
}

// WriteBook buffers one record; Commit publishes it.
func (w *BookWriter) WriteBook(r *BookRecord) error {
	if w.closed {
		return ErrClosed
	}
	if w.pos+BookRecordSize > w.max {
		return fmt.Errorf("append to %s: %w (%d bytes)", w.path, ErrFull, w.max)
	}
	if len(w.buf)+BookRecordSize > cap(w.buf) {
		if err := w.flush(false); err != nil {
			return err
		}
	}
	n := len(w.buf)
	w.buf = w.buf[:n+BookRecordSize]
	r.Put(w.buf[n:])
	w.pos += BookRecordSize
	return nil
}

// Reserve returns room for n records at the end of the writer's buffer, to be encoded in
// place (BookRecord.Put, or directly in the layout of docs/format/q.md); they count as
// written, like WriteBook's, and Commit publishes them. The slice is valid until the next
// call on the writer. It is how the refinery writes an event's records without a call
// per record.
func (w *BookWriter) Reserve(n int) ([]byte, error) {
	if w.closed {
		return nil, ErrClosed
	}
	size := n * BookRecordSize
	if w.pos+int64(size) > w.max {
		return nil, fmt.Errorf("append to %s: %w (%d bytes)", w.path, ErrFull, w.max)
	}
	if len(w.buf)+size > cap(w.buf) {
		if err := w.flush(false); err != nil {
			return nil, err
		}
		if size > cap(w.buf) {
			w.buf = make([]byte, 0, size)
		}
	}
	k := len(w.buf)
	w.buf = w.buf[:k+size]
	w.pos += int64(size)
	return w.buf[k:], nil
}

// flush writes the buffered records (comparing those below the floor of a resumed file):
// with a Writeback a full buffer above the floor is handed to its goroutine and the writer
// goes on in another buffer; otherwise, and always when wait is set, it is written here,
// after the writes in flight.
func (w *BookWriter) flush(wait bool) error {
	if w.wb != nil {
		if err := w.writeErr(); err != nil {
			return err
		}
		if !wait && len(w.buf) > 0 && w.bufOff >= w.floor {
			// Go on in a free buffer (or a new one, up to writebackBufs) while the
			// goroutine writes this one; when it is busy (the machine's other work may
			// have its core), write this one here rather than wait for it.
			var next []byte
			select {
			case next = <-w.free:
			default:
				if w.nbufs < writebackBufs {
					next, w.nbufs = make([]byte, 0, bookWriterBuf), w.nbufs+1
				}
			}
			if next != nil {
				w.inflight.Add(1)
				select {
				case w.wb.jobs <- wbJob{w: w, b: w.buf, off: w.bufOff}:
					w.buf, w.bufOff = next[:0], w.pos
					return nil
				default:
					w.inflight.Done()
					w.free <- next
				}
			}
			if err := w.writeChunk(w.buf, w.bufOff); err != nil {
				return err
			}
			w.buf, w.bufOff = w.buf[:0], w.pos
			return nil
		}
		w.inflight.Wait()
		if err := w.writeErr(); err != nil {
			return err
		}
	}
	if len(w.buf) == 0 {
		return nil
	}
	if err := w.writeChunk(w.buf, w.bufOff); err != nil {
		return err
	}
	w.bufOff = w.pos
	w.buf = w.buf[:0]
	return nil
}

func (w *BookWriter) writeErr() error {
	if p := w.werr.Load(); p != nil {
		return *p
	}
	return nil
}

// writeChunk writes b at off, comparing what lies below the floor of a resumed file with
// the file and writing only what differs.
func (w *BookWriter) writeChunk(b []byte, off int64) error {
	if off < w.floor {
		// Catching up: compare with what the file holds, write only what differs.
		n := min(int64(len(b)), w.floor-off)
		if int64(cap(w.cmp)) < n {
			w.cmp = make([]byte, n)
		}
		old := w.cmp[:n]
		if _, err := w.f.ReadAt(old, off); err != nil {
			return fmt.Errorf("read back %s at %d: %w", w.path, off, err)
		}
		same := true
		for i := int64(0); i < n; i += BookRecordSize {
			if string(old[i:i+BookRecordSize]) != string(b[i:i+BookRecordSize]) {
				w.diverged++
				same = false
			}
		}
		if same {
			b, off = b[n:], off+n
		}
	}
	if len(b) > 0 {
		if end := off + int64(len(b)); !w.noAlloc {
			// Reserve ahead in chunks, so a full device fails here and the blocks are
			// allocated in large extents. (The writeback's goroutine and the writer may
			// both be here.)
			w.allocMu.Lock()
			if end > w.alloc {
				want := min(max(end, w.alloc+w.chunk), w.max)
				if err := unix.Fallocate(int(w.f.Fd()), 0, w.alloc, want-w.alloc); err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
					w.allocMu.Unlock()
					return fmt.Errorf("grow %s to %d bytes: %w", w.path, want, err)
				}
				w.alloc = want
			}
			w.allocMu.Unlock()
		}
		if _, err := w.f.WriteAt(b, off); err != nil {
			return fmt.Errorf("write %s at %d: %w", w.path, off, err)
		}
	}
	return nil
}

// Commit writes the buffered records and publishes them with one atomic store.
func (w *BookWriter) Commit() error {
	if err := w.flush(true); err != nil {
		return err
	}
	w.pub = w.pos
	if w.pos >= w.floor {
		w.floor = 0
		atomic.StoreUint64(w.committed, uint64(w.pos))
	}
	return nil
}

// Rollback drops records written since the last Commit.
func (w *BookWriter) Rollback() {
	w.inflight.Wait() // what they write lies past the committed length
	if w.bufOff > w.pub {
		// Part of what was dropped was flushed already: it lies past the committed
		// length, where no reader looks, and will be overwritten.
		w.buf, w.bufOff = w.buf[:0], w.pub
	} else {
		w.buf = w.buf[:w.pub-w.bufOff]
	}
	w.pos = w.pub
}

// Pos is the offset the next record goes to.
func (w *BookWriter) Pos() int64 { return w.pos }

// Committed is the published length.
func (w *BookWriter) Committed() int64 { return int64(atomic.LoadUint64(w.committed)) }

// Diverged counts records of a resumed file that differed from what it held.
func (w *BookWriter) Diverged() int64 { return w.diverged }

// CatchingUp reports whether a resumed writer is still below the file's old length.
func (w *BookWriter) CatchingUp() bool { return w.pos < w.floor }

// Path returns the file path.
func (w *BookWriter) Path() string { return w.path }

// Sync makes the published records and the header durable (fdatasync).
func (w *BookWriter) Sync() error {
	w.inflight.Wait()
	if err := unix.Msync(w.head, unix.MS_SYNC); err != nil {
		return fmt.Errorf("msync %s: %w", w.path, err)
	}
	if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
		return fmt.Errorf("fdatasync %s: %w", w.path, err)
	}
	return nil
}

// Seal publishes what was committed, trims the file to it, sets the sealed bit and
// syncs: a sealed file's size equals its committed length. Uncommitted records are
// dropped, as with the Appender.
func (w *BookWriter) Seal() error {
	if w.closed {
		return ErrClosed
	}
	w.Rollback()
	return w.close(true)
}

// Close trims the file to its committed length and releases it without sealing.
func (w *BookWriter) Close() error {
	if w.closed {
		return nil
	}
	w.Rollback()
	return w.close(false)
}

func (w *BookWriter) close(seal bool) error {
	w.closed = true
	return closeWriter(w.path, w.f, w.committed, w.state, w.pub, seal, func() error {
		var errs []error
		if err := unix.Msync(w.head, unix.MS_SYNC); err != nil {
			errs = append(errs, fmt.Errorf("msync %s: %w", w.path, err))
		}
		if err := unix.Munmap(w.head); err != nil {
			errs = append(errs, fmt.Errorf("munmap %s: %w", w.path, err))
		}
		return errors.Join(errs...)
	})
}

// WriteBookFile writes a whole book file in one call: a new file at path (which must not
// exist; the folders above it are made as needed) with header h and recs, committed and
// sealed, as a partition the refinery has finished. It suits books small enough to hold in
// memory: a fixture, a converted day, an example. On failure nothing is left at path.
func WriteBookFile(path string, h Header, recs []BookRecord, opt Options) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	w, err := CreateBook(path, h, opt)
	if err != nil {
		return err
	}
	for i := range recs {
		if err = w.WriteBook(&recs[i]); err != nil {
			break
		}
	}
	if err == nil {
		err = w.Commit()
	}
	if err == nil {
		err = w.Seal()
	} else {
		w.Close()
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}
