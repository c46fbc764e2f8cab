//go:build cgo

package qzst

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	ddzstd "github.com/DataDog/zstd"
	"github.com/cespare/xxhash/v2"
)

func init() {
	newEncoderFuncs[EncoderLibzstd] = newLibzstdEncoder
	newDecoderFuncs[DecoderLibzstd] = func(conc int) (frameDecoder, error) {
		return &libzstdDecoder{ctxs: make(chan ddzstd.Ctx, max(conc, 1)), st: newLibzstdSteps(conc)}, nil
	}
}

// libzstdDecoder decodes with the C library's one-shot API, which uses the destination
// as its window: memory stays bounded by the destination. Contexts are pooled, one per
// concurrent call, in a channel rather than a sync.Pool, which every GC would empty: a new
// context allocates its workspace anew.
type libzstdDecoder struct {
	ctxs chan ddzstd.Ctx
	st   *libzstdSteps
}

func (d *libzstdDecoder) decodeAll(src, dst []byte) ([]byte, error) {
	if len(src) == 0 || cap(dst) == 0 {
		return nil, errors.New("libzstd decompress: empty frame or buffer")
	}
	var c ddzstd.Ctx
	select {
	case c = <-d.ctxs:
	default:
		c = ddzstd.NewCtx()
	}
	n, err := c.DecompressInto(dst[:cap(dst)], src)
	select {
	case d.ctxs <- c:
	default: // more concurrent calls than kept contexts: this one goes to the GC
	}
	if err != nil {
		return nil, fmt.Errorf("libzstd decompress: %w", err)
	}
	return dst[:n], nil
}

// errChecksum: the library's ZSTD_error_checksum_wrong, known by its message.
func (d *libzstdDecoder) errChecksum(err error) bool {
	var code ddzstd.ErrorCode
	return errors.As(err, &code) && strings.Contains(code.Error(), "checksum")
}

func (d *libzstdDecoder) steps() stepDecoder { return d.st }

func (d *libzstdDecoder) close() { d.st.close() }

// libzstdEncoder compresses with the C library's one-shot API. That API writes the content
// size (the source size is known) but has no switch for the content checksum in this
// binding, so the checksum is added the way RFC 8878 defines it: set
// Content_Checksum_flag in the frame header descriptor and append the low 32 bits of
// XXH64(content, seed 0). The blocks are the same bytes libzstd writes with the checksum on.
type libzstdEncoder struct {
	ctx   ddzstd.Ctx
	level int
}

func newLibzstdEncoder(level, _ int) (frameEncoder, error) {
	return &libzstdEncoder{ctx: ddzstd.NewCtx(), level: level}, nil
}

func (e *libzstdEncoder) encode(dst, src []byte) ([]byte, error) {
	sum := xxhash.Sum64(src)
	start := len(dst)
	// Room for the worst case and the checksum, so the binding writes into dst.
	dst = slices.Grow(dst, ddzstd.CompressBound(len(src))+4)
	out, err := e.ctx.CompressLevel(dst[start:], src, e.level)
	if err != nil {
		return nil, fmt.Errorf("libzstd compress: %w", err)
	}
	if len(out) < 6 || binary.LittleEndian.Uint32(out) != zstdFrameMagic || out[4]&zstdChecksumFlag != 0 {
		return nil, fmt.Errorf("libzstd compress: %d bytes are not a zstd frame without checksum", len(out))
	}
	out = dst[:start+len(out)]
	out[start+4] |= zstdChecksumFlag
	return binary.LittleEndian.AppendUint32(out, uint32(sum)), nil
}

func (e *libzstdEncoder) close() {}
