package qzst

import (
	"errors"
	"fmt"
)

// Sentinel errors. Bad bytes are reported as a *CorruptError wrapping one of them.
var (
	ErrBadMagic           = errors.New("bad magic")
	ErrUnsupportedVersion = errors.New("unsupported version")
	ErrBadIndex           = errors.New("invalid index")
	ErrIndexChecksum      = errors.New("index checksum mismatch")
	ErrBadSeekTable       = errors.New("invalid seek table")
	ErrIndexMismatch      = errors.New("index does not match compressed file")
	ErrTruncated          = errors.New("truncated")
	ErrFrameDecode        = errors.New("frame does not decode")
	ErrFrameChecksum      = errors.New("frame checksum mismatch")
	ErrFrameSize          = errors.New("frame size mismatch")
	ErrContentMismatch    = errors.New("decoded content differs from original")
	ErrFileHash           = errors.New("file hash mismatch")
	ErrIrregularFrames    = errors.New("frames are not of one block size")
	ErrInvalidOption      = errors.New("invalid option")
	ErrClosed             = errors.New("reader is closed")
)

// CorruptError reports bytes that cannot be trusted: which file, which frame (-1 when the
// problem is not inside one frame), the byte offset in File, the field when one is at
// fault, and the sentinel cause. errors.Is(err, ErrTruncated) etc. work through it.
type CorruptError struct {
	File   string
	Frame  int64
	Offset int64
	Field  string
	Err    error
}

func (e *CorruptError) Error() string {
	name := e.File
	if name == "" {
		name = "<unnamed>"
	}
	s := fmt.Sprintf("%s: offset %d", name, e.Offset)
	if e.Frame >= 0 {
		s += fmt.Sprintf(": frame %d", e.Frame)
	}
	if e.Field != "" {
		s += ": field " + e.Field
	}
	return s + ": " + e.Err.Error()
}

func (e *CorruptError) Unwrap() error { return e.Err }

// corrupt builds a *CorruptError; format/args, when given, add detail after the sentinel.
func corrupt(file string, frame, off int64, field string, err error, format string, args ...any) error {
	if format != "" {
		err = fmt.Errorf("%w: "+format, append([]any{err}, args...)...)
	}
	return &CorruptError{File: file, Frame: frame, Offset: off, Field: field, Err: err}
}
