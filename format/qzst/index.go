package qzst

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
)

// Index layout constants; docs/format/qzst.md has the byte diagram.
const (
	IndexMagic = "QZSTIDX1"
	// IndexVersion is the version written. Version 2 added each compressed frame's CRC-32C,
	// which lets a reader trust the bytes of a frame it decodes only in part; version 1
	// indexes are still read (their frames are then always decoded whole).
	IndexVersion = 2

	DefaultBlockSize = 1 << 20
	// MaxBlockSize keeps a frame within zstd's largest window (512 MiB) and its sizes inside
	// the u32 fields of the index and seek table.
	MaxBlockSize = 1 << 29

	idxHeaderSize  = 24
	idxEntrySize   = 24
	idxSumSize     = 4 // per frame: its content checksum, and in version 2 its compressed CRC-32C
	idxTrailerSize = 64
	// minFrameSize is the smallest zstd frame with a content checksum: magic, frame header
	// descriptor, one block header, checksum.
	minFrameSize = 4 + 1 + 3 + 4
	maxFrames    = math.MaxUint32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Frame describes one independent zstd frame of the .zst.
type Frame struct {
	UncompressedOffset uint64
	CompressedOffset   uint64
	CompressedSize     uint32
	UncompressedSize   uint32
	// Checksum is the low 32 bits of XXH64 of the frame's uncompressed bytes: the frame's own
	// zstd content checksum and the seek table's checksum.
	Checksum uint32
	// CompressedCRC is the CRC-32C (Castagnoli) of the frame's compressed bytes (index
	// version 2; see Index.HasCompressedCRC). The content checksum covers only a whole frame;
	// this lets a read that decodes a frame only up to the bytes it needs check them first.
	CompressedCRC uint32
}

// Index is the parsed book.q.zst.idx: every frame but the last holds exactly BlockSize
// uncompressed bytes, so the frame of an offset is offset/BlockSize.
type Index struct {
	BlockSize  uint32
	Frames     []Frame
	Size       int64    // uncompressed bytes (the original .q size)
	FramesSize int64    // compressed bytes of all frames: the seek table frame starts here
	ZstSize    int64    // whole .zst file, seek table included
	SHA256     [32]byte // of the whole .zst file; zero when unknown (index rebuilt from a seek table)
	// HasCompressedCRC says the frames' CompressedCRC fields are known (written by version
	// 2 and read from a version 2 index).
	HasCompressedCRC bool
}

// What an index that cannot be trusted reports (with ErrBadMagic, ErrUnsupportedVersion
// and ErrTruncated, shared with the .q format).
var (
	ErrBadIndex        = errors.New("invalid index")
	ErrIndexChecksum   = errors.New("index checksum mismatch")
	ErrIrregularFrames = errors.New("frames are not of one block size")
)

// seekTableSize is the size of the trailing skippable frame holding n entries with checksums.
func seekTableSize(n int) int64 { return 8 + 12*int64(n) + 9 }

// IndexSize is the encoded size of an index of n frames (the version written).
func IndexSize(n int) int64 { return indexSize(n, IndexVersion) }

func indexSize(n int, version uint32) int64 {
	per := int64(idxEntrySize + idxSumSize)
	if version >= 2 {
		per += idxSumSize
	}
	return idxHeaderSize + int64(n)*per + idxTrailerSize
}

// CompressedCRC is the CRC-32C of a compressed frame, as the index records it.
func CompressedCRC(frame []byte) uint32 { return crc32.Checksum(frame, castagnoli) }

// FrameOf returns the frame holding uncompressed offset off, which must be in [0, Size).
func (x *Index) FrameOf(off int64) int { return int(off / int64(x.BlockSize)) }

// MarshalBinary encodes the index: version 2 when it has the compressed CRCs, else version 1.
func (x *Index) MarshalBinary() ([]byte, error) {
	n := len(x.Frames)
	version := uint32(1)
	if x.HasCompressedCRC {
		version = 2
	}
	b := make([]byte, indexSize(n, version))
	copy(b, IndexMagic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], version)
	le.PutUint32(b[12:], x.BlockSize)
	le.PutUint64(b[16:], uint64(n))
	p := b[idxHeaderSize:]
	for _, f := range x.Frames {
		le.PutUint64(p[0:], f.UncompressedOffset)
		le.PutUint64(p[8:], f.CompressedOffset)
		le.PutUint32(p[16:], f.CompressedSize)
		le.PutUint32(p[20:], f.UncompressedSize)
		p = p[idxEntrySize:]
	}
	for _, f := range x.Frames {
		le.PutUint32(p, f.Checksum)
		p = p[idxSumSize:]
	}
	if version >= 2 {
		for _, f := range x.Frames {
			le.PutUint32(p, f.CompressedCRC)
			p = p[idxSumSize:]
		}
	}
	le.PutUint64(p[0:], uint64(x.Size))
	le.PutUint64(p[8:], uint64(x.FramesSize))
	le.PutUint64(p[16:], uint64(x.ZstSize))
	copy(p[24:56], x.SHA256[:])
	le.PutUint32(p[56:], 0) // reserved
	le.PutUint32(p[60:], crc32.Checksum(b[:len(b)-4], castagnoli))
	return b, nil
}

// ParseIndex decodes and strictly validates an index. name labels errors (usually the path).
func ParseIndex(b []byte, name string) (*Index, error) {
	le := binary.LittleEndian
	if len(b) < idxHeaderSize {
		return nil, corrupt(name, -1, int64(len(b)), "header", ErrTruncated, "%d of %d header bytes", len(b), idxHeaderSize)
	}
	if string(b[:8]) != IndexMagic {
		return nil, corrupt(name, -1, 0, "magic", ErrBadMagic, "%q", b[:8])
	}
	version := le.Uint32(b[8:])
	if version != 1 && version != 2 {
		return nil, corrupt(name, -1, 8, "version", ErrUnsupportedVersion, "%d (this reader knows 1 and 2)", version)
	}
	bs := le.Uint32(b[12:])
	if bs == 0 || bs > MaxBlockSize {
		return nil, corrupt(name, -1, 12, "block_size", ErrBadIndex, "%d not in [1, %d]", bs, MaxBlockSize)
	}
	n64 := le.Uint64(b[16:])
	if n64 > maxFrames {
		return nil, corrupt(name, -1, 16, "frame_count", ErrBadIndex, "%d exceeds %d", n64, uint64(maxFrames))
	}
	n := int(n64)
	want := indexSize(n, version)
	if int64(len(b)) < want {
		return nil, corrupt(name, -1, int64(len(b)), "frame_count", ErrTruncated, "%d frames need %d bytes, have %d", n, want, len(b))
	}
	if int64(len(b)) > want {
		return nil, corrupt(name, -1, want, "trailer", ErrBadIndex, "%d trailing bytes", int64(len(b))-want)
	}
	crcOff := len(b) - 4
	if got, sum := le.Uint32(b[crcOff:]), crc32.Checksum(b[:crcOff], castagnoli); got != sum {
		return nil, corrupt(name, -1, int64(crcOff), "crc32c", ErrIndexChecksum, "stored %#08x, computed %#08x", got, sum)
	}

	x := &Index{BlockSize: bs, Frames: make([]Frame, n), HasCompressedCRC: version >= 2}
	sums := idxHeaderSize + n*idxEntrySize
	crcs := sums + n*idxSumSize
	for i := range x.Frames {
		e := b[idxHeaderSize+i*idxEntrySize:]
		x.Frames[i] = Frame{
			UncompressedOffset: le.Uint64(e[0:]),
			CompressedOffset:   le.Uint64(e[8:]),
			CompressedSize:     le.Uint32(e[16:]),
			UncompressedSize:   le.Uint32(e[20:]),
			Checksum:           le.Uint32(b[sums+i*idxSumSize:]),
		}
		if x.HasCompressedCRC {
			x.Frames[i].CompressedCRC = le.Uint32(b[crcs+i*idxSumSize:])
		}
	}
	t := b[len(b)-idxTrailerSize:]
	x.Size = int64(le.Uint64(t[0:]))
	x.FramesSize = int64(le.Uint64(t[8:]))
	x.ZstSize = int64(le.Uint64(t[16:]))
	copy(x.SHA256[:], t[24:56])
	if r := le.Uint32(t[56:]); r != 0 {
		return nil, corrupt(name, -1, int64(len(b)-idxTrailerSize+56), "reserved", ErrBadIndex, "%#x, want 0", r)
	}
	if err := x.check(name); err != nil {
		return nil, err
	}
	return x, nil
}

// check validates the index's invariants; error offsets are those of the encoded index.
func (x *Index) check(name string) error {
	n := len(x.Frames)
	bs := x.BlockSize
	if bs == 0 || bs > MaxBlockSize {
		return corrupt(name, -1, 12, "block_size", ErrBadIndex, "%d not in [1, %d]", bs, MaxBlockSize)
	}
	if uint64(n) > maxFrames {
		return corrupt(name, -1, 16, "frame_count", ErrBadIndex, "%d exceeds %d", n, uint64(maxFrames))
	}
	var uoff, coff uint64
	for i, f := range x.Frames {
		eo := int64(idxHeaderSize + i*idxEntrySize)
		if f.UncompressedOffset != uoff {
			return corrupt(name, int64(i), eo, "uncompressed_offset", ErrBadIndex, "%d, want %d", f.UncompressedOffset, uoff)
		}
		if f.CompressedOffset != coff {
			return corrupt(name, int64(i), eo+8, "compressed_offset", ErrBadIndex, "%d, want %d", f.CompressedOffset, coff)
		}
		if f.CompressedSize < minFrameSize {
			return corrupt(name, int64(i), eo+16, "compressed_size", ErrBadIndex, "%d below the %d-byte minimum frame", f.CompressedSize, minFrameSize)
		}
		if f.CompressedSize > maxCompressedFrame(bs) {
			return corrupt(name, int64(i), eo+16, "compressed_size", ErrBadIndex, "%d above the %d bytes a %d-byte block can compress to", f.CompressedSize, maxCompressedFrame(bs), bs)
		}
		last := i == n-1
		if (!last && f.UncompressedSize != bs) || (last && (f.UncompressedSize == 0 || f.UncompressedSize > bs)) {
			return corrupt(name, int64(i), eo+20, "uncompressed_size", ErrIrregularFrames, "%d with block_size %d", f.UncompressedSize, bs)
		}
		uoff += uint64(f.UncompressedSize)
		coff += uint64(f.CompressedSize)
	}
	version := uint32(1)
	if x.HasCompressedCRC {
		version = 2
	}
	to := indexSize(n, version) - idxTrailerSize
	switch {
	case uint64(x.Size) != uoff:
		return corrupt(name, -1, to, "uncompressed_size_total", ErrBadIndex, "%d, frames sum to %d", uint64(x.Size), uoff)
	case uint64(x.FramesSize) != coff:
		return corrupt(name, -1, to+8, "frames_size", ErrBadIndex, "%d, frames sum to %d", uint64(x.FramesSize), coff)
	case uint64(x.ZstSize) != coff+uint64(seekTableSize(n)):
		return corrupt(name, -1, to+16, "zst_size", ErrBadIndex, "%d, want frames %d + seek table %d", uint64(x.ZstSize), coff, seekTableSize(n))
	}
	return nil
}

// hasHash reports whether the index carries the .zst's SHA-256 (it does when written by
// Transcode; not when rebuilt from a seek table).
func (x *Index) hasHash() bool { return x.SHA256 != [sha256.Size]byte{} }

// maxCompressedFrame is the largest frame a block of bs bytes can take: zstd's compress
// bound (ZSTD_COMPRESSBOUND) plus the frame header and checksum. Readers allocate a frame's
// compressed size, so an index may not promise more.
func maxCompressedFrame(bs uint32) uint32 {
	b := uint64(bs) + uint64(bs)>>8 + 128<<10>>11 + 64
	if b > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(b)
}
