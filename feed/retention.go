package feed

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
)

// Retain deletes segments the ETL has finished with: a segment goes only when the ETL
// checkpoint names a later segment (the ETL moves on only after reading a sealed segment
// to its end), the segment is sealed, and at least minAge has passed since it stopped
// receiving records (the start of the next segment). Without a checkpoint nothing is
// deleted. It returns the names deleted.
func (j *Journal) Retain(now time.Time, minAge time.Duration) ([]string, error) {
	cp, ok, err := journal.ReadCheckpoint(j.opt.Dir)
	if err != nil || !ok {
		return nil, err
	}
	cpSeg, err := journal.ParseSegmentName(cp.Segment)
	if err != nil {
		return nil, err
	}
	cur := j.curSeq.Load()
	if cpSeg.Seq > cur {
		// A checkpoint from another incarnation of this directory: trusting it could
		// delete segments nobody read.
		return nil, fmt.Errorf("etl checkpoint names segment %d, newer than the current %d: ignoring it", cpSeg.Seq, cur)
	}
	segs, err := journal.List(j.opt.Dir)
	if err != nil {
		return nil, err
	}
	var deleted []string
	for i := 0; i+1 < len(segs); i++ {
		s := segs[i]
		if s.Seq >= cpSeg.Seq || s.Seq >= cur {
			break
		}
		if now.Sub(segs[i+1].Start) < minAge {
			break
		}
		path := filepath.Join(j.opt.Dir, s.Name)
		h, err := format.ReadHeaderFile(path)
		if err != nil || !h.Sealed {
			continue // an unsealed or unreadable segment is never deleted here
		}
		if err := os.Remove(path); err != nil {
			return deleted, fmt.Errorf("retention: %w", err)
		}
		j.m.segments.WithLabelValues("deleted").Inc()
		j.log.Info("journal segment deleted", "segment", s.Name, "checkpoint", cp.Segment)
		deleted = append(deleted, s.Name)
	}
	return deleted, nil
}
