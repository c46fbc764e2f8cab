package venue

import (
	"errors"
	"fmt"
)

// Sentinel errors shared by every venue's parsers. Parsers wrap them in a *ParseError that
// says where in the message and which field.
var (
	ErrSyntax         = errors.New("malformed json")
	ErrNotEnvelope    = errors.New("not a stream message")
	ErrMissingField   = errors.New("missing field")
	ErrBadField       = errors.New("invalid field")
	ErrSnapshotError  = errors.New("snapshot body is an error response")
	ErrBadSymbol      = errors.New("invalid symbol")
	ErrBadStream      = errors.New("invalid stream")
	ErrTooManyStreams = errors.New("too many streams")
	ErrUnknownVenue   = errors.New("unknown venue")
)

// ParseError reports why a message or snapshot could not be read: the byte offset in the
// message, the field (if any) and a sentinel error.
type ParseError struct {
	Offset int
	Field  string
	Err    error
}

func (e *ParseError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("offset %d: field %q: %v", e.Offset, e.Field, e.Err)
	}
	return fmt.Sprintf("offset %d: %v", e.Offset, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }
