package objstore

import "errors"

// Sentinel errors. Every error returned by a Store wraps at most a few of these
// (plus the cause) and names the key, URI or range involved; test with errors.Is.
var (
	// ErrNotFound: the object (or, for S3, the bucket) does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrChecksumMismatch: bytes read from the caller, sent to or acknowledged
	// by the backend do not hash to what was expected. Nothing was published.
	ErrChecksumMismatch = errors.New("checksum mismatch")
	// ErrUnavailable: the backend could not be reached or answered too slowly
	// (connection refused/reset, timeout, stalled body, 5xx). Retrying later
	// may succeed.
	ErrUnavailable = errors.New("object store unavailable")
	// ErrOutOfRange: a requested byte range does not lie inside the object.
	ErrOutOfRange = errors.New("range outside object")
	// ErrInvalidKey: a key is empty, too long, not clean ("..", "//") or uses
	// a reserved character or name.
	ErrInvalidKey = errors.New("invalid object key")
	// ErrInvalidURI: a URI is not a well-formed s3:// or file:// location.
	ErrInvalidURI = errors.New("invalid object store uri")
	// ErrOutsideRoot: a URI does not name an object inside the configured
	// remote root (other scheme, bucket or prefix, or a path escape).
	ErrOutsideRoot = errors.New("uri outside the configured remote root")
	// ErrAccessDenied: the backend refused the credentials or permissions.
	ErrAccessDenied = errors.New("access denied")
	// ErrShortInput: Put's reader ended before the declared size.
	ErrShortInput = errors.New("input shorter than declared size")
	// ErrKeyConflict: the file backend cannot hold both "a" and "a/b".
	ErrKeyConflict = errors.New("key conflicts with an existing key")
	// ErrInvalidConfig: a Config value is out of its allowed range.
	ErrInvalidConfig = errors.New("invalid object store config")
)
