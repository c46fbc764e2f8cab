package bookview

import (
	"io"

	"github.com/chronicle/chronicle/fault"
	"github.com/chronicle/chronicle/format"
)

// chunkBytes is the read size of scans: reads are aligned to it in file offsets, so that
// each one of a cold or remote book is one whole 1 MiB frame (decoded straight into the
// buffer by qzst's direct reads).
const chunkBytes = 1 << 20

// bufs is a bounded free list of chunk buffers: every scan takes two, and a collection
// must not turn each into fresh page faults (see docs/chronicle-fs.md on sync.Pool).
var bufs = make(chan []byte, 16)

func getBuf() []byte {
	select {
	case b := <-bufs:
		return b
	default:
		return make([]byte, chunkBytes)
	}
}

func putBuf(b []byte) {
	select {
	case bufs <- b:
	default:
	}
}

type bytesReader interface{ Bytes() []byte }

// scanner reads records [lo, hi) of a book in order, a chunk at a time, the next chunks
// read on other goroutines while the caller works on the current one (so decoding a cold
// book and replaying it share the cores).
type scanner struct {
	recs []format.BookRecord // current chunk
	raw  []byte              // its bytes
	next int64               // record number of recs[0] after Next
	err  error

	// mapped source: one window, no copies
	mapped bool
	done   bool

	src      io.ReaderAt
	name     string
	dataOff  int64
	chunk    int64 // read size, file-aligned: chunkBytes, or smallChunk for a few rows
	hi       int64
	nextRead int64        // first record not yet asked for
	queue    []chan chunk // reads in flight, in order
	cur      []byte
}

// ahead is how many chunks a scan reads ahead of its reader: two keep both cores decoding
// a cold or remote book while the reader replays.
const ahead = 2

type chunk struct {
	buf []byte
	lo  int64
	n   int64
	err error
}

// smallChunk is the read size of scans for a few rows: a cold frame is then decoded only
// as far as the rows need (qzst decodes a frame up to the bytes asked for), where a whole
// frame is decoded for a read that covers it.
const smallChunk = 64 << 10

func (p *Partition) newScanner(lo, hi int64) *scanner {
	return p.newScannerChunk(lo, hi, chunkBytes)
}

func (p *Partition) newScannerChunk(lo, hi, chunk int64) *scanner {
	s := &scanner{src: p.src, name: p.name, dataOff: p.hdr.DataStart(), chunk: chunk, nextRead: lo, hi: hi, next: lo}
	if m, ok := p.src.(bytesReader); ok && int64(len(m.Bytes())) >= s.dataOff+hi*format.BookRecordSize {
		raw := m.Bytes()[s.dataOff+lo*format.BookRecordSize : s.dataOff+hi*format.BookRecordSize]
		if recs, ok := format.BookRecords(raw); ok {
			s.recs, s.raw, s.mapped = recs, raw, true
			return s
		}
	}
	return s
}

// chunkAt is how many records the read starting at record lo takes: up to the next
// boundary of the file at a multiple of the chunk size (at least one record).
func (s *scanner) chunkAt(lo int64) int64 {
	off := s.dataOff + lo*format.BookRecordSize
	end := (off/s.chunk + 1) * s.chunk
	return min(max((end-off)/format.BookRecordSize, 1), s.hi-lo)
}

func (s *scanner) read(lo, n int64) chunk {
	buf := getBuf()
	got, err := s.src.ReadAt(buf[:n*format.BookRecordSize], s.dataOff+lo*format.BookRecordSize)
	if int64(got) < n*format.BookRecordSize {
		if err == nil || err == io.EOF {
			err = fault.At(s.name, s.dataOff+lo*format.BookRecordSize+int64(got), format.ErrTruncated, "file ends before its committed length")
		}
		return chunk{buf: buf, lo: lo, err: err}
	}
	return chunk{buf: buf, lo: lo, n: n}
}

// schedule keeps up to ahead reads in flight.
func (s *scanner) schedule() {
	for len(s.queue) < ahead && s.nextRead < s.hi {
		lo, n := s.nextRead, s.chunkAt(s.nextRead)
		s.nextRead += n
		ch := make(chan chunk, 1)
		go func() { ch <- s.read(lo, n) }()
		s.queue = append(s.queue, ch)
	}
}

// Next moves to the next chunk of records; false at the end or on an error.
func (s *scanner) Next() bool {
	if s.mapped {
		if s.done {
			s.recs = nil
			return false
		}
		s.done = true
		return len(s.recs) > 0
	}
	if s.cur != nil {
		putBuf(s.cur)
		s.cur = nil
	}
	if s.err != nil {
		s.recs = nil
		return false
	}
	s.schedule()
	if len(s.queue) == 0 {
		s.recs = nil
		return false
	}
	c := <-s.queue[0]
	s.queue = s.queue[1:]
	if c.err != nil {
		putBuf(c.buf)
		s.err, s.recs = c.err, nil
		return false
	}
	s.schedule()
	s.cur = c.buf
	data := c.buf[:c.n*format.BookRecordSize]
	recs, ok := format.BookRecords(data)
	if !ok {
		recs = make([]format.BookRecord, c.n)
		for i := range recs {
			recs[i] = format.DecodeBook(data[i*format.BookRecordSize:])
		}
	}
	s.recs, s.raw, s.next = recs, data, c.lo
	return true
}

// Err is the error that stopped the scan.
func (s *scanner) Err() error { return s.err }

// Close waits for the reads in flight and returns the buffers.
func (s *scanner) Close() {
	for _, ch := range s.queue {
		putBuf((<-ch).buf)
	}
	s.queue = nil
	if s.cur != nil {
		putBuf(s.cur)
		s.cur = nil
	}
}
