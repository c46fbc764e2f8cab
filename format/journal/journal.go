// Package journal is the contract between chronicle-feed, which writes the raw journal,
// and chronicle-etl, which reads it: where segments live and how they are named and
// ordered, the ETL's checkpoint file (which lets the feed delete what was read), how
// channel ids encode connection and stream, and the JSON payloads of connection event
// records. The byte-level framing is the format package's; the whole contract is specified
// in docs/format/journal.md.
package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// Dir is where a venue's journal segments live: {hot}/feed/{venue}, outside v1/.
func Dir(hotRoot, venue string) string { return filepath.Join(hotRoot, "feed", venue) }

// Ext is the segment file extension: segments are .q containers with the journal layout.
const Ext = ".q"

const stampLayout = "20060102T150405Z"

// Segment identifies one journal segment file.
type Segment struct {
	Seq   uint64    // strictly increasing in write order; the only ordering key
	Start time.Time // UTC start of the period the segment was opened for (informational)
	Name  string    // file name, {seq:08d}-{YYYYMMDDTHHMMSSZ}.q
}

// SegmentName formats a segment file name.
func SegmentName(seq uint64, start time.Time) string {
	return fmt.Sprintf("%08d-%s%s", seq, start.UTC().Format(stampLayout), Ext)
}

// ParseSegmentName parses a name made by SegmentName.
func ParseSegmentName(name string) (Segment, error) {
	const n = 8 + 1 + len(stampLayout) + len(Ext)
	if len(name) < n || name[len(name)-len(Ext):] != Ext {
		return Segment{}, fmt.Errorf("%q: %w", name, ErrBadSegmentName)
	}
	seqEnd := len(name) - len(Ext) - len(stampLayout) - 1
	if seqEnd < 8 || name[seqEnd] != '-' {
		return Segment{}, fmt.Errorf("%q: %w", name, ErrBadSegmentName)
	}
	for _, c := range name[:seqEnd] {
		if c < '0' || c > '9' {
			return Segment{}, fmt.Errorf("%q: %w", name, ErrBadSegmentName)
		}
	}
	seq, err := strconv.ParseUint(name[:seqEnd], 10, 64)
	if err != nil {
		return Segment{}, fmt.Errorf("%q: %w", name, ErrBadSegmentName)
	}
	start, err := time.Parse(stampLayout, name[seqEnd+1:len(name)-len(Ext)])
	if err != nil {
		return Segment{}, fmt.Errorf("%q: %w", name, ErrBadSegmentName)
	}
	s := Segment{Seq: seq, Start: start.UTC(), Name: name}
	if SegmentName(seq, start) != name { // one spelling per segment
		return Segment{}, fmt.Errorf("%q: %w", name, ErrBadSegmentName)
	}
	return s, nil
}

// List returns the segments in dir ordered by sequence number. Other files (temporary
// files, the checkpoint, the lock) are ignored.
func List(dir string) ([]Segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list journal %s: %w", dir, err)
	}
	var segs []Segment
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		if s, err := ParseSegmentName(e.Name()); err == nil {
			segs = append(segs, s)
		}
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].Seq < segs[j].Seq })
	return segs, nil
}
