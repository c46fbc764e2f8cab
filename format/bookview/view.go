package bookview

import (
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookindex"
)

// Kind is a kind of view.
type Kind uint8

const (
	KindTop    Kind = iota + 1 // topN.npy: the top N levels after every depth update
	KindTrades                 // trades.npy: the trade records
	KindBBO                    // bbo.npy: the best bid/offer records
)

// View is one file of a partition's views/ directory (docs/format/views.md).
type View struct {
	Kind Kind
	N    int // levels a side, for KindTop
}

// Names of the typed views.
const (
	TradesName = "trades.npy"
	BBOName    = "bbo.npy"
)

// ParseName returns the view a file name stands for: "top10.npy", "trades.npy",
// "bbo.npy". A top-N name must spell N plainly (no sign, no leading zero).
func ParseName(name string) (View, bool) {
	switch name {
	case TradesName:
		return View{Kind: KindTrades}, true
	case BBOName:
		return View{Kind: KindBBO}, true
	}
	d, ok := strings.CutPrefix(name, "top")
	if !ok {
		return View{}, false
	}
	d, ok = strings.CutSuffix(d, ".npy")
	if !ok || d == "" || d[0] == '0' || len(d) > 4 {
		return View{}, false
	}
	n, err := strconv.Atoi(d)
	if err != nil || n < 1 || n > MaxDepth || strconv.Itoa(n) != d {
		return View{}, false
	}
	return View{Kind: KindTop, N: n}, true
}

// Name is the view's file name.
func (v View) Name() string {
	switch v.Kind {
	case KindTrades:
		return TradesName
	case KindBBO:
		return BBOName
	}
	return "top" + strconv.Itoa(v.N) + ".npy"
}

// RowSize is the bytes of one row: 32 + 32 N for top N, 64 (a record) for the others.
func (v View) RowSize() int64 {
	if v.Kind == KindTop {
		return 32 + 32*int64(v.N)
	}
	return format.BookRecordSize
}

const common = "('type_id', '<u2'), ('flags', '<u2'), ('symbol_id', '<u4'), ('ts_exchange', '<i8'), ('ts_recv', '<i8'), ('seq', '<u8'), "

// Descr is the NPY dtype description of a row.
func (v View) Descr() string {
	switch v.Kind {
	case KindTrades:
		return "[" + common + "('price', '<i8'), ('qty', '<i8'), ('first_trade_id', '<i8'), ('last_trade_id', '<i8')]"
	case KindBBO:
		return "[" + common + "('bid_price', '<i8'), ('bid_qty', '<i8'), ('ask_price', '<i8'), ('ask_qty', '<i8')]"
	}
	n := strconv.Itoa(v.N)
	return "[('ts_exchange', '<i8'), ('ts_recv', '<i8'), ('seq', '<u8'), ('flags', '<u4'), ('reason', '<u4'), " +
		"('bid_price', '<i8', (" + n + ",)), ('bid_qty', '<i8', (" + n + ",)), ('ask_price', '<i8', (" + n + ",)), ('ask_qty', '<i8', (" + n + ",))]"
}

// count is how many rows of the view come before an anchor.
func (v View) count(a bookindex.Anchor) uint64 {
	switch v.Kind {
	case KindTrades:
		return a.Trades
	case KindBBO:
		return a.BBO
	}
	return a.Depth
}

const (
	npyMagic  = "\x93NUMPY"
	npyAlign  = 64
	maxDigits = 19
)

func (v View) dict(rows int64) string {
	return "{'descr': " + v.Descr() + ", 'fortran_order': False, 'shape': (" + strconv.FormatInt(rows, 10) + ",), }"
}

// DataOffset is where the rows start: an NPY 1.0 header sized for a 19-digit row count
// and padded to 64 bytes, so it never depends on the count (a growing view's rows never
// move).
func (v View) DataOffset() int64 {
	need := int64(len(npyMagic)+4) + int64(len(v.dict(0))) + maxDigits + 1
	return (need + npyAlign - 1) / npyAlign * npyAlign
}

// Header returns the NPY header (DataOffset bytes) of a view of rows rows.
func (v View) Header(rows int64) []byte {
	off := v.DataOffset()
	b := make([]byte, off)
	copy(b, npyMagic)
	b[6], b[7] = 1, 0
	binary.LittleEndian.PutUint16(b[8:], uint16(off-10))
	n := copy(b[10:], v.dict(rows))
	for i := 10 + n; i < len(b)-1; i++ {
		b[i] = ' '
	}
	b[off-1] = '\n'
	return b
}

// Size is the file size of a view of rows rows.
func (v View) Size(rows int64) int64 { return v.DataOffset() + rows*v.RowSize() }

// Rows is the number of rows of a view over the records served.
func (p *Partition) Rows(v View) int64 { return int64(v.count(p.st.Load().events.Totals())) }

// A stretch between snapshot runs with more depth updates than fit in segmentBytes of
// rows (and never more than segmentRows) is served in parts (variables for tests).
var (
	segmentRows  int64 = 16384
	segmentBytes int64 = 4 << 20
)

// partRows is the largest number of rows of one top-N segment.
func (v View) partRows() int64 { return max(1, min(segmentRows, segmentBytes/v.RowSize())) }

// MaxSegmentBytes is the most bytes one segment of v renders to.
func (v View) MaxSegmentBytes() int64 {
	if v.Kind == KindTop {
		return v.partRows() * v.RowSize()
	}
	return bookindex.DefaultStride * v.RowSize()
}

// Segment is a stretch of a view's rows that is rendered as a whole: for top N the rows
// between two snapshot runs (in parts of at most segmentRows), for trades and bbo the
// rows between two anchors of the events index (at most its stride of records). Rows
// never change once written, so Lo and Hi name its content for good.
type Segment struct {
	View   View
	Lo, Hi int64 // rows
	from   int64 // record the replay starts at (an anchor)
	base   int64 // rows before that record
	to     int64 // record the stretch ends at
}

// Segment returns the segment holding row (which must be below Rows).
func (p *Partition) Segment(v View, row int64) (Segment, error) {
	ev := p.st.Load().events
	tot := int64(v.count(ev.Totals()))
	if row < 0 || row >= tot {
		return Segment{}, fmt.Errorf("%s: %w: row %d of %s, which has %d", p.name, ErrBadArgument, row, v.Name(), tot)
	}
	top := v.Kind == KindTop
	j := ev.Seek(uint64(row), false, v.count)
	// Top-N rows replay from a valid run (it sets the whole state; after an invalid one the
	// reason depends on what came before), or from the start, to the next valid run.
	const valid = bookindex.AnchorSnapshot | bookindex.AnchorValid
	for top && j > 0 && ev.Anchors[j].Flags&valid != valid {
		j--
	}
	a := ev.Anchors[j]
	k := j + 1
	for top && k < len(ev.Anchors)-1 && ev.Anchors[k].Flags&valid != valid {
		k++
	}
	b := ev.Anchors[k]
	seg := Segment{View: v, Lo: int64(v.count(a)), Hi: int64(v.count(b)), from: int64(a.Record), base: int64(v.count(a)), to: int64(b.Record)}
	if top {
		pr := v.partRows()
		part := (row - seg.Lo) / pr
		seg.Lo += part * pr
		seg.Hi = min(seg.Hi, seg.Lo+pr)
	}
	return seg, nil
}

// Render writes the rows of a segment into dst, which must hold (Hi-Lo)*RowSize bytes.
func (p *Partition) Render(seg Segment, dst []byte) error {
	v := seg.View
	if int64(len(dst)) != (seg.Hi-seg.Lo)*v.RowSize() {
		return fmt.Errorf("%w: render %d rows into %d bytes", ErrBadArgument, seg.Hi-seg.Lo, len(dst))
	}
	if seg.Hi == seg.Lo {
		return nil
	}
	if v.Kind != KindTop {
		return p.renderTyped(seg, dst)
	}
	return p.renderTop(seg, dst)
}

func (p *Partition) renderTyped(seg Segment, dst []byte) error {
	want := format.TypeTrade
	if seg.View.Kind == KindBBO {
		want = format.TypeBBO
	}
	s := p.newScanner(seg.from, seg.to)
	defer s.Close()
	row, out := seg.base, 0
	for s.Next() {
		for i := range s.recs {
			if s.recs[i].TypeID != want {
				continue
			}
			if row >= seg.Lo {
				copy(dst[out:out+format.BookRecordSize], s.raw[i*format.BookRecordSize:])
				out += format.BookRecordSize
			}
			row++
			if row == seg.Hi {
				return nil
			}
		}
	}
	if err := s.Err(); err != nil {
		return err
	}
	return fmt.Errorf("%s: %w: %s rows %d..%d not found in records %d..%d (the events index does not match the book)",
		p.name, bookindex.ErrCorrupt, seg.View.Name(), row, seg.Hi, seg.from, seg.to)
}

// ckKey names a replay state: the anchor record a replay started at and the rows done.
type ckKey struct{ from, row int64 }

// checkpoint is a replay state kept at a sub-segment boundary, so that reading a long
// stretch between snapshot runs in order does not replay it from its run again and again.
type checkpoint struct {
	r   *replayer
	pos int64 // next record
}

const maxCheckpoints = 32

func (p *Partition) getCheckpoint(k ckKey) *checkpoint {
	p.ckMu.Lock()
	defer p.ckMu.Unlock()
	return p.ck[k]
}

func (p *Partition) putCheckpoint(k ckKey, c *checkpoint) {
	p.ckMu.Lock()
	defer p.ckMu.Unlock()
	if _, ok := p.ck[k]; ok {
		return
	}
	if len(p.ckQ) >= maxCheckpoints {
		delete(p.ck, p.ckQ[0])
		p.ckQ = p.ckQ[1:]
	}
	p.ck[k], p.ckQ = c, append(p.ckQ, k)
}

func (p *Partition) renderTop(seg Segment, dst []byte) error {
	st := p.st.Load()
	// Read no further than the rows need (a scan reads ahead, and a cold frame read past
	// them is decoded for nothing): up to the checkpoint after the segment's last row.
	end := st.rowsEnd(seg.Hi, seg.to)
	// A few rows (a small read) are read in small pieces: their cold frame is decoded only
	// as far as they are.
	chunk := int64(chunkBytes)
	if (seg.Hi-seg.Lo)*seg.View.RowSize() <= smallRead {
		chunk = smallChunk
	}
	var r *replayer
	var s *scanner
	var dc depthCheck
	row, i := seg.base, 0
	switch c := p.getCheckpoint(ckKey{seg.from, seg.Lo}); {
	case seg.Lo == seg.base:
		r, s, dc = newReplayer(), p.newScannerChunk(seg.from, end, chunk), st.depthCheck(seg.from)
	case c != nil:
		r, s, dc, row = c.r.clone(), p.newScannerChunk(c.pos, end, chunk), st.depthCheck(c.pos), seg.Lo
	default:
		// The same scan goes on from the first row: no record is read twice.
		var err error
		if r, s, i, dc, err = p.fastForward(st, seg, end, chunk); err != nil {
			return err
		}
		row = seg.Lo
	}
	defer s.Close()
	size := seg.View.RowSize()
	n := seg.View.N
	out := dst
	for {
		for ; i < len(s.recs); i++ {
			if s.next+int64(i) == dc.next {
				if err := dc.at(p, row); err != nil {
					return err
				}
			}
			rec := &s.recs[i]
			if !r.apply(rec) {
				continue
			}
			if row >= seg.Lo {
				putRow(out[:size], r, rec.ExchTs, n)
				out = out[size:]
			}
			row++
			if row == seg.Hi {
				if seg.Hi-seg.Lo == seg.View.partRows() { // a full part: the next one may follow
					p.putCheckpoint(ckKey{seg.from, row}, &checkpoint{r: r, pos: s.next + int64(i) + 1})
				}
				return nil
			}
		}
		if !s.Next() {
			break
		}
		i = 0
	}
	if err := s.Err(); err != nil {
		return err
	}
	return fmt.Errorf("%s: %w: %s rows %d..%d not found in records %d..%d (the events index does not match the book)",
		p.name, bookindex.ErrCorrupt, seg.View.Name(), row, seg.Hi, seg.from, seg.to)
}

// fastForward replays a segment's stretch up to its first row with the final-quantity
// book (lww.go: a store per level, several times cheaper than keeping the order), then
// orders that book once: a row in the middle of a long stretch costs little more than the
// rows of its part. The replay starts at the last checkpoint of the book index within the
// stretch before that row (its state is the replay's from the stretch's run), so it reads
// less than a stride of records. It returns the scan of records up to end, at the record
// after that row's update (recs[i]), and the check of the checkpoints still ahead.
func (p *Partition) fastForward(st *state, seg Segment, end, chunk int64) (*replayer, *scanner, int, depthCheck, error) {
	r := newReplayer()
	r.lww = getLWW()
	from, row := seg.from, seg.base
	if b := st.books; b != nil {
		if k := b.ByDepth(uint64(seg.Lo), uint64(seg.from)); k > 0 && int64(b.Entries[k].Record) > seg.from {
			bs, err := b.State(k)
			if err != nil {
				return nil, nil, 0, depthCheck{}, err
			}
			r, from, row = fromState(bs, true), int64(b.Entries[k].Record), int64(b.Entries[k].Depth)
		}
	}
	s := p.newScannerChunk(from, end, chunk)
	dc := st.depthCheck(from)
	if row == seg.Lo { // at the checkpoint itself
		r.toOrdered()
		if !s.Next() && s.Err() != nil {
			s.Close()
			return nil, nil, 0, depthCheck{}, s.Err()
		}
		return r, s, 0, dc, nil
	}
	for s.Next() {
		for i := range s.recs {
			if s.next+int64(i) == dc.next {
				if err := dc.at(p, row); err != nil {
					s.Close()
					return nil, nil, 0, depthCheck{}, err
				}
			}
			if !r.apply(&s.recs[i]) {
				continue
			}
			if row++; row == seg.Lo {
				r.toOrdered()
				return r, s, i + 1, dc, nil
			}
		}
	}
	s.Close()
	if err := s.Err(); err != nil {
		return nil, nil, 0, depthCheck{}, err
	}
	return nil, nil, 0, depthCheck{}, fmt.Errorf("%s: %w: %s row %d not found in records %d..%d (the events index does not match the book)",
		p.name, bookindex.ErrCorrupt, seg.View.Name(), seg.Lo, seg.from, seg.to)
}

// putRow encodes a top-N row of the replay's state.
func putRow(b []byte, r *replayer, ts int64, n int) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], uint64(ts))
	le.PutUint64(b[8:], uint64(r.lastRecv))
	le.PutUint64(b[16:], r.lastSeq)
	flags, reason := r.rowFlags()
	le.PutUint32(b[24:], flags)
	le.PutUint32(b[28:], reason)
	bp, bq, ap, aq := b[32:32+8*n], b[32+8*n:32+16*n], b[32+16*n:32+24*n], b[32+24*n:32+32*n]
	if !r.known {
		clear(b[32:])
		return
	}
	putSide(&r.book.bids, bp, bq, n)
	putSide(&r.book.asks, ap, aq, n)
}

func putSide(s *side, price, qty []byte, n int) {
	le := binary.LittleEndian
	k := 0
	s.each(n, func(p, q int64) bool {
		le.PutUint64(price[8*k:], uint64(p))
		le.PutUint64(qty[8*k:], uint64(q))
		k++
		return true
	})
	clear(price[8*k:])
	clear(qty[8*k:])
}

// SegmentSource supplies a segment's rendered rows: a cache (the mount's) or a plain
// renderer. release is called when the caller is done with the bytes.
type SegmentSource interface {
	Segment(p *Partition, seg Segment) (data []byte, release func(), err error)
}

// CachedSource is a SegmentSource that can say whether a segment is rendered already,
// without rendering it.
type CachedSource interface {
	Cached(p *Partition, seg Segment) (data []byte, release func(), ok bool)
}

// Direct renders every segment asked for, with no cache.
type Direct struct{}

func (Direct) Segment(p *Partition, seg Segment) ([]byte, func(), error) {
	b := make([]byte, (seg.Hi-seg.Lo)*seg.View.RowSize())
	if err := p.Render(seg, b); err != nil {
		return nil, nil, err
	}
	return b, func() {}, nil
}

// smallRead is the largest read served by rendering only the rows it covers.
const smallRead = 64 << 10

// ViewFile is an open view: the NPY header with the row count at open, then every row
// (a growing partition's rows past that count stay readable, up to Size).
type ViewFile struct {
	p    *Partition
	v    View
	hdr  []byte
	rows int64
	src  SegmentSource
}

// OpenView opens one of the partition's views; src nil renders without a cache.
func (p *Partition) OpenView(v View, src SegmentSource) *ViewFile {
	if src == nil {
		src = Direct{}
	}
	rows := p.Rows(v)
	return &ViewFile{p: p, v: v, hdr: v.Header(rows), rows: rows, src: src}
}

// Rows is the row count of the header.
func (f *ViewFile) Rows() int64 { return f.rows }

// Size is the file's size now: the header and every row of the records served.
func (f *ViewFile) Size() int64 { return f.v.Size(f.p.Rows(f.v)) }

// ReadAt implements io.ReaderAt.
func (f *ViewFile) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", f.v.Name(), off)
	}
	size := f.Size()
	if off >= size {
		return 0, io.EOF
	}
	want := b
	if int64(len(want)) > size-off {
		want = want[:size-off]
	}
	n := 0
	if off < int64(len(f.hdr)) {
		n = copy(want, f.hdr[off:])
	}
	rs := f.v.RowSize()
	for n < len(want) {
		pos := off + int64(n) - int64(len(f.hdr))
		seg, err := f.p.Segment(f.v, pos/rs)
		if err != nil {
			return n, err
		}
		if small := len(want)-n <= smallRead; small && f.v.Kind == KindTop {
			// A small read (a row, a page) takes its whole segment when that is rendered
			// already, else renders only its rows after a fast-forward from the stretch's
			// run; reads in order take whole segments and checkpoints.
			if c, ok := f.src.(CachedSource); ok {
				if data, release, ok := c.Cached(f.p, seg); ok {
					n += copy(want[n:], data[pos-seg.Lo*rs:])
					release()
					continue
				}
			}
			seg.Lo, seg.Hi = pos/rs, min(seg.Hi, (off+int64(len(want))-int64(len(f.hdr))+rs-1)/rs)
		}
		data, release, err := f.src.Segment(f.p, seg)
		if err != nil {
			return n, err
		}
		n += copy(want[n:], data[pos-seg.Lo*rs:])
		release()
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}
