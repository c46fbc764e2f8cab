package qzst

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// stepDecoder decodes a frame in steps: a random read decodes its frame only up to the
// bytes it asks for, and a later read of the same frame continues from there. Safe for
// concurrent use; each frameSteps is not.
type stepDecoder interface {
	// begin starts decoding the frame comp into dst (whose capacity is the frame's size).
	// comp and dst must stay untouched until the state is freed.
	begin(comp, dst []byte) (frameSteps, error)
	// stateBytes is the memory one frame in progress holds besides comp and dst.
	stateBytes() int64
	// checksum reports whether an error is a content checksum mismatch.
	checksum(err error) bool
	close()
}

// frameSteps is one frame being decoded in steps.
type frameSteps interface {
	// decodeTo decodes whole zstd blocks until at least want bytes of dst are filled or the
	// frame ends (done: every byte decoded and the content checksum checked). It returns the
	// bytes decoded so far. want >= the frame size asks for the whole frame.
	decodeTo(want int) (n int, done bool, err error)
	// free returns the decoder; the state may not be used again.
	free()
}

// arrivingSteps is a frameSteps that can decode while its compressed bytes still arrive
// (libzstd's): a random read of a remote frame decodes the blocks already received while
// the rest of the ranged GET is on the wire.
type arrivingSteps interface {
	frameSteps
	// decodeAvail is decodeTo with only the frame's first avail compressed bytes present:
	// short reports that it stopped because the next block has not all arrived.
	decodeAvail(want, avail int) (n int, done, short bool, err error)
}

// goSteps is the stepwise decoder of builds without cgo: klauspost's streaming decoder on
// one goroutine (no decoding ahead), which copies out of its own window.
type goSteps struct{ pool chan *zstd.Decoder }

func newGoSteps(keep int) *goSteps { return &goSteps{pool: make(chan *zstd.Decoder, max(keep, 1))} }

func (s *goSteps) begin(comp, dst []byte) (frameSteps, error) {
	var d *zstd.Decoder
	select {
	case d = <-s.pool:
	default:
		var err error
		d, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(MaxBlockSize), zstd.WithDecoderMaxWindow(MaxBlockSize))
		if err != nil {
			return nil, fmt.Errorf("new zstd decoder: %w", err)
		}
	}
	if err := d.Reset(bytes.NewReader(comp)); err != nil {
		s.put(d)
		return nil, err
	}
	return &goFrame{s: s, d: d, dst: dst[:cap(dst)]}, nil
}

func (s *goSteps) put(d *zstd.Decoder) {
	select {
	case s.pool <- d:
	default:
		d.Close()
	}
}

func (s *goSteps) stateBytes() int64 { return 2 * MaxZstdBlock } // its window and block buffers, roughly

func (s *goSteps) checksum(err error) bool { return errors.Is(err, zstd.ErrCRCMismatch) }

func (s *goSteps) close() {
	for {
		select {
		case d := <-s.pool:
			d.Close()
		default:
			return
		}
	}
}

// MaxZstdBlock is the largest zstd block's content (RFC 8878): a stepwise decode passes the
// bytes asked for by less than this.
const MaxZstdBlock = 128 << 10

type goFrame struct {
	s    *goSteps
	d    *zstd.Decoder
	dst  []byte
	n    int
	done bool
}

func (f *goFrame) decodeTo(want int) (int, bool, error) {
	if f.d == nil {
		return f.n, false, errors.New("zstd: frame state freed")
	}
	if f.done {
		return f.n, true, nil
	}
	to := min(want, len(f.dst))
	if to > f.n {
		k, err := io.ReadFull(f.d, f.dst[f.n:to])
		f.n += k
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				err = fmt.Errorf("zstd: frame ends after %d of %d bytes", f.n, len(f.dst))
			}
			return f.n, false, err
		}
	}
	if f.n == len(f.dst) { // the end: one more read reports the checksum or extra bytes
		var one [1]byte
		k, err := f.d.Read(one[:])
		switch {
		case k > 0:
			return f.n, false, fmt.Errorf("zstd: frame holds more than %d bytes", len(f.dst))
		case err != io.EOF:
			return f.n, false, err
		}
		f.done = true
	}
	return f.n, f.done, nil
}

func (f *goFrame) free() {
	if f.d != nil {
		f.s.put(f.d)
		f.d = nil
	}
	f.dst = nil
}
