package venue

import "github.com/chronicle/chronicle/fault"

// ParseError reports why a message or snapshot could not be read: the byte offset in the
// message, the field (if any) and a sentinel cause.
type ParseError = fault.Error
