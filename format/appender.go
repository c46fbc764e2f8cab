package format

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/chronicle/chronicle/internal/fileutil"
)

// Options tune an Appender's memory mapping.
type Options struct {
	// ChunkSize is how much the file grows at a time; each chunk is allocated (fallocate) and
	// pre-faulted by a background goroutine before the writer reaches it, so the append path
	// takes no page faults and makes no system calls. Default 64 MiB.
	ChunkSize int64
	// MaxSize is the virtual address space reserved for the file, and so its largest size.
	// Reserving it up front means the mapping never moves. Default 64 GiB.
	MaxSize int64
	// NoPrefault skips pre-faulting (for files on slow media where memory should not be pinned).
	NoPrefault bool
	// Writeback, for a BookWriter, writes its full buffers on the Writeback's goroutine
	// (another core) while the writer fills the next one.
	Writeback *Writeback
}

const (
	DefaultChunkSize = 64 << 20
	DefaultMaxSize   = 64 << 30
)

// What an appender refuses.
var (
	ErrFull   = errors.New("file reached its maximum size")
	ErrSealed = errors.New("file is sealed")
	ErrClosed = errors.New("appender is closed")
)

func (o *Options) fill() {
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultChunkSize
	}
	o.ChunkSize = (o.ChunkSize + pageSize - 1) &^ (pageSize - 1)
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
}

const pageSize = 4096

// firstGrowth is how much a new appender grows before returning; growStep is the grower's
// unit of work.
const (
	firstGrowth = 1 << 20
	growStep    = 1 << 20
)

// Appender is the single writer of one .q file. Append methods are not safe for concurrent
// use: exactly one goroutine appends (the file has one writer by design). Readers in other
// goroutines or processes use a Tailer or any io.ReaderAt decoder.
type Appender struct {
	path      string
	f         *os.File
	mem       []byte
	hdr       Header
	committed *uint64 // points into the mapping's header
	state     *uint32

	pos int64 // write cursor; >= pub
	pub int64 // what the last Commit published (the header holds max(pub, floor))
	// floor is the committed length the file had when a ResumeAppender reopened it below
	// it: until pos reaches floor, records are compared with the file and the header's
	// committed length is left alone. 0 when not catching up.
	floor    int64
	diverged int64 // records that differed from the file while catching up
	limit    int64 // writer's cached view of grown; only refreshed on the slow path
	kickAt   int64 // once pos passes this, ask the grower for the next chunk
	max      int64
	opt      Options

	grown   atomic.Int64          // bytes of the file that exist and are pre-faulted
	growMu  sync.Mutex            // serialises growth between the grower and a writer that outran it
	growErr atomic.Pointer[error] // last error from background growth
	want    atomic.Int64          // size the writer asked the grower for
	kick    chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
	closed  bool

	lastRecv int64 // journal files reopened by OpenAppender: receive time of the last frame
}

// Create makes a new .q file at path with header h and returns its appender. The file
// appears under its final name only once its header is complete (written under a temporary
// name, then linked), so a crash never leaves a headerless file. It fails if path exists.
func Create(path string, h Header, opt Options) (*Appender, error) {
	opt.fill()
	h.Committed = 0
	h.Sealed = false
	if h.CreatedNs == 0 {
		h.CreatedNs = time.Now().UnixNano()
	}
	// The first appends' room is allocated before the name appears: on a full device
	// Create fails and leaves nothing behind, so the caller can simply try again.
	first := (int64(h.HeaderSize) + min(opt.ChunkSize, firstGrowth) + pageSize - 1) &^ (pageSize - 1)
	tmp, err := createWithHeader(path, h, min(first, opt.MaxSize))
	if err != nil {
		return nil, err
	}
	a, err := start(path, tmp, h, int64(h.HeaderSize), opt)
	if err != nil {
		tmp.Close()
		// Nobody can refer to the new file yet: take the name back.
		os.Remove(path)
		fileutil.SyncDir(filepath.Dir(path))
		return nil, err
	}
	return a, nil
}

// OpenAppender reopens an existing, unsealed .q file for appending, for example after a
// crash. Appending resumes after the last committed record; bytes past it (a record that
// was being written when the writer died) are overwritten.
func OpenAppender(path string, opt Options) (*Appender, error) {
	opt.fill()
	f, h, size, err := openWithHeader(path, os.O_RDWR)
	if err != nil {
		return nil, err
	}
	if h.Sealed {
		f.Close()
		return nil, fmt.Errorf("open %s for append: %w", path, ErrSealed)
	}
	var last int64
	if h.Layout == LayoutJournal {
		// Walk the frames so that a damaged journal is reported now, not appended to.
		it := NewJournalIterHeader(f, h, path)
		for it.Next() {
			last = it.Record().RecvTs
		}
		if err := it.Err(); err != nil {
			f.Close()
			return nil, err
		}
	}
	a, err := start(path, f, h, size, opt)
	if err != nil {
		f.Close()
		return nil, err
	}
	a.lastRecv = last
	return a, nil
}

// ResumeAppender reopens an unsealed book file to rewrite it from off, a record boundary
// at or below its committed length: a writer that lost its state after off (killed between
// two checkpoints) regenerates the records that follow. While catching up, each record is
// compared with the bytes the file holds and written only where it differs (Diverged
// counts those), and the committed length does not move until the writer passes it, so a
// reader never sees the file shrink, nor change when the records come out the same.
func ResumeAppender(path string, off int64, opt Options) (*Appender, error) {
	a, err := OpenAppender(path, opt)
	if err != nil {
		return nil, err
	}
	if a.hdr.Layout != LayoutBook {
		a.Close()
		return nil, fmt.Errorf("resume %s: %w: %s file", path, ErrWrongLayout, a.hdr.Layout)
	}
	c := a.Committed()
	if off < int64(a.hdr.HeaderSize) || off > c || (off-int64(a.hdr.HeaderSize))%BookRecordSize != 0 {
		a.Close()
		return nil, fmt.Errorf("resume %s at %d: %w: not a record boundary within [%d,%d]", path, off, ErrBadHeader, a.hdr.HeaderSize, c)
	}
	if off < c {
		a.pos, a.pub, a.floor = off, off, c
	}
	return a, nil
}

// LastRecvTs is, for a journal file reopened by OpenAppender, the receive time of its last
// committed frame (0 if it had none): a writer resuming it must not go back before it.
func (a *Appender) LastRecvTs() int64 { return a.lastRecv }

// Diverged counts the records a resumed appender found different from the file's.
func (a *Appender) Diverged() int64 { return a.diverged }

// CatchingUp reports whether a resumed appender is still below the file's old length.
func (a *Appender) CatchingUp() bool { return a.pos < a.floor }

// Pos is the write cursor: the file offset the next record goes to.
func (a *Appender) Pos() int64 { return a.pos }

// Grown is how far the file is allocated and pre-faulted: appends below it never wait on
// the grower or fault.
func (a *Appender) Grown() int64 { return a.grown.Load() }

func start(path string, f *os.File, h Header, size int64, opt Options) (*Appender, error) {
	max := opt.MaxSize
	if max < size {
		max = size
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(max), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	a := &Appender{
		path: path, f: f, mem: mem, hdr: h, max: max, opt: opt,
		committed: (*uint64)(unsafe.Pointer(&mem[offCommitted])),
		state:     (*uint32)(unsafe.Pointer(&mem[offState])),
		pos:       int64(h.Committed),
		pub:       int64(h.Committed),
		kick:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
	if a.pos < int64(h.HeaderSize) {
		a.pos, a.pub = int64(h.HeaderSize), int64(h.HeaderSize)
	}
	a.grown.Store(size)
	// Have the first appends' room ready now (at most 1 MiB: pre-faulting a whole chunk
	// takes tens of milliseconds where page faults are dear), and the rest of the first
	// chunk grown in the background.
	if err := a.growTo(a.pos + min(opt.ChunkSize, firstGrowth)); err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	a.refreshLimit()
	a.wg.Add(1)
	go a.grower()
	a.want.Store(a.pos + opt.ChunkSize)
	a.kick <- struct{}{}
	return a, nil
}

// grower extends and pre-faults the file ahead of the writer, off the append path.
func (a *Appender) grower() {
	defer a.wg.Done()
	for {
		select {
		case <-a.stop:
			return
		case <-a.kick:
			// In steps, so that a writer that outruns the grower waits for one step at
			// most, not for a whole chunk's page faults.
			want := a.want.Load()
			for n := a.grown.Load() + growStep; ; n += growStep {
				if err := a.growTo(min(n, want)); err != nil {
					a.growErr.Store(&err)
					break
				}
				if n >= want {
					break
				}
				select {
				case <-a.stop:
					return
				default:
				}
			}
		}
	}
}

// growTo makes the file at least n bytes long (capped at max), allocated and pre-faulted.
func (a *Appender) growTo(n int64) error {
	a.growMu.Lock()
	defer a.growMu.Unlock()
	if n > a.max {
		n = a.max
	}
	old := a.grown.Load()
	if n <= old {
		return nil
	}
	n = (n + pageSize - 1) &^ (pageSize - 1)
	if n > a.max {
		n = a.max
	}
	// fallocate reserves the blocks now, so a full device is an error here and never a
	// SIGBUS when the writer touches the page (tmpfs and ext4 both honour it).
	if err := unix.Fallocate(int(a.f.Fd()), 0, old, n-old); err != nil {
		if !errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("grow %s to %d bytes: %w", a.path, n, err)
		}
		if err := a.f.Truncate(n); err != nil {
			return fmt.Errorf("grow %s to %d bytes: %w", a.path, n, err)
		}
	}
	if !a.opt.NoPrefault {
		prefault(a.mem[old:n])
	}
	a.grown.Store(n)
	return nil
}

// prefault makes the first store to each page free of faults by storing to it now. (On
// tmpfs, MADV_POPULATE_WRITE left the first write to a page costing several microseconds;
// a store does not.) The region lies past the writer's limit, so nobody else writes it.
func prefault(b []byte) {
	for i := 0; i < len(b); i += pageSize {
		b[i] = 0
	}
}

func (a *Appender) refreshLimit() {
	a.limit = a.grown.Load()
	a.kickAt = a.limit - a.opt.ChunkSize/2
}

// reserve is the slow path: the next record does not fit in what has been grown.
func (a *Appender) reserve(end int64) error {
	if a.closed {
		return ErrClosed
	}
	a.refreshLimit()
	if end <= a.limit {
		return nil
	}
	if end > a.max {
		return fmt.Errorf("append to %s: %w (%d bytes)", a.path, ErrFull, a.max)
	}
	if err := a.growTo(end + a.opt.ChunkSize); err != nil {
		// A nearly full device may hold the record but not a chunk of slack after it; the
		// record is what counts. (Asking for the slack alone failed appends that fit, while
		// the grower's smaller steps later made room: how many failed was a race.)
		if err := a.growTo(end); err != nil {
			return err
		}
	}
	a.refreshLimit()
	return nil
}

func (a *Appender) maybeKick() {
	if a.pos > a.kickAt {
		a.kickAt = a.limit + a.opt.ChunkSize // do not kick again until the next refresh
		a.want.Store(a.pos + 2*a.opt.ChunkSize)
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

// WriteBook writes one canonical record without publishing it; Commit publishes every
// record written so far at once (one exchange event = one commit).
func (a *Appender) WriteBook(r *BookRecord) error {
	if a.hdr.Layout != LayoutBook {
		return fmt.Errorf("append to %s: %w: %s file", a.path, ErrWrongLayout, a.hdr.Layout)
	}
	end := a.pos + BookRecordSize
	if end <= a.floor {
		return a.rewrite(r, end)
	}
	if end > a.limit {
		if err := a.reserve(end); err != nil {
			return err
		}
	}
	r.Put(a.mem[a.pos:end])
	a.pos = end
	a.maybeKick()
	return nil
}

// rewrite is WriteBook below the floor of a resumed file: store only what differs.
func (a *Appender) rewrite(r *BookRecord, end int64) error {
	if a.closed {
		return ErrClosed
	}
	var b [BookRecordSize]byte
	r.Put(b[:])
	if !bytes.Equal(b[:], a.mem[a.pos:end]) {
		copy(a.mem[a.pos:end], b[:])
		a.diverged++
	}
	a.pos = end
	return nil
}

// AppendBook writes and commits one canonical record.
func (a *Appender) AppendBook(r *BookRecord) error {
	if err := a.WriteBook(r); err != nil {
		return err
	}
	a.Commit()
	return nil
}

// AppendJournal writes and commits one raw journal frame.
func (a *Appender) AppendJournal(typeID, channel uint16, recvNs int64, payload []byte) error {
	if a.hdr.Layout != LayoutJournal {
		return fmt.Errorf("append to %s: %w: %s file", a.path, ErrWrongLayout, a.hdr.Layout)
	}
	if err := checkJournalAppend(typeID, len(payload)); err != nil {
		return fmt.Errorf("append to %s: %w", a.path, err)
	}
	fl := JournalFrameLen(len(payload))
	end := a.pos + fl
	if end > a.limit {
		if err := a.reserve(end); err != nil {
			return err
		}
	}
	b := a.mem[a.pos:end]
	putJournalFrameHeader(b, typeID, channel, recvNs, len(payload))
	n := copy(b[JournalFrameHeader:], payload)
	clear(b[JournalFrameHeader+n:])
	a.pos = end
	a.maybeKick()
	a.Commit()
	return nil
}

// Commit publishes everything written so far with one atomic store of the committed length.
func (a *Appender) Commit() {
	a.pub = a.pos
	if a.pos >= a.floor {
		a.floor = 0
		atomic.StoreUint64(a.committed, uint64(a.pos))
	}
}

// Rollback drops records written since the last Commit.
func (a *Appender) Rollback() {
	a.pos = a.pub
}

// Committed returns the committed length in bytes (header included).
func (a *Appender) Committed() int64 { return int64(atomic.LoadUint64(a.committed)) }

// Header returns the file's header as created (Committed is not kept current here).
func (a *Appender) Header() Header { return a.hdr }

// Path returns the file path.
func (a *Appender) Path() string { return a.path }

// GrowErr returns the last background growth error, if any (for example ENOSPC). The append
// that needs the space reports it too.
func (a *Appender) GrowErr() error {
	if e := a.growErr.Load(); e != nil {
		return *e
	}
	return nil
}

// Sync flushes committed bytes to the backing store (a no-op cost on tmpfs).
func (a *Appender) Sync() error {
	end := (a.Committed() + pageSize - 1) &^ (pageSize - 1)
	if err := unix.Msync(a.mem[:end], unix.MS_SYNC); err != nil {
		return fmt.Errorf("msync %s: %w", a.path, err)
	}
	return nil
}

// Seal marks the file immutable, trims it to its committed length, syncs it and closes the
// appender. Readers see Sealed and stop waiting for growth. The file is trimmed before the
// sealed bit is set, so a sealed file's size always equals its committed length.
func (a *Appender) Seal() error {
	if a.closed {
		return ErrClosed
	}
	a.Rollback()
	return a.close(true)
}

// Close trims the file to its committed length and releases the mapping without sealing;
// OpenAppender can resume it. Uncommitted writes are dropped.
func (a *Appender) Close() error {
	if a.closed {
		return nil
	}
	return a.close(false)
}

func (a *Appender) close(seal bool) error {
	a.closed = true
	a.limit = -1 // every later append takes the slow path and sees ErrClosed
	close(a.stop)
	a.wg.Wait() // the grower must not extend the file again after the trim
	return closeWriter(a.path, a.f, a.committed, a.state, a.pub, seal, func() error {
		err := unix.Munmap(a.mem)
		a.mem = nil
		if err != nil {
			return fmt.Errorf("munmap %s: %w", a.path, err)
		}
		return nil
	})
}

// closeWriter ends a writer of path: the file is trimmed to its committed length (a seal
// publishes pub first: when a resumed file held more, what was regenerated is the file) and,
// on seal, marked sealed; release then drops the writer's mapping, a sealed file is fsynced
// (the mapping's dirty pages belong to the file: fsync writes them and the metadata) and f
// is closed. Every step runs; the errors are joined.
func closeWriter(path string, f *os.File, committed *uint64, state *uint32, pub int64, seal bool, release func() error) error {
	c := int64(atomic.LoadUint64(committed))
	if seal && pub != c {
		c = pub
		atomic.StoreUint64(committed, uint64(c))
	}
	var errs []error
	if err := f.Truncate(c); err != nil {
		errs = append(errs, fmt.Errorf("truncate %s: %w", path, err))
	}
	if seal && len(errs) == 0 {
		atomic.StoreUint32(state, atomic.LoadUint32(state)|stateSealed)
	}
	if err := release(); err != nil {
		errs = append(errs, err)
	}
	if seal {
		if err := f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("fsync %s: %w", path, err))
		}
	}
	if err := f.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// createWithHeader creates path holding only header h. The file appears under its final
// name only once its header is complete and durable (written under a temporary name, then
// linked), so a crash never leaves a headerless file; it fails if path exists, so two
// writers never share a file. reserve, when above the header's size, is allocated
// (fallocate) before the name appears. On any error nothing is left under path or under a
// temporary name. The returned file is open for writing.
func createWithHeader(path string, h Header, reserve int64) (*os.File, error) {
	hb, err := h.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("create %s: %w", path, os.ErrExist)
	}
	tmp, err := fileutil.CreateTemp(path)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	fail := func(what string, err error) (*os.File, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("create %s: %s%w", path, what, err)
	}
	// CreateTemp makes 0600 files; partitions are for every reader on the host.
	if err := tmp.Chmod(0o644); err != nil {
		return fail("", err)
	}
	if _, err := tmp.WriteAt(hb, 0); err != nil {
		return fail("write header: ", err)
	}
	if reserve > int64(len(hb)) {
		if err := unix.Fallocate(int(tmp.Fd()), 0, 0, reserve); err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
			return fail("allocate: ", err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return fail("sync: ", err)
	}
	// link fails if path appeared meanwhile.
	if err := os.Link(tmp.Name(), path); err != nil {
		return fail("", err)
	}
	os.Remove(tmp.Name())
	// The new name must survive a power cut before anything refers to it.
	if err := fileutil.SyncDir(filepath.Dir(path)); err != nil {
		tmp.Close()
		os.Remove(path)
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return tmp, nil
}

// openWithHeader opens path (flag: os.O_RDONLY or os.O_RDWR) and reads its header; it
// returns the file, the header and the file's size.
func openWithHeader(path string, flag int) (*os.File, Header, int64, error) {
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, Header{}, 0, fmt.Errorf("open %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Header{}, 0, fmt.Errorf("open %s: %w", path, err)
	}
	h, err := ReadHeader(f, st.Size(), path)
	if err != nil {
		f.Close()
		return nil, Header{}, 0, err
	}
	return f, h, st.Size(), nil
}

// ReadHeaderFile reads the header of the .q file at path.
func ReadHeaderFile(path string) (Header, error) {
	f, h, _, err := openWithHeader(path, os.O_RDONLY)
	if err != nil {
		return Header{}, err
	}
	f.Close()
	return h, nil
}
