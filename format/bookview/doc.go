// Package bookview answers research's first question from a canonical book.q: the full
// L2 book at any instant, the top N levels after every depth update or on a regular grid,
// and the bytes of a partition's views/ (topN.npy, trades.npy, bbo.npy) that chronicle-fs
// serves. It reads through an io.ReaderAt and the partition's index/ files, so a handle of
// any tier serves (hot and warm files, cold seekable zstd, remote objects), and imports
// only format and its siblings.
//
// The semantics (docs/format/views.md):
//
//   - A book event is a depth update (its level records, the last flagged LAST), a
//     snapshot run (snapshot_begin .. snapshot_end) or a book_invalid record. Events
//     apply in file order, the refinery's processing order; an event's time is the
//     exchange time of its first record (the refinery stamps every record of one event
//     alike).
//   - The book at t is the book after the last event, in file order, whose time is at or
//     before t, with every event before it applied: events at equal times are all in, and
//     an event stamped after t (a periodic run dated by a trade) that precedes one at or
//     before t is in too (runs restate the book, so this never changes it).
//   - A valid snapshot run replaces the book; a run flagged BOOK_INVALID and a book_invalid
//     record make it unknown (with the reason code of the latter) until the next valid
//     run: such a state is reported as invalid, never as a book. Before the partition's
//     first valid run there is no book (NoBookError names the first instant with one).
//   - A top-N event row is written after every depth update (a non-snapshot level record
//     flagged LAST; meta.json's depth_updates counts them), whatever the book's state;
//     snapshot runs and book_invalid records change the book but are not rows.
//
// Random access uses index/events.idx (format/bookindex): every view row lies in the
// records between two anchors, so a row costs a replay from the snapshot run before it
// (top N) or a scan of at most a stride of records (trades, bbo). A partition without the
// file is indexed by one scan when opened.
package bookview
