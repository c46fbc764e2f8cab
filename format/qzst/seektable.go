package qzst

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The zstd seekable format's seek table: a skippable frame at the end of the .zst
// (contrib/seekable_format/zstd_seekable_compression_format.md in facebook/zstd).
const (
	seekTableMagic    = 0x184D2A5E // skippable frame magic, low nibble 0xE
	seekFooterMagic   = 0x8F92EAB1
	seekFooterSize    = 9
	seekChecksumFlag  = 1 << 7
	seekReservedMask  = 0x7C // bits 6-2 must be zero
	zstdFrameMagic    = 0xFD2FB528
	zstdChecksumFlag  = 1 << 2 // Content_Checksum_flag in the frame header descriptor
	skippableHdrSize  = 8
	maxSeekTableBytes = skippableHdrSize + 12*maxFrames + seekFooterSize
)

// SeekEntry is one seek table entry. Checksum is zero when the table has no checksums.
type SeekEntry struct {
	CompressedSize   uint32
	DecompressedSize uint32
	Checksum         uint32
}

// SeekTable is a parsed seek table; Offset is where its skippable frame starts in the .zst.
type SeekTable struct {
	Entries      []SeekEntry
	HasChecksums bool
	Offset       int64
}

var (
	ErrBadSeekTable  = errors.New("invalid seek table")
	ErrIndexMismatch = errors.New("index does not match compressed file")
)

// appendSeekTable appends the seek table frame (with checksums) for frames.
func appendSeekTable(dst []byte, frames []Frame) []byte {
	le := binary.LittleEndian
	dst = le.AppendUint32(dst, seekTableMagic)
	dst = le.AppendUint32(dst, uint32(12*len(frames)+seekFooterSize))
	for _, f := range frames {
		dst = le.AppendUint32(dst, f.CompressedSize)
		dst = le.AppendUint32(dst, f.UncompressedSize)
		dst = le.AppendUint32(dst, f.Checksum)
	}
	dst = le.AppendUint32(dst, uint32(len(frames)))
	dst = append(dst, seekChecksumFlag)
	return le.AppendUint32(dst, seekFooterMagic)
}

// parseSeekTable parses b, which must be exactly the trailing seek table frame of a file;
// base is b's offset in that file (for error offsets).
func parseSeekTable(b []byte, base int64, name string) (*SeekTable, error) {
	le := binary.LittleEndian
	if len(b) < skippableHdrSize+seekFooterSize {
		return nil, corrupt(name, -1, base, "seek_table", ErrTruncated, "%d bytes", len(b))
	}
	foot := b[len(b)-seekFooterSize:]
	footOff := base + int64(len(b)-seekFooterSize)
	if m := le.Uint32(foot[5:]); m != seekFooterMagic {
		return nil, corrupt(name, -1, footOff+5, "seekable_magic", ErrBadMagic, "%#08x", m)
	}
	desc := foot[4]
	if desc&seekReservedMask != 0 {
		return nil, corrupt(name, -1, footOff+4, "seek_table_descriptor", ErrBadSeekTable, "reserved bits set in %#02x", desc)
	}
	n := int64(le.Uint32(foot[0:]))
	esz := int64(8)
	if desc&seekChecksumFlag != 0 {
		esz = 12
	}
	want := skippableHdrSize + n*esz + seekFooterSize
	if int64(len(b)) != want {
		return nil, corrupt(name, -1, footOff, "number_of_frames", ErrBadSeekTable, "%d frames need a %d-byte table, have %d", n, want, len(b))
	}
	if m := le.Uint32(b[0:]); m != seekTableMagic {
		return nil, corrupt(name, -1, base, "skippable_magic", ErrBadMagic, "%#08x", m)
	}
	if fs := int64(le.Uint32(b[4:])); fs != want-skippableHdrSize {
		return nil, corrupt(name, -1, base+4, "frame_size", ErrBadSeekTable, "%d, want %d", fs, want-skippableHdrSize)
	}
	st := &SeekTable{Entries: make([]SeekEntry, n), HasChecksums: esz == 12, Offset: base}
	for i := range st.Entries {
		e := b[skippableHdrSize+int64(i)*esz:]
		st.Entries[i] = SeekEntry{CompressedSize: le.Uint32(e[0:]), DecompressedSize: le.Uint32(e[4:])}
		if esz == 12 {
			st.Entries[i].Checksum = le.Uint32(e[8:])
		}
	}
	var total int64
	for i, e := range st.Entries {
		total += int64(e.CompressedSize)
		if total > base {
			return nil, corrupt(name, int64(i), base+skippableHdrSize+int64(i)*esz, "compressed_size", ErrBadSeekTable, "frames end at %d, past the seek table at %d", total, base)
		}
	}
	if total != base {
		return nil, corrupt(name, -1, base, "compressed_size", ErrBadSeekTable, "frames end at %d, seek table starts at %d", total, base)
	}
	return st, nil
}

// maxSeekFrames bounds the frames of a seek table read from a file (16 TiB of book at 1 MiB
// frames): its size is allocated before the table is read.
const maxSeekFrames = 1 << 24

// ReadSeekTable reads and validates the seek table at the end of a .zst of size bytes.
// It costs two reads of src (footer, then table).
func ReadSeekTable(src io.ReaderAt, size int64, name string) (*SeekTable, error) {
	if size < skippableHdrSize+seekFooterSize {
		return nil, corrupt(name, -1, size, "seek_table", ErrTruncated, "file of %d bytes has no seek table", size)
	}
	var foot [seekFooterSize]byte
	if err := readFull(src, foot[:], size-seekFooterSize); err != nil {
		return nil, fmt.Errorf("read seek table footer of %s: %w", name, err)
	}
	n := int64(binary.LittleEndian.Uint32(foot[0:]))
	esz := int64(8)
	if foot[4]&seekChecksumFlag != 0 {
		esz = 12
	}
	if n > maxSeekFrames {
		return nil, corrupt(name, -1, size-seekFooterSize, "number_of_frames", ErrBadSeekTable, "%d frames, at most %d", n, maxSeekFrames)
	}
	tsize := skippableHdrSize + n*esz + seekFooterSize
	if tsize > size {
		return nil, corrupt(name, -1, size-seekFooterSize, "number_of_frames", ErrTruncated, "%d frames need a %d-byte table in a %d-byte file", n, tsize, size)
	}
	b := make([]byte, tsize)
	if err := readFull(src, b, size-tsize); err != nil {
		return nil, fmt.Errorf("read seek table of %s: %w", name, err)
	}
	return parseSeekTable(b, size-tsize, name)
}

// IndexFromSeekTable rebuilds an Index from the .zst alone (when the .idx is lost). The
// frames must be regular (all but the last of one size) and carry checksums; the result has
// no file hash.
func IndexFromSeekTable(src io.ReaderAt, size int64, name string) (*Index, error) {
	st, err := ReadSeekTable(src, size, name)
	if err != nil {
		return nil, err
	}
	return indexFromSeekTable(st, size, name)
}

func indexFromSeekTable(st *SeekTable, size int64, name string) (*Index, error) {
	if !st.HasChecksums {
		return nil, corrupt(name, -1, size-seekFooterSize+4, "seek_table_descriptor", ErrBadSeekTable, "no frame checksums")
	}
	x := &Index{Frames: make([]Frame, len(st.Entries)), FramesSize: st.Offset, ZstSize: size}
	if len(st.Entries) > 0 {
		x.BlockSize = st.Entries[0].DecompressedSize
	} else {
		x.BlockSize = DefaultBlockSize
	}
	if x.BlockSize == 0 || x.BlockSize > MaxBlockSize {
		return nil, corrupt(name, 0, st.Offset+skippableHdrSize+4, "decompressed_size", ErrIrregularFrames, "%d", x.BlockSize)
	}
	var uoff, coff uint64
	for i, e := range st.Entries {
		last := i == len(st.Entries)-1
		if (!last && e.DecompressedSize != x.BlockSize) || (last && (e.DecompressedSize == 0 || e.DecompressedSize > x.BlockSize)) {
			return nil, corrupt(name, int64(i), st.Offset+skippableHdrSize+12*int64(i)+4, "decompressed_size", ErrIrregularFrames, "%d with first frame %d", e.DecompressedSize, x.BlockSize)
		}
		if e.CompressedSize < minFrameSize {
			return nil, corrupt(name, int64(i), st.Offset+skippableHdrSize+12*int64(i), "compressed_size", ErrBadSeekTable, "%d below the %d-byte minimum frame", e.CompressedSize, minFrameSize)
		}
		x.Frames[i] = Frame{UncompressedOffset: uoff, CompressedOffset: coff, CompressedSize: e.CompressedSize, UncompressedSize: e.DecompressedSize, Checksum: e.Checksum}
		uoff += uint64(e.DecompressedSize)
		coff += uint64(e.CompressedSize)
	}
	x.Size = int64(uoff)
	return x, nil
}

// checkSeekTable reports whether the seek table agrees with the index, frame by frame.
func checkSeekTable(x *Index, st *SeekTable, name string) error {
	if len(st.Entries) != len(x.Frames) {
		return corrupt(name, -1, st.Offset, "number_of_frames", ErrIndexMismatch, "seek table has %d frames, index %d", len(st.Entries), len(x.Frames))
	}
	if st.Offset != x.FramesSize {
		return corrupt(name, -1, st.Offset, "seek_table", ErrIndexMismatch, "seek table at %d, index says %d", st.Offset, x.FramesSize)
	}
	if !st.HasChecksums {
		return corrupt(name, -1, x.ZstSize-seekFooterSize+4, "seek_table_descriptor", ErrIndexMismatch, "seek table has no checksums")
	}
	for i, e := range st.Entries {
		f := x.Frames[i]
		if e.CompressedSize != f.CompressedSize || e.DecompressedSize != f.UncompressedSize || e.Checksum != f.Checksum {
			return corrupt(name, int64(i), st.Offset+skippableHdrSize+12*int64(i), "seek_table_entry", ErrIndexMismatch,
				"seek table {%d %d %#08x}, index {%d %d %#08x}", e.CompressedSize, e.DecompressedSize, e.Checksum, f.CompressedSize, f.UncompressedSize, f.Checksum)
		}
	}
	return nil
}

// readFull reads len(p) bytes at off; a short read is ErrTruncated (io.EOF from a ReaderAt
// is allowed only with n == len(p)).
func readFull(src io.ReaderAt, p []byte, off int64) error {
	n, err := src.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %d of %d bytes at offset %d", ErrTruncated, n, len(p), off)
	}
	return err
}
