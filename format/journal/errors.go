package journal

import "errors"

// Sentinel errors.
var (
	ErrBadSegmentName = errors.New("not a journal segment name")
	ErrBadCheckpoint  = errors.New("invalid etl checkpoint")
	ErrBadEvent       = errors.New("invalid journal event payload")
	ErrBadChannel     = errors.New("channel out of range")
)
