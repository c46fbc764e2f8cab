package merge

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cespare/xxhash/v2"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/venue"
)

// ErrInput: a journal given to the merge cannot be used (empty, another venue, no host
// id, two inputs with one host id).
var ErrInput = errors.New("merge input")

// Input is one host's journal of a venue.
type Input struct {
	// Host is the capturing host's id; "" takes the id the journal's connect records name.
	Host string
	// Dir is the venue journal directory ({hot}/feed/{venue}) holding its segments.
	Dir string
}

// hostJournal is an input, opened: its segments in order.
type hostJournal struct {
	id    string
	dir   string
	venue string
	segs  []segFile
}

type segFile struct {
	journal.Segment
	path string
}

// openInput lists a journal's segments, checks their venue and finds the host id.
func openInput(in Input) (*hostJournal, error) {
	segs, err := journal.List(in.Dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInput, err)
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("%w: %s holds no journal segments", ErrInput, in.Dir)
	}
	j := &hostJournal{id: in.Host, dir: in.Dir}
	for _, sg := range segs {
		p := filepath.Join(in.Dir, sg.Name)
		h, err := format.ReadHeaderFile(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInput, err)
		}
		if h.Layout != format.LayoutJournal {
			return nil, fmt.Errorf("%w: %s is a %s file, not a journal segment", ErrInput, p, h.Layout)
		}
		if j.venue == "" {
			j.venue = h.Venue
		} else if h.Venue != j.venue {
			return nil, fmt.Errorf("%w: %s belongs to venue %q, the journal's first segment to %q", ErrInput, p, h.Venue, j.venue)
		}
		j.segs = append(j.segs, segFile{Segment: sg, path: p})
	}
	if j.id == "" {
		if j.id, err = j.hostFromConnects(); err != nil {
			return nil, err
		}
	}
	if !validHost(j.id) {
		return nil, fmt.Errorf("%w: %s: host id %q (give it as ID=DIR)", ErrInput, in.Dir, j.id)
	}
	return j, nil
}

func validHost(s string) bool { return layout.ValidName(s) }

// hostFromConnects reads the host id the feed wrote into the journal's connect records.
func (j *hostJournal) hostFromConnects() (string, error) {
	src := newFrameSource(j)
	defer src.close()
	for {
		f, err := src.next()
		if err != nil {
			return "", err
		}
		if f == nil {
			return "", fmt.Errorf("%w: %s names no host in its connect records (a journal from before host ids): give its host as ID=DIR", ErrInput, j.dir)
		}
		if f.TypeID == format.JournalConnect {
			var c journal.Connect
			if journal.Decode(f.Payload, &c) == nil && c.Host != "" {
				return c.Host, nil
			}
		}
	}
}

// frame is one journal frame of a host, or a marker that segments are missing before it.
type frame struct {
	format.JournalRecord
	lost bool // segments missing between the previous frame and this position
	seg  int  // index of the segment in hostJournal.segs
}

// frameSource reads a host's frames in journal order, segment after segment.
type frameSource struct {
	j    *hostJournal
	i    int
	f    *os.File
	it   *format.JournalIter
	cur  frame
	lost bool
}

func newFrameSource(j *hostJournal) *frameSource { return &frameSource{j: j, i: -1} }

// next returns the next frame (its payload valid until the following call), nil at the end.
func (s *frameSource) next() (*frame, error) {
	for {
		if s.it != nil && s.it.Next() {
			s.cur = frame{JournalRecord: *s.it.Record(), seg: s.i, lost: s.lost}
			s.lost = false
			return &s.cur, nil
		}
		if s.it != nil {
			if err := s.it.Err(); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrInput, err)
			}
		}
		s.close()
		s.i++
		if s.i >= len(s.j.segs) {
			return nil, nil
		}
		if s.i > 0 && s.j.segs[s.i].Seq != s.j.segs[s.i-1].Seq+1 {
			s.lost = true
		}
		p := s.j.segs[s.i].path
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInput, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: %v", ErrInput, err)
		}
		it, err := format.NewJournalIter(f, st.Size(), p)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: %v", ErrInput, err)
		}
		s.f, s.it = f, it
	}
}

func (s *frameSource) close() {
	if s.f != nil {
		s.f.Close()
		s.f, s.it = nil, nil
	}
}

// segmentInfo describes a host's segments for meta.json: the xxHash64 of each one's frame
// bytes, from the end of its header to its committed length (as the refinery records it).
func (j *hostJournal) segmentInfo() ([]meta.Segment, error) {
	out := make([]meta.Segment, 0, len(j.segs))
	for _, sg := range j.segs {
		h, err := format.ReadHeaderFile(sg.path)
		if err != nil {
			return nil, err
		}
		f, err := os.Open(sg.path)
		if err != nil {
			return nil, err
		}
		d := xxhash.New()
		_, err = io.Copy(d, io.NewSectionReader(f, h.DataStart(), int64(h.Committed)-h.DataStart()))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("hash %s: %w", sg.path, err)
		}
		out = append(out, meta.Segment{Name: sg.Name, XXH64: fmt.Sprintf("%016x", d.Sum64()), End: int64(h.Committed), Complete: h.Sealed})
	}
	return out, nil
}

// chanInfo is what one of a host's channels carries (its connect records say).
type chanInfo struct {
	stream string
	symbol string
	kind   string
	conn   uint16
}

// channels follows a host's connect and snapshot-request records, as the refinery does.
type channels struct {
	byCh    map[uint16]chanInfo
	snapReq map[uint16]string
	session int64
}

func newChannels() *channels {
	return &channels{byCh: map[uint16]chanInfo{}, snapReq: map[uint16]string{}}
}

// connect applies a connect record and reports what it means for the host's books:
// restart (a new feed session: every chain restarts) or the symbols whose depth stream the
// connection carries, when it is a new connection that does not take over from an old one.
func (c *channels) connect(v venue.Venue, payload []byte) (ev journal.Connect, restart bool, syms []string, ok bool) {
	if journal.Decode(payload, &ev) != nil {
		return ev, false, nil, false
	}
	for _, st := range ev.Streams {
		sym := st.Symbol
		if sym == "" {
			sym = v.Symbol(st.Stream)
		}
		c.byCh[st.Channel] = chanInfo{stream: st.Stream, symbol: sym, kind: st.Kind, conn: ev.Channel}
	}
	if ev.Carried {
		return ev, false, nil, true
	}
	if c.session != 0 && ev.Session != c.session {
		c.session = ev.Session
		return ev, true, nil, true
	}
	c.session = ev.Session
	if ev.Replaces != nil {
		return ev, false, nil, true
	}
	return ev, false, c.depthOn(ev.Channel), true
}

// depthOn lists the symbols whose depth stream connection conn carries.
func (c *channels) depthOn(conn uint16) []string {
	var syms []string
	for _, ci := range c.byCh {
		if ci.conn == conn && ci.kind == "depth" {
			syms = append(syms, ci.symbol)
		}
	}
	return syms
}

// JournalVenue is the venue a journal directory's first segment belongs to.
func JournalVenue(dir string) (string, error) {
	segs, err := journal.List(dir)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInput, err)
	}
	if len(segs) == 0 {
		return "", fmt.Errorf("%w: %s holds no journal segments", ErrInput, dir)
	}
	h, err := format.ReadHeaderFile(filepath.Join(dir, segs[0].Name))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInput, err)
	}
	return h.Venue, nil
}
