package capture

import (
	"errors"
	"fmt"
)

// Sentinel errors, wrapped in a *LineError naming the file and line.
var (
	ErrUnknownFormat = errors.New("unknown capture format")
	ErrBadLine       = errors.New("malformed line")
	ErrBadTimestamp  = errors.New("invalid timestamp")
)

// LineError says which line of which capture file could not be read.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }
