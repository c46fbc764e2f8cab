package format

import (
	"errors"
	"fmt"
)

// Sentinel errors. Decoders wrap them in a *CorruptError that names the file and offset.
var (
	ErrBadMagic           = errors.New("bad magic")
	ErrUnsupportedVersion = errors.New("unsupported version")
	ErrBadHeader          = errors.New("invalid header")
	ErrHeaderChecksum     = errors.New("header checksum mismatch")
	ErrTruncated          = errors.New("truncated")
	ErrRecordSize         = errors.New("record size mismatch")
	ErrBadFrame           = errors.New("invalid journal frame")
	ErrWrongLayout        = errors.New("wrong record layout")
	ErrFull               = errors.New("file reached its maximum size")
	ErrSealed             = errors.New("file is sealed")
	ErrClosed             = errors.New("appender is closed")
	ErrPayloadTooLarge    = errors.New("payload too large")
	ErrDecimal            = errors.New("invalid decimal")
)

// CorruptError reports bytes that cannot be trusted: which file, at which byte offset, and why.
type CorruptError struct {
	File   string
	Offset int64
	Err    error
}

func (e *CorruptError) Error() string {
	name := e.File
	if name == "" {
		name = "<unnamed>"
	}
	return fmt.Sprintf("%s: offset %d: %v", name, e.Offset, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

func corrupt(file string, off int64, err error, format string, args ...any) error {
	if format != "" {
		err = fmt.Errorf("%w: "+format, append([]any{err}, args...)...)
	}
	return &CorruptError{File: file, Offset: off, Err: err}
}
