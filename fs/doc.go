// Package fs is chronicle-fs: a read-only FUSE file system that shows the union of all
// storage tiers in the v1 layout, so that researchers read
// /chronicle/v1/{venue}/{symbol}/{date}/book.q with dd, pandas or numpy.memmap whatever tier
// holds it. It is built on go-fuse's node API (imported as gofs) over a tiers.Resolver.
//
// What a partition shows: book.q, meta.json, index/... and derived/... as the tier holds
// them, plus a virtual book.npy (an NPY header followed by the book's records, mapped by
// offset) so numpy.load(path, mmap_mode="r") gives named fields. Physical artefacts (.zst,
// .idx, .remote.json) never appear.
//
// Speed and consistency choices (docs/chronicle-fs.md has the full story):
//   - Sealed local files (hot, warm, plain cold) are served by kernel passthrough when the
//     kernel grants it; every other file is served by this process with the page cache on
//     (never FOPEN_DIRECT_IO, so mmap works everywhere).
//   - Inode numbers are a hash of the logical path, so they survive tier moves and restarts.
//   - All opens of one inode that overlap in time share one passthrough backing file (the
//     kernel refuses two); a handle keeps the tier it was opened on, so open files and
//     mappings keep their bytes while the partition moves.
//   - A growing book shows its committed length with a short attribute timeout; sealed books
//     get long timeouts and keep their page cache.
package fs
