// Package qzst writes and reads the cold-tier seekable zstd form of a .q file.
package qzst
