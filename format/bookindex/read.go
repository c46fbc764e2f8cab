package bookindex

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/chronicle/chronicle/format"
)

// BookName is the book file of a partition directory.
const BookName = "book.q"

// ReadRange calls fn, in file order, for every record of partDir/book.q whose exchange
// time is in [start, end) ns. It seeks with index/time.idx for the records the index
// covers and scans the rest (a growing partition has no index yet, or an index of an
// earlier length); the result is the same as filtering the whole file. fn must not keep
// the record past the call.
func ReadRange(partDir string, start, end int64, fn func(*format.BookRecord) error) error {
	p := filepath.Join(partDir, BookName)
	br, f, err := format.OpenBookFile(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n := br.Len()
	lo, hi := int64(0), n
	if t, err := ReadTime(partDir); err == nil && t.Records <= n {
		if lo, hi = t.Range(start, end); t.Records < n {
			hi = n // records past the index's length are scanned
		}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s by time: %w", p, err)
	}
	it := br.IterRange(lo, hi)
	for it.Next() {
		r := it.Record()
		if r.ExchTs >= start && r.ExchTs < end {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return it.Err()
}
