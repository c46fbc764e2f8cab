package fs

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/tiers"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/hanwen/go-fuse/v2/splice"
	"golang.org/x/sys/unix"
)

// NPYName is the virtual file shown next to each book.q.
const NPYName = "book.npy"

// npyDescr is the structured dtype of canonical book records, field for field
// python/chronicle_q.py's BOOK_DTYPE (docs/format/q.md).
const npyDescr = "[('type_id', '<u2'), ('flags', '<u2'), ('symbol_id', '<u4'), " +
	"('ts_exchange', '<i8'), ('ts_recv', '<i8'), ('seq', '<u8'), " +
	"('price', '<i8'), ('qty', '<i8'), ('aux0', '<i8'), ('aux1', '<i8')]"

const (
	npyMagic = "\x93NUMPY"
	// npyAlign: numpy aligns the data of the files it writes to 64 bytes; so do we.
	npyAlign = 64
	// npyMaxIdentity: numpy.load refuses headers above 10000 bytes unless told otherwise, so
	// the header only takes the book's own header size (an identity offset mapping) up to here.
	npyMaxIdentity   = 8192
	maxRecordsDigits = 19 // the longest int64
)

func npyDict(records int64) string {
	return "{'descr': " + npyDescr + ", 'fortran_order': False, 'shape': (" + strconv.FormatInt(records, 10) + ",), }"
}

// npyDataOffset is where book.npy's records start for a book whose header has headerSize
// bytes. It never depends on the record count, so a growing book's records never move.
// When it can, it equals headerSize, which makes book.npy offset o the same byte as book.q
// offset o for every record.
func npyDataOffset(headerSize int64) int64 {
	need := int64(len(npyMagic)+2+2) + int64(len(npyDict(0))) + maxRecordsDigits + 1
	need = (need + npyAlign - 1) / npyAlign * npyAlign
	if headerSize >= need && headerSize <= npyMaxIdentity && headerSize%npyAlign == 0 {
		return headerSize
	}
	return need
}

// npyHeader returns the dataOff bytes of an NPY header describing records book records:
// magic, version, header length, the dict, space padding and a newline (NPY format 1.0, or
// 2.0 when the header does not fit a u16 length).
func npyHeader(records, dataOff int64) ([]byte, error) {
	dict := npyDict(records)
	pre := int64(len(npyMagic) + 2 + 2)
	major := byte(1)
	if dataOff-pre > 0xffff {
		pre, major = int64(len(npyMagic)+2+4), 2
	}
	hlen := dataOff - pre
	if records < 0 || hlen < int64(len(dict))+1 || dataOff%npyAlign != 0 {
		return nil, fmt.Errorf("npy header for %d records in %d bytes: does not fit", records, dataOff)
	}
	b := make([]byte, dataOff)
	copy(b, npyMagic)
	b[6], b[7] = major, 0
	if major == 1 {
		binary.LittleEndian.PutUint16(b[8:], uint16(hlen))
	} else {
		binary.LittleEndian.PutUint32(b[8:], uint32(hlen))
	}
	n := copy(b[pre:], dict)
	copy(b[pre+int64(n):], strings.Repeat(" ", int(hlen)-n-1))
	b[dataOff-1] = '\n'
	return b, nil
}

// npyView serves book.npy over an open book: the header, then the book's records at a
// fixed offset shift. The header's record count is taken once, when the view is made, so
// one open file always describes an array no longer than the file; the records after it
// stay readable (a growing book's size moves on).
type npyView struct {
	book    tiers.Handle
	hs      int64 // book header size
	dataOff int64 // npy data offset
	hdr     []byte
	// file is the book's local file (hot and warm), which reads past the header are
	// answered from without copying through the daemon; nil for a book the daemon decodes
	// (cold, remote).
	file *os.File
	st   *stats

	mu   sync.Mutex
	maps [][]byte // mappings of file for replies too large to splice, newest last
}

func newNPYView(book tiers.Handle, hs, committed int64, st *stats) (*npyView, error) {
	off := npyDataOffset(hs)
	hdr, err := npyHeader((committed-hs)/format.BookRecordSize, off)
	if err != nil {
		return nil, err
	}
	v := &npyView{book: book, hs: hs, dataOff: off, hdr: hdr, st: st}
	if l, ok := book.(tiers.Local); ok {
		v.file = l.LocalFile()
	}
	return v, nil
}

// npySize is the size of book.npy for a book of committed bytes with a header of hs bytes.
func npySize(hs, committed int64) int64 { return npyDataOffset(hs) + committed - hs }

// spliceMax is the largest reply go-fuse splices: it grows a pipe to the reply, its
// 16-byte header and one more page, never past /proc/sys/fs/pipe-max-size (1 MiB unless
// raised), so with the default a 1 MiB reply does not fit.
var spliceMax = splice.MaxPipeSize() - os.Getpagesize() - int(unsafe.Sizeof(fuse.OutHeader{}))

// readResult answers a read of book.npy. Past the header, a local book's bytes are never
// copied through the daemon: a reply that fits a pipe is spliced from the tier file (the
// kernel takes its page-cache pages into a pipe and copies them once into the reply), a
// larger one is written from a read-only mapping of the file (the kernel copies once from
// the same pages). A pread into dest and a write of it would copy every byte twice. The
// header's reply (the first), and cold and remote books, are read into dest.
func (v *npyView) readResult(dest []byte, off int64) (fuse.ReadResult, int, error) {
	if v.file != nil && off >= v.dataOff {
		bo := v.hs + off - v.dataOff
		n := min(int64(len(dest)), v.book.Size()-bo)
		switch {
		case n <= 0:
			return fuse.ReadResultData(nil), 0, nil
		case int(n) <= spliceMax:
			v.st.npySplice.Add(1)
			// The descriptor outlives the reply: the kernel sends RELEASE only after every
			// request of the open file has been answered.
			return fuse.ReadResultFd(v.file.Fd(), bo, int(n)), int(n), nil
		}
		if m, err := v.mapping(bo + n); err == nil {
			v.st.npyMapped.Add(1)
			return fuse.ReadResultVector([][]byte{m[bo : bo+n]}), int(n), nil
		}
		// No mapping (address space, a file system without mmap): copy.
	}
	return readerReplies{v}.readResult(dest, off)
}

// mapping returns a read-only mapping of the book's file covering [0, end). A book that
// grows past the newest mapping gets a larger one; the older ones stay mapped until close,
// since replies written from them may still be in flight. Reading a mapping past the end of
// the file makes the reply's write fail with EFAULT, never a SIGBUS in the daemon: only
// the kernel touches these pages.
func (v *npyView) mapping(end int64) ([]byte, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.maps) > 0 {
		if m := v.maps[len(v.maps)-1]; int64(len(m)) >= end {
			return m, nil
		}
	}
	fi, err := v.file.Stat()
	if err != nil {
		return nil, err
	}
	size := max(fi.Size(), end)
	if !v.book.Sealed() {
		size += size / 4 // room to grow before the next mapping
	}
	m, err := unix.Mmap(int(v.file.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	v.maps = append(v.maps, m)
	return m, nil
}

// close unmaps the file (the handle's release: no reply is in flight any more).
func (v *npyView) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, m := range v.maps {
		unix.Munmap(m)
	}
	v.maps = nil
}

func (v *npyView) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", NPYName, off)
	}
	n := 0
	if off < v.dataOff {
		n = copy(p, v.hdr[off:])
	}
	if n == len(p) {
		return n, nil
	}
	m, err := v.book.ReadAt(p[n:], v.hs+off+int64(n)-v.dataOff)
	n += m
	if err == io.EOF && n == len(p) {
		err = nil
	}
	return n, err
}
