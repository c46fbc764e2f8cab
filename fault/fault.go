// Package fault is what every package shares about errors: one error type that says where
// input went wrong (file, line, byte offset, compressed frame, field) and why. Decoders of
// files, frames, messages and tables all return it, so an operator reads the same
// "file:line: offset N: frame F: field X: cause" everywhere, and a caller tests causes with
// errors.Is and positions with errors.As.
//
// Each package keeps its own sentinel causes beside the code that returns them; fault holds
// no causes of its own. It imports only the standard library, so everything can use it.
package fault

import (
	"fmt"
	"strconv"
	"strings"
)

// Error reports input that cannot be trusted: where, and the sentinel cause (Err).
type Error struct {
	File   string // the file or object; "" for input that is not one (a websocket message)
	Line   int    // 1-based line of a text input; 0 when not line-oriented
	Offset int64  // byte offset in File (or in the message); -1 when unknown
	Frame  int64  // compressed frame index; -1 when the fault is not inside one frame
	Field  string // the field at fault, when one is
	Err    error
}

// At returns an Error at a byte offset of a file. format/args, when given, add detail after
// the cause.
func At(file string, off int64, err error, format string, args ...any) *Error {
	return &Error{File: file, Offset: off, Frame: -1, Err: detail(err, format, args)}
}

// InFrame returns an Error inside (frame >= 0) or about (-1) a compressed frame, at a byte
// offset of the compressed file, naming the field at fault when one is.
func InFrame(file string, frame, off int64, field string, err error, format string, args ...any) *Error {
	return &Error{File: file, Offset: off, Frame: frame, Field: field, Err: detail(err, format, args)}
}

// Line returns an Error at a line of a text file.
func Line(file string, line int, err error) *Error {
	return &Error{File: file, Line: line, Offset: -1, Frame: -1, Err: err}
}

// Field returns an Error at a byte offset of a message that is not a file, naming the
// field at fault ("" for none).
func Field(off int, field string, err error) *Error {
	return &Error{Offset: int64(off), Frame: -1, Field: field, Err: err}
}

func detail(err error, format string, args []any) error {
	if format == "" {
		return err
	}
	return fmt.Errorf("%w: "+format, append([]any{err}, args...)...)
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
	}
	add := func(s string) {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(s)
	}
	if e.Offset >= 0 {
		add("offset " + strconv.FormatInt(e.Offset, 10))
	}
	if e.Frame >= 0 {
		add("frame " + strconv.FormatInt(e.Frame, 10))
	}
	if e.Field != "" {
		add("field " + strconv.Quote(e.Field))
	}
	add(fmt.Sprint(e.Err))
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }
