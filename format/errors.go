package format

import "github.com/chronicle/chronicle/fault"

// CorruptError reports bytes that cannot be trusted: which file, at which byte offset, and
// why (one of this package's sentinel causes, declared beside the code that returns them).
type CorruptError = fault.Error

func corrupt(file string, off int64, err error, format string, args ...any) error {
	return fault.At(file, off, err, format, args...)
}
