package lifecycle

import "errors"

// Sentinel errors. Every error a move returns wraps one of these (or an error of the
// filesystem, the object store or the format packages) and names the partition and file.
var (
	// ErrNotSealed: the book is still being written (no sealed flag, or its file is longer
	// than its committed length because the writer is closing it). It is never moved.
	ErrNotSealed = errors.New("book is not sealed")
	// ErrVerify: a copy does not match its source (checksum, size, header or decoded bytes).
	// The copy was discarded; the source is untouched.
	ErrVerify = errors.New("copy does not match its source")
	// ErrUploadMismatch: the object store holds something other than what was uploaded
	// (size, SHA-256 or ETag). The local copy stays; the remote objects were deleted.
	ErrUploadMismatch = errors.New("uploaded object does not match")
	// ErrConflict: a partition is in two tiers with different content, and both copies are
	// intact. Nothing is deleted; readers keep seeing the higher tier. An operator decides.
	ErrConflict = errors.New("partition differs between tiers")
	// ErrNoSource: the partition is no longer where the plan found it.
	ErrNoSource = errors.New("partition not found in its source tier")
	// ErrInvalidConfig: a [tier] value is out of range.
	ErrInvalidConfig = errors.New("invalid tier config")
	// ErrDerive: the parquet deriver failed or its output did not read back as written. The
	// cold move is rolled back and retried, so a cold partition always has its parquet...
	ErrDerive = errors.New("derive parquet")
	// ErrDeriveRange: ...unless a price or quantity does not fit DECIMAL(18): then the move
	// goes on without derived/book.parquet (logged and counted).
	ErrDeriveRange = errors.New("value does not fit the parquet schema")
)
