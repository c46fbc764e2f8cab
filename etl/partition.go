package etl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/bookindex"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/fileutil"
	"github.com/chronicle/chronicle/internal/fileutil/vfs"
	"github.com/chronicle/chronicle/layout"
)

// Where a partition lives below the output root.
type partKind uint8

const (
	kindV1       partKind = iota // v1/{venue}/{symbol_code}/{date}/book.q
	kindUnmapped                 // unmapped/{venue}/{raw symbol}/{date}/book.q: no dim_symbol row
	kindLate                     // late/{venue}/{symbol_code}/{date}/book.q: events of a sealed partition
)

// Top-level directories of the streams kept outside v1/.
const (
	UnmappedDir = "unmapped"
	LateDir     = "late"
)

// partKey identifies one output file.
type partKey struct {
	Kind     partKind
	SymbolID uint32 // 0 for unmapped
	Raw      string // the raw symbol of an unmapped partition, "" otherwise
	Day      int64  // days since the epoch (UTC exchange date)
}

const dayNs = int64(24 * time.Hour)

// ErrPartition: an output partition the refinery cannot write or take over.
var ErrPartition = errors.New("partition")

func dayOf(ts int64) int64 {
	d := ts / dayNs
	if ts%dayNs < 0 {
		d--
	}
	return d
}

func dateString(day int64) string { return time.Unix(day*86400, 0).UTC().Format(layout.DateLayout) }

func dateNumber(day int64) uint32 {
	t := time.Unix(day*86400, 0).UTC()
	return uint32(t.Year()*10000 + int(t.Month())*100 + t.Day())
}

// writer is what a partition writes through: a format.Appender, or a verifier for a
// partition an earlier run already sealed.
type writer interface {
	WriteBook(*format.BookRecord) error
	Commit() error
	Pos() int64
	Sync() error
	Seal() error
	Close() error
	Diverged() int64
	// Writes is false for writers that write nothing: the verifier of a partition an
	// earlier run sealed, or the stand-in for one the tier manager has moved away.
	Writes() bool
}

// partStats is what meta.json reports, kept as records are written (and checkpointed).
type partStats struct {
	Counts       [8]int64 // records by type id (index 0: unknown ids)
	DepthUpdates int64
	Trades       int64
	BBO          int64
	Snapshots    int64
	BookInvalid  int64
	FirstTs      int64
	LastTs       int64
	HaveTs       bool
	Invalid      []meta.Invalid // the last one may be open (Open, To unset)
	Gaps         []meta.Gap
	Crossed      int64
	Checks       int64
	Mismatches   int64
	// Checksums of venues that send one, counted in the partition of the update.
	ChecksumChecks     int64
	ChecksumMismatches int64
	Segments           []string // journal segments that contributed, in order
	// CaptureFrom, when not 0: the symbol's capture begins in this partition, at this
	// exchange time (its first message).
	CaptureFrom int64
}

// partition is one open output file and its statistics.
type partition struct {
	key       partKey
	venue     string
	code      string // directory name: symbol_code as of the date, or the raw symbol
	raw       string
	versionID uint64
	dir       string
	// priceDec and qtyDec are the records' scales: the venue's, or the instrument's own
	// (scaled set) for venues whose instruments have one.
	priceDec, qtyDec uint8
	scaled           bool
	w                writer
	dayStart         int64
	dayEnd           int64
	created          int64
	st               partStats
	touched          bool               // records written since the last commit
	hasMeta          bool               // a meta.json was written by this process
	gone             bool               // sealed: no longer written
	sealing          bool               // index/ and meta.json final: a restart finishes the seal, never reopens it
	written          int64              // records written by this process, for the records_total metric
	bw               *format.BookWriter // p.w's writer when it writes (the fast path), else nil
}

// writeSlow writes through the writer interface a copy of the record (which escapes to the
// heap; the callers' records, passed by pointer, do not).
func (p *partition) writeSlow(r format.BookRecord) error { return p.w.WriteBook(&r) }

// setWriter sets the partition's writer.
func (p *partition) setWriter(w writer) {
	p.w, p.bw = w, nil
	if pw, ok := w.(pwrite); ok {
		p.bw = pw.BookWriter
	}
}

// levels writes the level records of one depth update: tmpl (type, symbol, times and
// ids) with each level's side, price and quantity, the last flagged (and crossed if the
// book crossed). The records are encoded straight into the writer's buffer, and the
// statistics count the event once. A venue that keeps its book to a depth (Kraken) passes
// the levels the update pushed out of it as trimB and trimA: each follows its side's levels
// as a delete. flags (FlagChecksum) go on every record of the event.
func (p *partition) levels(tmpl *format.BookRecord, bids, asks, trimB, trimA []levelT, flags uint16, crossed bool) error {
	n := len(bids) + len(asks) + len(trimB) + len(trimA)
	last := format.FlagLast
	if crossed {
		last |= format.FlagCrossed
	}
	if p.bw == nil || n == 0 {
		return p.levelsSlow(tmpl, [4][]levelT{bids, trimB, asks, trimA}, flags, last)
	}
	out, err := p.encodeLevels(tmpl, [4][]levelT{bids, trimB, asks, trimA}, flags)
	if err != nil {
		return err
	}
	// The last record of the event carries its end flags.
	d := out[len(out)-format.BookRecordSize:]
	binary.LittleEndian.PutUint16(d[2:], binary.LittleEndian.Uint16(d[2:])|last)
	st := &p.st
	st.DepthUpdates++
	if crossed {
		st.Crossed++
	}
	return nil
}

// snapshotLevels writes the level records of a snapshot run: tmpl with each level, flagged
// snapshot and by side.
func (p *partition) snapshotLevels(tmpl *format.BookRecord, bids, asks []levelT) error {
	if p.bw == nil {
		return p.levelsSlow(tmpl, [4][]levelT{bids, nil, asks, nil}, format.FlagSnapshot, 0)
	}
	_, err := p.encodeLevels(tmpl, [4][]levelT{bids, nil, asks, nil}, format.FlagSnapshot)
	return err
}

// encodeLevels reserves and encodes one level record per level of lists (bids, bids
// deleted, asks, asks deleted: the deleted ones with quantity 0; flags: base and the side),
// counting them in the statistics; it returns the records.
func (p *partition) encodeLevels(tmpl *format.BookRecord, lists [4][]levelT, base uint16) ([]byte, error) {
	n := len(lists[0]) + len(lists[1]) + len(lists[2]) + len(lists[3])
	if n == 0 {
		return nil, nil
	}
	out, err := p.bw.Reserve(n)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrPartition, p.path(), err)
	}
	// Eight stores a record, in the layout of docs/format/q.md (format.BookRecord.Put): the
	// first word (type, flags, symbol) per side, the others per event or per level.
	le := binary.LittleEndian
	b := out
	for side, lv := range lists {
		if len(lv) == 0 {
			continue
		}
		flags := base | format.FlagBid
		if side >= 2 {
			flags = base | format.FlagAsk
		}
		head := uint64(tmpl.TypeID) | uint64(flags)<<16 | uint64(tmpl.SymbolID)<<32
		keep := uint64(1<<64 - 1) // quantity mask: 0 for the deletes
		if side&1 == 1 {
			keep = 0
		}
		for _, l := range lv {
			d := b[:format.BookRecordSize:format.BookRecordSize]
			le.PutUint64(d[0:], head)
			le.PutUint64(d[8:], uint64(tmpl.ExchTs))
			le.PutUint64(d[16:], uint64(tmpl.RecvTs))
			le.PutUint64(d[24:], tmpl.Seq)
			le.PutUint64(d[32:], uint64(l.Price))
			le.PutUint64(d[40:], uint64(l.Qty)&keep)
			le.PutUint64(d[48:], uint64(tmpl.Aux0))
			le.PutUint64(d[56:], uint64(tmpl.Aux1))
			b = b[format.BookRecordSize:]
		}
	}
	p.touched = true
	p.written += int64(n)
	p.st.Counts[format.TypeLevel] += int64(n)
	p.noteTs(tmpl.ExchTs)
	return out, nil
}

// levelsSlow is levels and snapshotLevels one record at a time (writers that compare
// instead of writing, an update that changed no level): base flags on every record, last
// on the last.
func (p *partition) levelsSlow(tmpl *format.BookRecord, lists [4][]levelT, base, last uint16) error {
	rec := *tmpl
	n := len(lists[0]) + len(lists[1]) + len(lists[2]) + len(lists[3])
	if n == 0 && last != 0 {
		// An update that changed no level still advances the chain: one sideless record.
		rec.Flags, rec.Price, rec.Qty = base|last, 0, 0
		return p.write(&rec)
	}
	i := 0
	for side, lv := range lists {
		for _, l := range lv {
			i++
			rec.Flags, rec.Price, rec.Qty = base|format.FlagBid, l.Price, l.Qty
			if side >= 2 {
				rec.Flags = base | format.FlagAsk
			}
			if side&1 == 1 {
				rec.Qty = 0
			}
			if i == n {
				rec.Flags |= last
			}
			if err := p.write(&rec); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *partition) noteTs(ts int64) {
	st := &p.st
	if !st.HaveTs {
		st.FirstTs, st.LastTs, st.HaveTs = ts, ts, true
	} else {
		st.FirstTs, st.LastTs = min(st.FirstTs, ts), max(st.LastTs, ts)
	}
}

func (p *partition) path() string { return filepath.Join(p.dir, layout.BookName) }

func (p *partition) write(r *format.BookRecord) error {
	if p.bw != nil {
		b, err := p.bw.Reserve(1)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrPartition, p.path(), err)
		}
		r.Put(b)
	} else if err := p.writeSlow(*r); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrPartition, p.path(), err)
	}
	p.touched = true
	p.written++
	st := &p.st
	if int(r.TypeID) < len(st.Counts) {
		st.Counts[r.TypeID]++
	} else {
		st.Counts[0]++
	}
	switch r.TypeID {
	case format.TypeLevel:
		if r.Flags&(format.FlagSnapshot|format.FlagLast) == format.FlagLast {
			st.DepthUpdates++
			if r.Flags&format.FlagCrossed != 0 {
				st.Crossed++
			}
		}
	case format.TypeTrade:
		st.Trades++
	case format.TypeBBO:
		st.BBO++
	case format.TypeSnapshotBegin:
		st.Snapshots++
	case format.TypeBookInvalid:
		st.BookInvalid++
	}
	p.noteTs(r.ExchTs)
	return nil
}

func (p *partition) commit() error {
	if !p.touched {
		return nil
	}
	p.touched = false
	if err := p.w.Commit(); err != nil {
		return fmt.Errorf("%w: %w", ErrPartition, err)
	}
	return nil
}

// noteSegment records that the journal segment contributed records.
func (p *partition) noteSegment(name string) {
	if n := len(p.st.Segments); n == 0 || p.st.Segments[n-1] != name {
		p.st.Segments = append(p.st.Segments, name)
	}
}

// openInvalid starts an invalid interval at ts unless one is open.
func (p *partition) openInvalid(ts int64, reason int64) {
	if n := len(p.st.Invalid); n > 0 && p.st.Invalid[n-1].Open {
		return
	}
	ts = max(ts, p.dayStart)
	p.st.Invalid = append(p.st.Invalid, meta.Invalid{Interval: meta.Interval{From: meta.Time(ts)}, Reason: format.InvalidReasonName(reason), Open: true})
}

// invalidForMeta is the partition's invalid intervals as meta.json states them (docs/format/
// meta.md, "What the intervals cover"). In the partition where a symbol's capture begins,
// the day before it (its first message, or first record if earlier) was not captured, and
// the book has no snapshot from then on: the no_snapshot interval opened with the partition
// starts there, whichever message (a REST snapshot, another symbol's event) happened to
// come first in the journal; an empty one is left out.
func (p *partition) invalidForMeta() []meta.Invalid {
	st := &p.st
	inv := append([]meta.Invalid{}, st.Invalid...)
	if st.CaptureFrom == 0 {
		return inv
	}
	first := st.CaptureFrom
	if st.HaveTs {
		first = min(first, st.FirstTs)
	}
	first = max(first, p.dayStart)
	if len(inv) > 0 && inv[0].Reason == format.InvalidReasonName(format.InvalidNoSnapshot) {
		iv := &inv[0]
		iv.From = meta.Time(first)
		if !iv.Open && int64(iv.To) <= first {
			inv = inv[1:]
		}
	}
	if first > p.dayStart {
		inv = append([]meta.Invalid{{Interval: meta.Interval{From: meta.Time(p.dayStart), To: meta.Time(first)},
			Reason: format.InvalidReasonName(format.InvalidNotCaptured)}}, inv...)
	}
	return inv
}

// closeInvalid ends the open invalid interval at ts (clipped to the day).
func (p *partition) closeInvalid(ts int64) {
	if n := len(p.st.Invalid); n > 0 && p.st.Invalid[n-1].Open {
		iv := &p.st.Invalid[n-1]
		iv.To = meta.Time(max(min(ts, p.dayEnd), int64(iv.From)))
		iv.Open = false
	}
}

// headerFor builds the header of a new partition file.
func headerFor(p *partition, priceDec, qtyDec uint8) format.Header {
	h := format.NewBookHeader(p.venue, p.code, p.key.SymbolID, dateNumber(p.key.Day))
	h.SymbolVersionID = p.versionID
	if p.scaled {
		priceDec, qtyDec = p.priceDec, p.qtyDec
	}
	h.PriceDecimals, h.QtyDecimals = priceDec, qtyDec
	h.CreatedNs = p.created
	return h
}

// sameIdentity reports whether an existing file is the one this refinery would create.
func sameIdentity(a, b format.Header) bool {
	return a.Layout == b.Layout && a.RecordSize == b.RecordSize && a.Venue == b.Venue && a.SymbolCode == b.SymbolCode &&
		a.SymbolID == b.SymbolID && a.Date == b.Date && a.SymbolVersionID == b.SymbolVersionID &&
		a.CreatedNs == b.CreatedNs && a.PriceDecimals == b.PriceDecimals && a.QtyDecimals == b.QtyDecimals
}

// openWriter creates the partition's file, or takes over the one a crashed or earlier run
// left: an unsealed file is rewritten from `at` (compared record by record), a sealed one
// is only compared. at < 0 means "from the first record" (a file the state does not know).
//
// Records are encoded into a buffer and written with pwrite, a chunk at a time, and
// published by Commit (one atomic store of the committed length): a backfill commits at
// checkpoints, a live refinery after every batch of frames (every frame once it has caught
// up). Stores into a shared mapping would fault each fresh page in, which on virtual
// machines costs more than copying it (format.BookWriter).
func openWriter(fsys vfs.FS, path string, want format.Header, at int64, opt format.Options) (writer, error) {
	if err := removeTemps(filepath.Dir(path)); err != nil {
		return nil, err
	}
	h, err := format.ReadHeaderFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if at > int64(format.HeaderSize) {
			return nil, fmt.Errorf("%w: %s is missing; the checkpoint says it holds %d bytes", ErrState, path, at)
		}
		if err := vfs.MkdirAll(fsys, filepath.Dir(path)); err != nil {
			return nil, err
		}
		b, err := format.CreateBook(path, want, opt)
		return pwrite{b}, err
	}
	if err != nil {
		return nil, err
	}
	if !sameIdentity(h, want) {
		return nil, fmt.Errorf("%w: %s exists with another identity (%s/%s id %d date %d created %d), not %s/%s id %d date %d created %d",
			ErrPartition, path, h.Venue, h.SymbolCode, h.SymbolID, h.Date, h.CreatedNs, want.Venue, want.SymbolCode, want.SymbolID, want.Date, want.CreatedNs)
	}
	if at < 0 {
		at = int64(h.HeaderSize)
	}
	if h.Sealed {
		return openVerifier(path, h, at)
	}
	b, err := format.ResumeBook(path, min(at, int64(h.Committed)), opt)
	return pwrite{b}, err
}

// pwrite adapts a format.BookWriter to writer.
type pwrite struct{ *format.BookWriter }

func (pwrite) Writes() bool { return true }

// verifier stands in for an appender on a partition an earlier run already sealed: the
// records regenerated for it are compared with the file, never written.
type verifier struct {
	m        *format.Mapped
	path     string
	end, pos int64
	diverged int64
}

func openVerifier(path string, h format.Header, at int64) (*verifier, error) {
	m, err := format.MapFile(path)
	if err != nil {
		return nil, err
	}
	return &verifier{m: m, path: path, end: int64(h.Committed), pos: at}, nil
}

func (v *verifier) WriteBook(r *format.BookRecord) error {
	end := v.pos + format.BookRecordSize
	if end > v.end {
		v.diverged++
	} else {
		var b [format.BookRecordSize]byte
		r.Put(b[:])
		if string(b[:]) != string(v.m.Bytes()[v.pos:end]) {
			v.diverged++
		}
	}
	v.pos = end
	return nil
}

func (v *verifier) Writes() bool    { return false }
func (v *verifier) Commit() error   { return nil }
func (v *verifier) Pos() int64      { return v.pos }
func (v *verifier) Sync() error     { return nil }
func (v *verifier) Diverged() int64 { return v.diverged }
func (v *verifier) Seal() error {
	if v.pos != v.end {
		v.diverged++
	}
	return v.Close()
}
func (v *verifier) Close() error { return v.m.Close() }

// moved stands in for a partition an earlier run sealed and the tier manager has since
// moved out of the output root: the records regenerated for it have nothing to be compared
// with (the partition is complete in its new tier) and are dropped.
type moved struct{ pos int64 }

func (m *moved) WriteBook(*format.BookRecord) error { m.pos += format.BookRecordSize; return nil }
func (m *moved) Commit() error                      { return nil }
func (m *moved) Pos() int64                         { return m.pos }
func (m *moved) Sync() error                        { return nil }
func (m *moved) Seal() error                        { return nil }
func (m *moved) Close() error                       { return nil }
func (m *moved) Diverged() int64                    { return 0 }
func (m *moved) Writes() bool                       { return false }

// buildIndex writes the partition's index/ from its committed records.
func buildIndex(fsys vfs.FS, dir string) error {
	p := filepath.Join(dir, layout.BookName)
	m, err := format.MapFile(p)
	if err != nil {
		return err
	}
	defer m.Close()
	h, err := format.ReadHeader(m, m.Size(), p)
	if err != nil {
		return err
	}
	ix, err := bookindex.BuildIndex(m.Bytes()[h.HeaderSize:h.Committed], h.Records(), int64(h.HeaderSize))
	if err != nil {
		return fmt.Errorf("index %s: %w", p, err)
	}
	return ix.WriteFS(fsys, dir)
}

// lowerName turns a raw venue symbol into a directory name ("ETHUSD_PERP" -> "ethusd_perp").
func lowerName(raw string) string {
	s := strings.ToLower(raw)
	if layout.ValidName(s) {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') || (i == 0 && c == '.') {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// removeTemps deletes the temporary files a killed refinery left in a partition directory
// and its index/ (fileutil.TempName files: never served, but not to be left behind).
func removeTemps(dir string) error {
	for _, d := range []string{dir, filepath.Join(dir, bookindex.Dir)} {
		if err := fileutil.RemoveTemps(d, nil); err != nil {
			return err
		}
	}
	return nil
}
