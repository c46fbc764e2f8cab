package feed

import "errors"

// Sentinel errors.
var (
	ErrConfig        = errors.New("invalid feed config")
	ErrUnknownVenue  = errors.New("unknown venue")
	ErrLocked        = errors.New("journal directory is locked by another writer")
	ErrJournalClosed = errors.New("journal closed")
	ErrSnapshot      = errors.New("snapshot request failed")
	ErrReplay        = errors.New("replay failed")
)
