// Package etl is the refinery (zone 2, docs/chronicle-etl.md): it reads the raw journal
// chronicle-feed writes (format/journal), rebuilds each symbol's order book by its venue's
// rules, and writes canonical partitions v1/{venue}/{symbol_code}/{date}/book.q with
// meta.json and index/ to the output tier.
//
// What it guarantees:
//
//   - Exactly once. The output is a pure function of the journal, the configuration and
//     dim_symbol: frames are refined in journal order on one goroutine, and everything that
//     is not in the output files is in the checkpoint (state.go). A kill at any moment, or a
//     failed write at any step of a checkpoint, loses nothing and duplicates nothing: the
//     restart resumes from the checkpoint, regenerates what was written after it, and the
//     final files are byte-identical to an uninterrupted run's (meta.json but its
//     ingest_time).
//   - Every book is either right or flagged. Each record of a book that cannot be trusted
//     (before its first snapshot, after a sequence gap, a lost connection, a feed restart,
//     a lost journal segment, a checksum mismatch) is flagged BOOK_INVALID, and the stretch
//     is an interval with its reason in meta.json until the next snapshot resyncs it.
//     Self-checks (tickers against the rebuilt book, the exchange's checksums, crossed
//     books, trade id gaps) are counted, never "fixed".
//   - Every snapshot run equals the book a reader builds by replaying the records before it.
//   - The sealed bit is the hand-off to the tier manager: index/ and meta.json are final and
//     durable, a checkpoint records the partition as sealing, and only then is the bit set;
//     from then on the refinery never touches the partition, not even after a crash.
//   - Nothing half-written is visible: a book's records count up to its committed length,
//     every other file appears by an atomic rename (the checkpoint, meta.json and index/
//     through Options.FS, which tests fail at every step), and a full device stops the run
//     until there is room again.
//
// The refinery's code follows the journal's event kinds: refinery.go (frames, messages,
// decoding), depth.go (REST-snapshot venues' depth chains), wsbook.go (websocket snapshots
// and checksums: OKX, Kraken), snapshot.go (snapshot runs), trade.go (trades, tickers, the
// midnight hold), validity.go (invalid stretches, connection and gap events), output.go
// (partitions: opening, sealing, meta.json), partition.go (one output file), state.go (the
// checkpoint), run.go (Refine and its loop), daemon.go (the run command's venues).
package etl
