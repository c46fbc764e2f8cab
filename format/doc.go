// Package format holds Chronicle's on-disk container, the `.q` file, and the two record
// layouts it carries: fixed-size canonical book records (book.q, read by numpy.memmap with
// no parser) and variable-length framed raw journal records (the feed's Zone 1 queue).
//
// The byte-level specifications live beside the code in docs/format/q.md (container and
// book records) and docs/format/journal.md (raw journal framing). This package imports
// nothing else of Chronicle's: every other layer builds on it.
//
// Concurrency model: one Appender per file writes records into a shared memory mapping and
// publishes them with a single atomic store of the committed length in the header. Readers
// in any process read the committed length first and never look past it, so they only ever
// see whole records.
package format
