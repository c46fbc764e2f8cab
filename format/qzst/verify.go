package qzst

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	Name string
	// Original, when set, is the source the .zst was made from; every decoded byte is
	// compared with it.
	Original io.ReaderAt
	// Concurrency is the number of frames decoded at once (default GOMAXPROCS).
	Concurrency int
	// HashOnly skips decoding: the file is checked by its size, seek table and SHA-256
	// against the index, which must carry the hash. It is for a file just written by
	// Transcode with Options.VerifyFrames, whose frames were decoded and compared with the
	// source before they were written: the hash then proves the file holds those frames.
	HashOnly bool
}

var (
	ErrContentMismatch = errors.New("decoded content differs from original")
	ErrFileHash        = errors.New("file hash mismatch")
)

// Verify checks a .zst of srcSize bytes against its index completely: sizes, the seek table,
// every frame's envelope, decoded size and content checksum, the file's SHA-256 when the
// index has one, and optionally the decoded bytes against the original. The tier manager
// runs it after transcoding and before trusting a copy.
func Verify(ctx context.Context, src io.ReaderAt, srcSize int64, idx *Index, opts VerifyOptions) error {
	name := opts.Name
	if err := idx.check(name); err != nil {
		return err
	}
	if srcSize != idx.ZstSize {
		return corrupt(name, -1, min(srcSize, idx.ZstSize), "zst_size", ErrIndexMismatch, "file has %d bytes, index says %d", srcSize, idx.ZstSize)
	}
	st, err := ReadSeekTable(src, srcSize, name)
	if err != nil {
		return err
	}
	if err := checkSeekTable(idx, st, name); err != nil {
		return err
	}
	if opts.HashOnly {
		return verifyHash(ctx, src, srcSize, idx, name)
	}
	conc := opts.Concurrency
	if conc <= 0 {
		conc = runtime.GOMAXPROCS(0)
	}
	// klauspost's decoder, whatever the cache uses: an implementation independent of the
	// libzstd encoder checks its output.
	zd, err := newFrameDecoder(conc)
	if err != nil {
		return err
	}
	defer zd.Close()
	dec := goDecoder{d: zd, st: newGoSteps(1)}
	h := sha256.New()
	const chunk = 16 << 20
	var comp []byte
	sem := make(chan struct{}, conc)
	bufs := sync.Pool{New: func() any { b := make([]byte, 2*int(idx.BlockSize)); return &b }}
	for i := 0; i < len(idx.Frames); {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("verify %s: %w", name, err)
		}
		j := i + 1
		start := int64(idx.Frames[i].CompressedOffset)
		for j < len(idx.Frames) && int64(idx.Frames[j].CompressedOffset+uint64(idx.Frames[j].CompressedSize))-start <= chunk {
			j++
		}
		end := int64(idx.Frames[j-1].CompressedOffset) + int64(idx.Frames[j-1].CompressedSize)
		if int64(cap(comp)) < end-start {
			comp = make([]byte, end-start)
		}
		comp = comp[:end-start]
		if err := readFull(src, comp, start); err != nil {
			return readErr(name, i, start, err)
		}
		h.Write(comp)
		errs := make([]error, j-i)
		var wg sync.WaitGroup
		for fi := i; fi < j; fi++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				f := idx.Frames[fi]
				bp := bufs.Get().(*[]byte)
				defer bufs.Put(bp)
				b := *bp
				fc := comp[int64(f.CompressedOffset)-start:][:f.CompressedSize]
				err := checkCompressedCRC(idx, fi, fc, name)
				var data []byte
				if err == nil {
					data, err = decodeFrame(dec, idx, fi, fc, b[:idx.BlockSize], name)
				}
				if err == nil && opts.Original != nil {
					orig := b[idx.BlockSize:][:f.UncompressedSize]
					if rerr := readFull(opts.Original, orig, int64(f.UncompressedOffset)); rerr != nil {
						err = fmt.Errorf("read original of %s at offset %d: %w", name, f.UncompressedOffset, rerr)
					} else if !bytes.Equal(data, orig) {
						err = corrupt(name, int64(fi), int64(f.CompressedOffset), "content", ErrContentMismatch, "uncompressed bytes %d-%d", f.UncompressedOffset, f.UncompressedOffset+uint64(f.UncompressedSize))
					}
				}
				errs[fi-i] = err
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		i = j
	}
	if opts.Original != nil {
		// The original must end where the index says: one byte more is a mismatch.
		var one [1]byte
		if n, _ := opts.Original.ReadAt(one[:], idx.Size); n != 0 {
			return corrupt(name, -1, idx.Size, "uncompressed_size_total", ErrContentMismatch, "original is longer than %d bytes", idx.Size)
		}
	}
	if idx.hasHash() {
		tail := make([]byte, srcSize-idx.FramesSize)
		if err := readFull(src, tail, idx.FramesSize); err != nil {
			return readErr(name, -1, idx.FramesSize, err)
		}
		h.Write(tail)
		if sum := h.Sum(nil); !bytes.Equal(sum, idx.SHA256[:]) {
			return corrupt(name, -1, 0, "sha256", ErrFileHash, "file %x, index %x", sum, idx.SHA256)
		}
	}
	return nil
}

// readErr labels a failed source read: a short read is corruption, anything else I/O.
func readErr(name string, frame int, off int64, err error) error {
	if errors.Is(err, ErrTruncated) {
		return corrupt(name, int64(frame), off, "", ErrTruncated, "%v", err)
	}
	return fmt.Errorf("read %s at offset %d: %w", name, off, err)
}

// verifyHash compares the SHA-256 of the whole file with the index's.
func verifyHash(ctx context.Context, src io.ReaderAt, srcSize int64, idx *Index, name string) error {
	if !idx.hasHash() {
		return fmt.Errorf("%w: verify %s by hash: the index has no SHA-256", ErrInvalidOption, name)
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	// The frames' CRC-32Cs (index version 2) are checked in the same pass: a random read
	// trusts them for the bytes it decodes before the frame's content checksum.
	fi, crc := 0, uint32(0)
	for off := int64(0); off < srcSize; {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("verify %s: %w", name, err)
		}
		b := buf[:min(int64(len(buf)), srcSize-off)]
		if err := readFull(src, b, off); err != nil {
			return readErr(name, -1, off, err)
		}
		h.Write(b)
		for p, at := b, off; idx.HasCompressedCRC && len(p) > 0 && fi < len(idx.Frames); {
			f := idx.Frames[fi]
			end := int64(f.CompressedOffset) + int64(f.CompressedSize)
			k := min(int64(len(p)), end-at)
			crc = crc32.Update(crc, castagnoli, p[:k])
			p, at = p[k:], at+k
			if at == end {
				if crc != f.CompressedCRC {
					return corrupt(name, int64(fi), int64(f.CompressedOffset), "compressed_crc32c", ErrFrameChecksum, "frame bytes have %#08x, index %#08x", crc, f.CompressedCRC)
				}
				fi, crc = fi+1, 0
			}
		}
		off += int64(len(b))
	}
	if sum := h.Sum(nil); !bytes.Equal(sum, idx.SHA256[:]) {
		return corrupt(name, -1, 0, "sha256", ErrFileHash, "file %x, index %x", sum, idx.SHA256)
	}
	return nil
}
