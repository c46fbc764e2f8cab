package tiers

import (
	"errors"

	"github.com/chronicle/chronicle/layout"
)

var (
	ErrInvalidPath  = layout.ErrInvalidPath // re-exported: resolution errors wrap it
	ErrNotFound     = errors.New("not found in any tier")
	ErrNotDir       = errors.New("not a directory")
	ErrIsDir        = errors.New("is a directory")
	ErrNoRemote     = errors.New("no remote tier configured")
	ErrIncomplete   = errors.New("partition files incomplete")
	ErrRemoteFailed = errors.New("remote read failed")
	ErrForeignOwner = errors.New("file not owned by the tier's owner")
)
