package etl

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/format/meta"
)

// segHash is the running xxHash64 of a journal segment's frames, as far as they were read.
type segHash struct {
	d        *xxhash.Digest
	end      int64
	complete bool
}

// segmentInfo describes the segments a partition came from, for its meta.json.
func (r *Refinery) segmentInfo(names []string) []meta.Segment {
	out := make([]meta.Segment, 0, len(names))
	for _, n := range names {
		s := meta.Segment{Name: n}
		if h := r.segs[n]; h != nil {
			s.XXH64, s.End, s.Complete = fmt.Sprintf("%016x", h.d.Sum64()), h.end, h.complete
		}
		out = append(out, s)
	}
	return out
}

// pruneSegs forgets finished segments no open partition refers to.
func (r *Refinery) pruneSegs() {
	used := map[string]bool{}
	for _, p := range r.parts {
		for _, n := range p.st.Segments {
			used[n] = true
		}
	}
	for n, h := range r.segs {
		if h.complete && !used[n] {
			delete(r.segs, n)
		}
	}
}

// frameStatus says what source.next found.
type frameStatus uint8

const (
	statusFrame frameStatus = iota // a frame
	statusIdle                     // nothing committed yet past the read position
	statusEnd                      // the input is exhausted (backfill)
	statusLost                     // segments are missing between the last and the next
)

// source reads a venue's journal in order: the segments of a directory (following the
// one being written when Follow), or an explicit list of segment files.
type source struct {
	dir    string
	files  []string // explicit segment files, ordered by sequence; nil reads dir
	follow bool

	t       *format.Tailer
	seg     journal.Segment
	path    string
	created int64 // the current segment's header CreatedNs: the journal's identity
	venue   string
	lostTo  journal.Segment
	listed  time.Time // last directory listing
	// consumer, when set, is given each segment's frames as they are read (hashing).
	consumer func(seg string) func(off int64, b []byte)
}

// setConsumer has fn's consumers receive the frames of every segment read from now on.
func (s *source) setConsumer(fn func(seg string) func(off int64, b []byte)) {
	s.consumer = fn
	if s.t != nil {
		s.t.SetConsumer(fn(s.seg.Name))
	}
}

// flush hands the frames read so far to the consumer.
func (s *source) flush() {
	if s.t != nil {
		s.t.Flush()
	}
}

// more reports whether frames past the read position are committed in the current segment.
func (s *source) more() bool { return s.t.Committed() > s.t.Offset() }

// backlog is how many committed bytes of the current segment are not read yet.
func (s *source) backlog() int64 { return s.t.Committed() - s.t.Offset() }

// dirListings counts journal directory listings (tests check that idle tailing does not
// list the directory on every look).
var dirListings atomic.Int64

// segments lists the input segments with their paths.
func (s *source) segments() ([]journal.Segment, map[uint64]string, error) {
	paths := map[uint64]string{}
	var segs []journal.Segment
	if s.files != nil {
		for _, f := range s.files {
			sg, err := journal.ParseSegmentName(filepath.Base(f))
			if err != nil {
				return nil, nil, fmt.Errorf("%w: %s: %v", ErrJournal, f, err)
			}
			segs = append(segs, sg)
			paths[sg.Seq] = f
		}
		sort.Slice(segs, func(i, j int) bool { return segs[i].Seq < segs[j].Seq })
		return segs, paths, nil
	}
	dirListings.Add(1)
	segs, err := journal.List(s.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrJournal, err)
	}
	for _, sg := range segs {
		paths[sg.Seq] = filepath.Join(s.dir, sg.Name)
	}
	return segs, paths, nil
}

// first positions the source at the start of the first segment; ok is false when the
// journal holds none yet.
func (s *source) first() (bool, error) {
	segs, paths, err := s.segments()
	if err != nil || len(segs) == 0 {
		return false, err
	}
	return true, s.open(segs[0], paths[segs[0].Seq], -1)
}

// resume positions the source at a checkpoint. A segment that is gone (deleted by hand:
// retention never deletes what the checkpoint has not passed) makes the next existing
// one current, reported as statusLost by the next call.
func (s *source) resume(name string, created, off int64) error {
	want, err := journal.ParseSegmentName(name)
	if err != nil {
		return fmt.Errorf("%w: checkpoint segment: %v", ErrState, err)
	}
	segs, paths, err := s.segments()
	if err != nil {
		return err
	}
	for _, sg := range segs {
		if sg.Seq == want.Seq {
			if err := s.open(sg, paths[sg.Seq], off); err != nil {
				return err
			}
			if s.created != created {
				s.close()
				return fmt.Errorf("%w: %s was created at %d, the checkpoint names one created at %d (use another output root, or delete its .chronicle-etl state)",
					ErrOtherJournal, paths[sg.Seq], s.created, created)
			}
			return nil
		}
		if sg.Seq > want.Seq {
			s.lostTo = sg
			return s.open(sg, paths[sg.Seq], -1)
		}
	}
	return fmt.Errorf("%w: checkpoint segment %s and every later one are missing from %s", ErrJournal, name, s.dir)
}

func (s *source) open(sg journal.Segment, path string, off int64) error {
	s.close()
	t, err := format.OpenTailer(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrJournal, err)
	}
	h := t.Header()
	if h.Layout != format.LayoutJournal {
		t.Close()
		return fmt.Errorf("%w: %s is a %s file, not a journal segment", ErrJournal, path, h.Layout)
	}
	if s.venue != "" && h.Venue != s.venue {
		t.Close()
		return fmt.Errorf("%w: %s belongs to venue %q, the journal to %q", ErrJournal, path, h.Venue, s.venue)
	}
	if off >= 0 {
		if err := t.SeekTo(off); err != nil {
			t.Close()
			return fmt.Errorf("%w: %v", ErrJournal, err)
		}
	}
	s.t, s.seg, s.path, s.created, s.venue = t, sg, path, h.CreatedNs, h.Venue
	if s.consumer != nil {
		t.SetConsumer(s.consumer(sg.Name))
	}
	return nil
}

func (s *source) close() {
	if s.t != nil {
		s.t.Flush()
		s.t.Close()
		s.t = nil
	}
}

// offset is the position after the last frame returned.
func (s *source) offset() int64 { return s.t.Offset() }

// next returns the next frame, or why there is none. A segment with a successor is
// final even if its seal has not landed yet: the writer appends only to its newest
// segment, and names the next one while holding the lock its appends take.
func (s *source) next() (format.JournalRecord, frameStatus, error) {
	if s.lostTo.Name != "" {
		s.lostTo = journal.Segment{}
		return format.JournalRecord{}, statusLost, nil
	}
	for {
		rec, ok, err := s.t.NextJournal()
		if err != nil {
			return rec, 0, fmt.Errorf("%w: %v", ErrJournal, err)
		}
		if ok {
			return rec, statusFrame, nil
		}
		if s.follow && !s.t.Sealed() && time.Since(s.listed) < 100*time.Millisecond {
			return rec, statusIdle, nil // listing the directory on every idle look costs too much
		}
		segs, paths, err := s.segments()
		if err != nil {
			return rec, 0, err
		}
		s.listed = time.Now()
		var nxt *journal.Segment
		for i := range segs {
			if segs[i].Seq > s.seg.Seq {
				nxt = &segs[i]
				break
			}
		}
		if nxt == nil {
			if s.follow {
				return rec, statusIdle, nil
			}
			return rec, statusEnd, nil
		}
		// Frames committed between the last read and the listing.
		if rec, ok, err = s.t.NextJournal(); err != nil || ok {
			if err != nil {
				return rec, 0, fmt.Errorf("%w: %v", ErrJournal, err)
			}
			return rec, statusFrame, nil
		}
		lost := nxt.Seq != s.seg.Seq+1
		if err := s.open(*nxt, paths[nxt.Seq], -1); err != nil {
			return rec, 0, err
		}
		if lost {
			return rec, statusLost, nil
		}
	}
}

// wait blocks until the current segment grows, a successor appears, ctx ends or until
// passes: busy-polling for spin after the last frame, then sleeping poll. The directory is
// listed at most every 100 ms: a sealed segment (its writer stopped) continues in a
// successor, and so does one whose writer died mid-segment without sealing it.
func (s *source) wait(ctx context.Context, idleSince time.Time, spin, poll time.Duration, until time.Time) {
	lastList := time.Now() // next() has just looked
	sealed := s.t.Sealed()
	for {
		if s.t.Committed() > s.t.Offset() || ctx.Err() != nil || !time.Now().Before(until) {
			return
		}
		if !sealed && s.t.Sealed() {
			return // sealed while we waited: its successor is (about to be) there
		}
		if time.Since(idleSince) >= spin {
			select {
			case <-ctx.Done():
				return
			case <-time.After(poll):
			}
		}
		if time.Since(lastList) > 100*time.Millisecond {
			if s.hasSuccessor() {
				return
			}
			lastList = time.Now()
		}
	}
}

func (s *source) hasSuccessor() bool {
	if s.files != nil {
		return false
	}
	dirListings.Add(1)
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if sg, err := journal.ParseSegmentName(e.Name()); err == nil && sg.Seq > s.seg.Seq {
			return true
		}
	}
	return false
}

// journalSize is the committed bytes of the input not yet read, for progress bars.
func (s *source) remaining() int64 {
	segs, paths, err := s.segments()
	if err != nil {
		return 0
	}
	var n int64
	for _, sg := range segs {
		if sg.Seq < s.seg.Seq {
			continue
		}
		st, err := os.Stat(paths[sg.Seq])
		if errors.Is(err, fs.ErrNotExist) || err != nil {
			continue
		}
		n += st.Size()
	}
	return n - s.offset()
}
