package capture

import (
	"errors"

	"github.com/chronicle/chronicle/fault"
)

// LineError says which line of which capture file could not be read.
type LineError = fault.Error

// Why a capture line could not be read; a *LineError says which.
var (
	ErrUnknownFormat = errors.New("unknown capture format")
	ErrBadLine       = errors.New("malformed line")
	ErrBadTimestamp  = errors.New("invalid timestamp")
)
