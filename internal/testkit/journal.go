package testkit

import (
	"os"
	"path/filepath"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
)

// WalkJournal calls fn with every record of the journal in dir, segment by segment in
// order, each read to its committed length. The record and its payload are the iterator's:
// fn copies what it keeps. The first error (listing, opening, a damaged frame) ends the
// walk and is returned, naming the segment.
func WalkJournal(dir string, fn func(seg string, r *format.JournalRecord)) error {
	segs, err := journal.List(dir)
	if err != nil {
		return err
	}
	for _, sg := range segs {
		if err := walkSegment(filepath.Join(dir, sg.Name), sg.Name, fn); err != nil {
			return err
		}
	}
	return nil
}

func walkSegment(path, name string, fn func(seg string, r *format.JournalRecord)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	// Read to the committed length only: a live segment is preallocated past it.
	it, err := format.NewJournalIter(f, st.Size(), name)
	if err != nil {
		return err
	}
	for it.Next() {
		fn(name, it.Record())
	}
	return it.Err()
}
