package etl

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/cespare/xxhash/v2"

	"github.com/chronicle/chronicle/etl/book"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/fileutil/vfs"
	"github.com/chronicle/chronicle/venue"
)

// The refinery's checkpoint: where it is in the journal, how long each open output file
// is, and the state of every book, so that a restart resumes exactly (docs/format/etl-state.md).
// It lives in the output root, beside the partitions it describes, under a hidden
// directory that readers and the tier manager never look at.

// StateDir is the directory of checkpoints inside an output root.
const StateDir = ".chronicle-etl"

const (
	stateMagic   = "CHRETLS\n"
	stateVersion = 1
	stateHeader  = 24 // magic, u32 version, u32 crc32c of the body, u64 body length
	maxStateSize = 1 << 30
)

// The refinery's own state and its input.
var (
	ErrState        = errors.New("etl state")
	ErrJournal      = errors.New("journal")
	ErrOtherJournal = errors.New("the state belongs to another journal")
)

// StatePath is the checkpoint file of a venue in an output root.
func StatePath(root, venue string) string { return filepath.Join(root, StateDir, venue+".state") }

type savedSym struct {
	S    symState
	Book book.State
}

type savedPart struct {
	Key       partKey
	Venue     string
	Code      string
	Raw       string
	VersionID uint64
	Dir       string // relative to the output root
	Created   int64
	Pos       int64 // committed length
	Stats     partStats
	// Sealing: index/ and meta.json are final and the sealed bit is being set. A restart
	// finishes the seal if the book is still unsealed, and otherwise leaves the partition
	// alone: it may have been moved to another tier already.
	Sealing bool
	// Verifying: the book was sealed by an earlier run (this one only compares); a restart
	// that finds it moved away drops the records regenerated for it.
	Verifying bool
	// Scaled: the records are at the instrument's own scales, PriceDec and QtyDec.
	Scaled           bool
	PriceDec, QtyDec uint8
}

type savedSeg struct {
	Name     string
	Digest   []byte
	End      int64
	Complete bool
}

// State is one venue's checkpoint.
type State struct {
	Version        int
	Venue          string
	Segment        string // the journal segment being read
	SegmentCreated int64  // its header's created_ns: the journal's identity
	Offset         int64  // file offset of the next frame
	TableHash      string // dim_symbol the output was resolved against
	Clock          int64
	Skew           int64
	HaveSkew       bool
	Session        int64
	Channels       map[uint16]chanInfo
	SnapReq        map[uint16]string
	Syms           []savedSym
	Parts          []savedPart
	Segs           []savedSeg
	Undated        []undatedMsg // timeless messages waiting for the first exchange time
	UpdatedNs      int64
	// Specs are the instruments of the venue's reference data (OKX, Kraken), by symbol.
	Specs []venue.Spec
}

// save captures the refinery's state at a frame boundary.
func (r *Refinery) save(src *source) (*State, error) {
	st := &State{Version: stateVersion, Venue: r.v.Name(), Segment: src.seg.Name, SegmentCreated: src.created,
		Offset: src.offset(), TableHash: r.table.Load().Hash(), Clock: r.clock, Skew: r.skew, HaveSkew: r.haveSkew,
		Session: r.session, Channels: r.channels, SnapReq: r.snapReq, Undated: r.undated}
	for _, raw := range sortedKeys(r.syms) {
		s := r.syms[raw]
		st.Syms = append(st.Syms, savedSym{S: *s, Book: s.book.State()})
	}
	for _, k := range sortedKeys(r.specs) {
		st.Specs = append(st.Specs, r.specs[k])
	}
	for _, p := range r.parts {
		rel, err := filepath.Rel(r.root, p.dir)
		if err != nil {
			return nil, err
		}
		st.Parts = append(st.Parts, savedPart{Key: p.key, Venue: p.venue, Code: p.code, Raw: p.raw, VersionID: p.versionID,
			Dir: rel, Created: p.created, Pos: p.w.Pos(), Stats: p.st, Sealing: p.sealing, Verifying: !p.w.Writes(),
			Scaled: p.scaled, PriceDec: p.priceDec, QtyDec: p.qtyDec})
	}
	sort.Slice(st.Parts, func(i, j int) bool { return st.Parts[i].Dir < st.Parts[j].Dir })
	for _, n := range sortedKeys(r.segs) {
		h := r.segs[n]
		d, err := h.d.MarshalBinary()
		if err != nil {
			return nil, err
		}
		st.Segs = append(st.Segs, savedSeg{Name: n, Digest: d, End: h.end, Complete: h.complete})
	}
	return st, nil
}

// restore loads a checkpoint into a fresh refinery and reopens its files where the
// checkpoint left them.
func (r *Refinery) restore(st *State) error {
	r.clock, r.skew, r.haveSkew, r.session = st.Clock, st.Skew, st.HaveSkew, st.Session
	r.undated = st.Undated
	if st.Channels != nil {
		r.channels = st.Channels
	}
	if st.SnapReq != nil {
		r.snapReq = st.SnapReq
	}
	for _, sp := range st.Specs {
		r.setSpec(sp)
	}
	for i := range st.Syms {
		s := st.Syms[i].S
		if s.ScaleSet {
			r.scales.Set(s.Raw, s.Scale)
		}
		if err := s.book.Restore(st.Syms[i].Book); err != nil {
			return fmt.Errorf("%w: book of %s: %v", ErrState, s.Raw, err)
		}
		if len(s.Hold) > 0 {
			r.holders[s.Raw] = &s
		}
		r.syms[s.Raw] = &s
	}
	for _, sp := range st.Parts {
		p := &partition{key: sp.Key, venue: sp.Venue, code: sp.Code, raw: sp.Raw, versionID: sp.VersionID,
			dir: filepath.Join(r.root, sp.Dir), created: sp.Created, st: sp.Stats,
			dayStart: sp.Key.Day * dayNs, dayEnd: (sp.Key.Day + 1) * dayNs,
			scaled: sp.Scaled, priceDec: sp.PriceDec, qtyDec: sp.QtyDec}
		// The run before wrote its meta.json (the periodic refresh brings it up to date); one
		// a crash left without any is written at the first housekeeping.
		if _, err := os.Stat(filepath.Join(p.dir, meta.FileName)); err == nil {
			p.hasMeta = true
		}
		if sp.Sealing {
			if err := r.finishSeal(p, sp.Pos); err != nil {
				return err
			}
			continue
		}
		var w writer
		if _, err := os.Stat(p.path()); sp.Verifying && errors.Is(err, fs.ErrNotExist) {
			r.log.Info("a partition sealed by an earlier run was moved to another tier; its records are not compared", "path", p.path())
			w = &moved{pos: sp.Pos}
		} else if w, err = openWriter(r.fs, p.path(), headerFor(p, r.priceDec, r.qtyDec), sp.Pos, r.fopt); err != nil {
			return err
		}
		p.setWriter(w)
		r.parts[p.key] = p
		r.m.partitionsOpen.Inc()
		if p.key.Kind != kindLate {
			r.nextSeal = min(r.nextSeal, p.dayEnd+int64(r.cfg.Grace))
		}
	}
	for _, sg := range st.Segs {
		d := xxhash.New()
		if err := d.UnmarshalBinary(sg.Digest); err != nil {
			return fmt.Errorf("%w: segment hash %s: %v", ErrState, sg.Name, err)
		}
		r.segs[sg.Name] = &segHash{d: d, end: sg.End, complete: sg.Complete}
	}
	return nil
}

// finishSeal completes the seal of a partition the checkpoint recorded as sealing: its
// index/ and meta.json are final. A book still unsealed is trimmed to the checkpoint's
// length and sealed; a sealed one is left alone, and so is a missing one, which the tier
// manager has moved on (it moves only sealed books).
func (r *Refinery) finishSeal(p *partition, pos int64) error {
	if _, err := os.Stat(p.path()); errors.Is(err, fs.ErrNotExist) {
		r.log.Info("a partition sealed before the restart has moved to another tier", "path", p.path())
		return nil
	}
	w, err := openWriter(r.fs, p.path(), headerFor(p, r.priceDec, r.qtyDec), pos, r.fopt)
	if err != nil {
		return err
	}
	if err := w.Seal(); err != nil {
		return fmt.Errorf("seal %s: %w", p.path(), err)
	}
	if w.Writes() {
		r.m.sealed.Inc()
		r.log.Info("partition sealed after a restart", "path", p.path())
	}
	return nil
}

// writeState replaces path atomically through fsys: temporary file, write, fsync, rename,
// fsync of the directory (vfs.WriteFile), after making the directory.
func writeState(fsys vfs.FS, path string, st *State) error {
	var body bytes.Buffer
	if err := gob.NewEncoder(&body).Encode(st); err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	b := make([]byte, stateHeader, stateHeader+body.Len())
	copy(b, stateMagic)
	binary.LittleEndian.PutUint32(b[8:], stateVersion)
	binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(body.Bytes(), castagnoli))
	binary.LittleEndian.PutUint64(b[16:], uint64(body.Len()))
	b = append(b, body.Bytes()...)
	dir := filepath.Dir(path)
	if err := vfs.MkdirAll(fsys, dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return vfs.WriteFile(fsys, path, b, 0o600)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ReadState reads a venue's checkpoint; ok is false when there is none.
func ReadState(path string) (st *State, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	bad := func(off int, f string, a ...any) error {
		return fmt.Errorf("%w: %s: offset %d: %s", ErrState, path, off, fmt.Sprintf(f, a...))
	}
	if len(b) < stateHeader || string(b[:8]) != stateMagic {
		return nil, false, bad(0, "not a chronicle-etl checkpoint")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != stateVersion {
		return nil, false, bad(8, "version %d, this build reads %d", v, stateVersion)
	}
	n := binary.LittleEndian.Uint64(b[16:])
	if n > maxStateSize || uint64(len(b)-stateHeader) != n {
		return nil, false, bad(16, "body of %d bytes, file has %d", n, len(b)-stateHeader)
	}
	body := b[stateHeader:]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[12:]) {
		return nil, false, bad(12, "checksum mismatch")
	}
	st = &State{}
	if err := gob.NewDecoder(bytes.NewReader(body)).Decode(st); err != nil {
		return nil, false, bad(stateHeader, "%v", err)
	}
	if st.Version != stateVersion {
		return nil, false, bad(stateHeader, "state version %d", st.Version)
	}
	return st, true, nil
}
