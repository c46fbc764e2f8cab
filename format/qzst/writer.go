package qzst

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/chronicle/chronicle/internal/fileutil"
)

// DefaultLevel is zstd's default level (BenchmarkTranscode compares it with `zstd -3`).
const DefaultLevel = 3

// Options control Transcode.
type Options struct {
	// BlockSize is the uncompressed size of every frame but the last (default 1 MiB).
	BlockSize int
	// Level is a zstd CLI-style level (default 3). libzstd takes it as is; the Go encoder
	// maps it to its four levels: 1-2 fastest, 3-5 default, 6-9 better, 10+ best.
	Level int
	// Concurrency is the number of frames compressed at once (default GOMAXPROCS).
	Concurrency int
	// MaxInFlight bounds the bytes of input and output buffers held at once
	// (default 4 * Concurrency * BlockSize; at least two blocks' worth is used).
	MaxInFlight int64
	// Encoder names the frame encoder (EncoderLibzstd, EncoderGo); default the first of
	// Encoders().
	Encoder string
	// VerifyFrames decodes every frame right after it is compressed, in the same worker and
	// with the build's default decoder, and compares it with a second read of its source
	// block, so a bad frame (or a bad first read) never leaves the encoder; a mismatch is a
	// *CorruptError wrapping ErrContentMismatch, a frame that does not decode one wrapping
	// ErrFrameDecode.
	VerifyFrames bool
	// Name labels errors (the output's path); Transcode sets it.
	Name   string
	Logger *slog.Logger
}

// ErrInvalidOption: a writer, verifier or cache option out of its range.
var ErrInvalidOption = errors.New("invalid option")

func (o Options) withDefaults() (Options, error) {
	if o.BlockSize == 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.BlockSize < 1 || o.BlockSize > MaxBlockSize {
		return o, fmt.Errorf("%w: block size %d not in [1, %d]", ErrInvalidOption, o.BlockSize, MaxBlockSize)
	}
	if o.Level == 0 {
		o.Level = DefaultLevel
	}
	if o.Level < 1 || o.Level > 22 {
		return o, fmt.Errorf("%w: level %d not in [1, 22]", ErrInvalidOption, o.Level)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = runtime.GOMAXPROCS(0)
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 4 * int64(o.Concurrency) * int64(o.BlockSize)
	}
	if o.Encoder == "" {
		o.Encoder = Encoders()[0]
	}
	if err := checkEncoder(o.Encoder); err != nil {
		return o, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Result describes a finished transcode.
type Result struct {
	Index     *Index
	Size      int64 // uncompressed bytes read from the source
	ZstSize   int64 // bytes of the .zst, seek table included
	IndexSize int64
	SHA256    [32]byte // of the .zst
}

// Transcode compresses size bytes of src into dstZst (seekable zstd) and dstIdx (its index).
// Both are written under temporary names in their directories, fsynced, then renamed (index
// first, so a visible .zst always has its .idx) and the directories fsynced. On failure no
// file is left under either final name.
func Transcode(ctx context.Context, src io.ReaderAt, size int64, dstZst, dstIdx string, opts Options) (res *Result, err error) {
	zf, err := fileutil.CreateTemp(dstZst)
	if err != nil {
		return nil, fmt.Errorf("create temporary zst: %w", err)
	}
	xf, err := fileutil.CreateTemp(dstIdx)
	if err != nil {
		_ = zf.Close()
		_ = os.Remove(zf.Name())
		return nil, fmt.Errorf("create temporary idx: %w", err)
	}
	renamedIdx := false
	defer func() {
		if err != nil {
			_ = zf.Close()
			_ = xf.Close()
			_ = os.Remove(zf.Name())
			_ = os.Remove(xf.Name())
			if renamedIdx {
				_ = os.Remove(dstIdx)
			}
		}
	}()
	if opts.Name == "" {
		opts.Name = dstZst
	}
	zw := bufio.NewWriterSize(zf, 1<<20)
	xw := bufio.NewWriterSize(xf, 64<<10)
	res, err = TranscodeTo(ctx, src, size, zw, xw, opts)
	if err != nil {
		return nil, err
	}
	for _, s := range []struct {
		w *bufio.Writer
		f *os.File
	}{{zw, zf}, {xw, xf}} {
		if err = s.w.Flush(); err != nil {
			return nil, fmt.Errorf("write %s: %w", s.f.Name(), err)
		}
		if err = s.f.Sync(); err != nil {
			return nil, fmt.Errorf("fsync %s: %w", s.f.Name(), err)
		}
		if err = s.f.Close(); err != nil {
			return nil, fmt.Errorf("close %s: %w", s.f.Name(), err)
		}
	}
	if err = os.Rename(xf.Name(), dstIdx); err != nil {
		return nil, fmt.Errorf("rename idx: %w", err)
	}
	renamedIdx = true
	if err = os.Rename(zf.Name(), dstZst); err != nil {
		return nil, fmt.Errorf("rename zst: %w", err)
	}
	if err = fileutil.SyncDir(filepath.Dir(dstZst)); err != nil {
		return nil, err
	}
	if filepath.Dir(dstIdx) != filepath.Dir(dstZst) {
		if err = fileutil.SyncDir(filepath.Dir(dstIdx)); err != nil {
			return nil, err
		}
	}
	return res, nil
}

type encJob struct {
	i    int
	buf  []byte // the buffer the block is read into
	in   []byte // the block: buf[:its length]
	out  []byte
	err  error
	done chan struct{}
}

// TranscodeTo is Transcode into writers: the .zst bytes go to zst in order, then the encoded
// index to idx. Frames are compressed in parallel, at most MaxInFlight bytes buffered.
func TranscodeTo(ctx context.Context, src io.ReaderAt, size int64, zst, idx io.Writer, opts Options) (*Result, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if size < 0 {
		return nil, fmt.Errorf("%w: negative size %d", ErrInvalidOption, size)
	}
	bs := int64(o.BlockSize)
	n64 := (size + bs - 1) / bs
	if n64 > maxFrames {
		return nil, fmt.Errorf("%w: %d frames exceed the seek table's %d", ErrInvalidOption, n64, uint64(maxFrames))
	}
	n := int(n64)
	var dec frameDecoder
	if o.VerifyFrames {
		// The build's first decoder (libzstd with cgo): the one readers decode with, and a
		// little cheaper per byte than klauspost's (BenchmarkWarmToCold MB/cpu_s).
		if dec, err = newDecoderFuncs[Decoders()[0]](o.Concurrency); err != nil {
			return nil, err
		}
		defer dec.close()
	}
	encs := make([]frameEncoder, o.Concurrency)
	defer func() {
		for _, e := range encs {
			if e != nil {
				e.close()
			}
		}
	}()
	for w := range encs {
		if encs[w], err = newEncoderFuncs[o.Encoder](o.Level, o.BlockSize); err != nil {
			return nil, err
		}
	}

	slots := int(max(2, o.MaxInFlight/(2*bs)))
	slots = min(slots, max(n, 1))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	free := make(chan *encJob, slots)
	for range slots {
		free <- &encJob{}
	}
	work := make(chan *encJob, slots)
	order := make(chan *encJob, slots)
	go func() { // dispatch in order; a job comes back to free only after it is written
		defer close(order)
		defer close(work)
		for i := range n {
			var j *encJob
			select {
			case j = <-free:
			case <-ctx.Done():
				return
			}
			j.i, j.err, j.done = i, nil, make(chan struct{})
			work <- j
			order <- j
		}
	}()
	var wg sync.WaitGroup
	for _, enc := range encs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// This worker's buffers for checking its frames.
			var v verifier
			if dec != nil {
				v = verifier{dec: dec, src: src, name: o.Name, bs: bs, decoded: make([]byte, 0, bs), again: make([]byte, bs)}
			}
			for j := range work {
				j.err = encodeBlock(ctx, enc, src, size, bs, j)
				if j.err == nil && dec != nil {
					j.err = v.check(j)
				}
				close(j.done)
			}
		}()
	}
	h := sha256.New()
	out := io.MultiWriter(zst, h)
	frames := make([]Frame, 0, min(n, 1<<20))
	var coff int64
	var werr error
	for j := range order {
		<-j.done
		if werr == nil && j.err != nil {
			werr = j.err
		}
		if werr == nil {
			f := Frame{
				UncompressedOffset: uint64(int64(j.i) * bs),
				CompressedOffset:   uint64(coff),
				CompressedSize:     uint32(len(j.out)),
				UncompressedSize:   uint32(len(j.in)),
				Checksum:           binary.LittleEndian.Uint32(j.out[len(j.out)-4:]),
				CompressedCRC:      CompressedCRC(j.out),
			}
			if _, err := out.Write(j.out); err != nil {
				werr = fmt.Errorf("write frame %d: %w", j.i, err)
			}
			frames = append(frames, f)
			coff += int64(len(j.out))
		}
		if werr != nil {
			cancel()
		}
		free <- j
	}
	wg.Wait()
	if werr != nil {
		return nil, werr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("transcode: %w", err)
	}
	return finish(out, h, idx, frames, uint32(bs), size, coff, o.Logger)
}

func encodeBlock(ctx context.Context, enc frameEncoder, src io.ReaderAt, size, bs int64, j *encJob) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("transcode: %w", err)
	}
	off := int64(j.i) * bs
	ln := min(bs, size-off) // never zero: frames exist only for non-empty blocks
	if int64(cap(j.buf)) < ln {
		j.buf = make([]byte, bs)
	}
	j.in = j.buf[:ln]
	if err := readFull(src, j.in, off); err != nil {
		return fmt.Errorf("read source block %d at offset %d: %w", j.i, off, err)
	}
	out, err := enc.encode(j.out[:0], j.in)
	if err != nil {
		return fmt.Errorf("compress block %d at offset %d: %w", j.i, off, err)
	}
	j.out = out
	return nil
}

// verifier checks a frame right after it is encoded: decoded, it must equal a second read
// of the source block. Comparing with the source rather than with the block in memory also
// catches a read that returned wrong bytes the first time.
type verifier struct {
	dec            frameDecoder
	src            io.ReaderAt
	name           string
	bs             int64
	decoded, again []byte
}

// check verifies j's frame. Offsets in its errors are uncompressed ones: the frame's place
// in the output is not known yet.
func (v *verifier) check(j *encJob) (err error) {
	off := int64(j.i) * v.bs
	data, err := v.dec.decodeAll(j.out, v.decoded)
	if err != nil {
		return corrupt(v.name, int64(j.i), off, "", ErrFrameDecode, "decoding the frame just compressed: %v", err)
	}
	again := v.again[:len(j.in)]
	if err := readFull(v.src, again, off); err != nil {
		return fmt.Errorf("read source block %d at offset %d again: %w", j.i, off, err)
	}
	if !bytes.Equal(data, again) {
		return corrupt(v.name, int64(j.i), off, "content", ErrContentMismatch, "the frame just compressed decodes to %d bytes that differ from a second read of uncompressed bytes %d-%d",
			len(data), off, off+int64(len(again)))
	}
	return nil
}

func finish(out io.Writer, h hash.Hash, idx io.Writer, frames []Frame, bs uint32, size, framesSize int64, log *slog.Logger) (*Result, error) {
	if _, err := out.Write(appendSeekTable(nil, frames)); err != nil {
		return nil, fmt.Errorf("write seek table: %w", err)
	}
	x := &Index{BlockSize: bs, Frames: frames, Size: size, FramesSize: framesSize, ZstSize: framesSize + seekTableSize(len(frames)), HasCompressedCRC: true}
	h.Sum(x.SHA256[:0])
	b, err := x.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if _, err := idx.Write(b); err != nil {
		return nil, fmt.Errorf("write index: %w", err)
	}
	log.Debug("qzst transcoded", "size", size, "zst_size", x.ZstSize, "frames", len(frames), "block_size", bs)
	return &Result{Index: x, Size: size, ZstSize: x.ZstSize, IndexSize: int64(len(b)), SHA256: x.SHA256}, nil
}
