// Package qzst writes and reads the cold-tier form of a .q file: seekable zstd
// (book.q.zst) plus its index (book.q.zst.idx). The byte layout is in docs/format/qzst.md.
//
// The .q is opaque bytes here. Transcode cuts it into blocks of BlockSize bytes and
// compresses each as an independent zstd frame (content size and checksum included) on all
// cores, in order, with bounded memory, with the bundled libzstd (cgo builds) or the pure-Go
// klauspost encoder; with VerifyFrames each frame is decoded and compared with its source
// before it is written. The .zst ends with the standard seekable-format seek table, so
// `zstd -d` restores the .q and other seekable-zstd tools can read it.
//
// Open gives an io.ReaderAt over the uncompressed bytes from any io.ReaderAt source: a local
// file, or ranged reads of an object (the remote tier). Because all frames but the last have
// the same size, the frame of an offset is a division. Decoded frames live in a Cache shared
// by all Readers, bounded in bytes, keyed by the .zst's SHA-256 so the same content shares
// frames across tiers; concurrent readers of one frame decode it once. A Reader read front
// to back decodes the following frames in parallel ahead of it and fetches their compressed
// bytes with one source read per run of frames; Direct readers decode whole frames straight
// into the caller's buffer. A random read decodes its frame only up to the bytes it needs
// and keeps the frame and its decoder in the cache, so the next read of it continues.
//
// Nothing is returned that has not passed the index's checks: frame sizes, the frame's
// checksum against the index's, and zstd's content checksum and the decoded length for a
// frame decoded whole, or the compressed frame's CRC-32C (index version 2) for one decoded
// in part (its content checksum is checked when a later read completes it). Failures are
// *CorruptError values naming file, frame, offset and field, wrapping the sentinels of
// errors.go. Verify checks a whole file (the tier manager's check after a transcode or copy).
package qzst
