package tiers

import "errors"

var (
	ErrInvalidPath  = errors.New("invalid logical path")
	ErrNotFound     = errors.New("not found in any tier")
	ErrNotDir       = errors.New("not a directory")
	ErrIsDir        = errors.New("is a directory")
	ErrBadStub      = errors.New("invalid remote stub")
	ErrNoRemote     = errors.New("no remote tier configured")
	ErrIncomplete   = errors.New("partition files incomplete")
	ErrRemoteFailed = errors.New("remote read failed")
)
