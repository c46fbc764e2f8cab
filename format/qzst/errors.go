package qzst

import (
	"github.com/chronicle/chronicle/fault"
	"github.com/chronicle/chronicle/format"
)

// Causes shared with the .q format, so that errors.Is(err, format.ErrTruncated) holds
// whichever file was short. The others are declared beside the code that returns them.
var (
	ErrBadMagic           = format.ErrBadMagic
	ErrUnsupportedVersion = format.ErrUnsupportedVersion
	ErrTruncated          = format.ErrTruncated
)

// CorruptError reports bytes that cannot be trusted: which file, which frame (-1 when the
// problem is not inside one frame), the byte offset in File, the field when one is at
// fault, and the sentinel cause. errors.Is(err, ErrTruncated) etc. work through it.
type CorruptError = fault.Error

// corrupt builds a *CorruptError; format/args, when given, add detail after the sentinel.
func corrupt(file string, frame, off int64, field string, err error, format string, args ...any) error {
	return fault.InFrame(file, frame, off, field, err, format, args...)
}
