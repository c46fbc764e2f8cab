package etl

import "errors"

var (
	ErrConfig       = errors.New("etl config")
	ErrState        = errors.New("etl state")
	ErrJournal      = errors.New("journal")
	ErrOtherJournal = errors.New("the state belongs to another journal")
	ErrPartition    = errors.New("partition")
)
