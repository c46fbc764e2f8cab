// Package tiers resolves Chronicle's logical paths (v1/{venue}/{symbol}/{date}/book.q)
// against the four storage tiers and opens them as plain byte ranges, whatever tier holds
// them: chronicle-core's "universal reader" and "path priority resolution".
//
// Resolution checks layout.Hot -> layout.Warm -> layout.Cold -> RemoteCold and stops at the first tier that holds
// the partition's book; every file of a partition is then served from that one tier, so a
// partition is never read from two tiers at once. The remote tier is known locally from
// book.q.zst.remote.json stubs in the cold root: resolving and listing never list the
// object store. Local paths are opened with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)
// below each tier root, so a symlink or ".." can never lead outside a root.
//
// Physical artefacts (book.q.zst, book.q.zst.idx, book.q.zst.remote.json) never show up in
// logical listings: each appears as book.q.
package tiers
