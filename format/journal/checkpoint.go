package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/chronicle/chronicle/internal/fileutil/vfs"
)

// CheckpointFile is the ETL's checkpoint, in the journal directory.
const CheckpointFile = "etl.checkpoint"

// CheckpointVersion is the version this package writes and reads.
const CheckpointVersion = 1

// Checkpoint says how far chronicle-etl has durably consumed the journal: every record of
// every segment before Segment, and of Segment below Offset, is reflected in its output.
type Checkpoint struct {
	Version   int    `json:"version"`
	Segment   string `json:"segment"`    // segment file name
	Offset    int64  `json:"offset"`     // file offset of the next record to read
	UpdatedNs int64  `json:"updated_ns"` // when it was written, ns since the epoch
}

// ParseCheckpoint decodes and validates a checkpoint file's bytes.
func ParseCheckpoint(b []byte) (Checkpoint, error) {
	var cp Checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	if cp.Version != CheckpointVersion {
		return Checkpoint{}, fmt.Errorf("%w: version %d", ErrBadCheckpoint, cp.Version)
	}
	if _, err := ParseSegmentName(cp.Segment); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: segment: %v", ErrBadCheckpoint, err)
	}
	if cp.Offset < 0 {
		return Checkpoint{}, fmt.Errorf("%w: offset %d", ErrBadCheckpoint, cp.Offset)
	}
	return cp, nil
}

// ReadCheckpoint reads dir's checkpoint; ok is false when there is none yet.
func ReadCheckpoint(dir string) (cp Checkpoint, ok bool, err error) {
	p := filepath.Join(dir, CheckpointFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("read checkpoint: %w", err)
	}
	cp, err = ParseCheckpoint(b)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("%s: %w", p, err)
	}
	return cp, true, nil
}

// WriteCheckpoint replaces dir's checkpoint atomically: write a temporary file, fsync,
// rename over the old one, fsync the directory. A reader sees the old or the new one.
func WriteCheckpoint(dir string, cp Checkpoint) error { return WriteCheckpointFS(vfs.OS{}, dir, cp) }

// WriteCheckpointFS is WriteCheckpoint through fsys (the refinery's, which tests inject
// faults into).
func WriteCheckpointFS(fsys vfs.FS, dir string, cp Checkpoint) error {
	cp.Version = CheckpointVersion
	if _, err := ParseSegmentName(cp.Segment); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	// One line, as the spec shows it: operators and scripts (the demo) grep it.
	b, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if err := vfs.WriteFile(fsys, filepath.Join(dir, CheckpointFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}
