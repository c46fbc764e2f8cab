package fs

import "hash/fnv"

// rootIno is the mount root's inode number (the FUSE root node id).
const rootIno = 1

// inoOf derives a file's inode number from its logical path, never from the physical file,
// so it stays the same across tier moves and restarts. It is FNV-1a 64 with the top bit
// cleared (go-fuse hands out automatic numbers from 2^63) and never 0 or the root's 1.
// Two of 10 million paths collide with probability about 5e-6.
func inoOf(logical string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(logical))
	ino := h.Sum64() &^ (1 << 63)
	if ino <= rootIno {
		ino += 2
	}
	return ino
}
