//go:build cgo

package qzst

/*
#include <stddef.h>

// libzstd's buffer-less streaming decoder (zstd.h, ZSTD_STATIC_LINKING_ONLY), linked from the
// copy github.com/DataDog/zstd builds into the binary. It decodes one block per call straight
// into a contiguous destination, whose earlier bytes are the window: a frame can be decoded
// up to any block and continued later from the same context.
typedef struct ZSTD_DCtx_s ZSTD_DCtx;
ZSTD_DCtx* ZSTD_createDCtx(void);
size_t ZSTD_freeDCtx(ZSTD_DCtx* dctx);
size_t ZSTD_sizeof_DCtx(const ZSTD_DCtx* dctx);
size_t ZSTD_decompressBegin(ZSTD_DCtx* dctx);
size_t ZSTD_nextSrcSizeToDecompress(ZSTD_DCtx* dctx);
size_t ZSTD_decompressContinue(ZSTD_DCtx* dctx, void* dst, size_t dstCapacity, const void* src, size_t srcSize);
unsigned ZSTD_isError(size_t code);
const char* ZSTD_getErrorName(size_t code);

typedef struct {
	size_t in;   // compressed bytes consumed
	size_t out;  // bytes decoded into dst
	size_t err;  // a libzstd error code, or 0
	int done;    // the frame ended (its checksum, if any, was checked)
	int short_src; // the frame needs more bytes than src holds
} qz_progress;

// qz_decode_until continues the frame in dctx until at least want bytes are in dst or the
// frame ends: whole blocks, so it may pass want by up to one block. want >= cap means the
// whole frame, checksum included. srcSize is what of the frame has arrived: short_src says
// the next block is not all there yet.
static void qz_decode_until(ZSTD_DCtx* dctx, char* dst, size_t cap, const char* src, size_t srcSize, size_t want, qz_progress* p) {
	p->short_src = 0;
	for (;;) {
		if (p->out >= want && p->out < cap) return;
		size_t n = ZSTD_nextSrcSizeToDecompress(dctx);
		if (n == 0) { p->done = 1; return; }
		if (n > srcSize - p->in) { p->short_src = 1; return; }
		size_t r = ZSTD_decompressContinue(dctx, dst + p->out, cap - p->out, src + p->in, n);
		if (ZSTD_isError(r)) { p->err = r; return; }
		p->in += n;
		p->out += r;
	}
}
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// libzstdSteps starts frames on pooled decoder contexts.
type libzstdSteps struct{ ctxs chan *C.ZSTD_DCtx }

func newLibzstdSteps(keep int) *libzstdSteps {
	return &libzstdSteps{ctxs: make(chan *C.ZSTD_DCtx, max(keep, 1))}
}

func (s *libzstdSteps) begin(comp, dst []byte) (frameSteps, error) {
	if len(comp) == 0 || cap(dst) == 0 {
		return nil, errors.New("libzstd decompress: empty frame or buffer")
	}
	var d *C.ZSTD_DCtx
	select {
	case d = <-s.ctxs:
	default:
		if d = C.ZSTD_createDCtx(); d == nil {
			return nil, errors.New("libzstd: cannot allocate a decoder context")
		}
	}
	if r := C.ZSTD_decompressBegin(d); C.ZSTD_isError(r) != 0 {
		s.put(d)
		return nil, libzstdErr(r)
	}
	return &libzstdFrame{s: s, d: d, comp: comp, dst: dst[:cap(dst)]}, nil
}

func (s *libzstdSteps) put(d *C.ZSTD_DCtx) {
	select {
	case s.ctxs <- d:
	default:
		C.ZSTD_freeDCtx(d)
	}
}

func (s *libzstdSteps) close() {
	for {
		select {
		case d := <-s.ctxs:
			C.ZSTD_freeDCtx(d)
		default:
			return
		}
	}
}

// stateBytes is what one frame in progress holds besides its buffers: the context.
func (s *libzstdSteps) stateBytes() int64 { return libzstdCtxBytes }

// libzstdCtxBytes is the size of a decoder context (measured once).
var libzstdCtxBytes = func() int64 {
	d := C.ZSTD_createDCtx()
	defer C.ZSTD_freeDCtx(d)
	C.ZSTD_decompressBegin(d)
	return int64(C.ZSTD_sizeof_DCtx(d))
}()

// libzstdFrame is one frame being decoded in steps. Not safe for concurrent use.
type libzstdFrame struct {
	s    *libzstdSteps
	d    *C.ZSTD_DCtx
	comp []byte
	dst  []byte
	p    C.qz_progress
}

func (f *libzstdFrame) decodeTo(want int) (int, bool, error) {
	n, done, short, err := f.decodeAvail(want, len(f.comp))
	if err == nil && short {
		err = fmt.Errorf("libzstd decompress: frame continues past its %d bytes", len(f.comp))
	}
	return n, done, err
}

func (f *libzstdFrame) decodeAvail(want, avail int) (n int, done, short bool, err error) {
	if f.d == nil {
		return 0, false, false, errors.New("libzstd decompress: frame state freed")
	}
	if f.p.done != 0 {
		return int(f.p.out), true, false, nil
	}
	avail = min(avail, len(f.comp))
	C.qz_decode_until(f.d, (*C.char)(unsafe.Pointer(unsafe.SliceData(f.dst))), C.size_t(len(f.dst)),
		(*C.char)(unsafe.Pointer(unsafe.SliceData(f.comp))), C.size_t(avail), C.size_t(want), &f.p)
	if f.p.err != 0 {
		return int(f.p.out), false, false, libzstdErr(f.p.err)
	}
	return int(f.p.out), f.p.done != 0, f.p.short_src != 0, nil
}

func (f *libzstdFrame) free() {
	if f.d != nil {
		f.s.put(f.d)
		f.d = nil
	}
	f.comp, f.dst = nil, nil
}

// libzstdStepErr is a libzstd error code from the stepwise decoder.
type libzstdStepErr struct{ name string }

func (e libzstdStepErr) Error() string { return "libzstd decompress: " + e.name }

func libzstdErr(code C.size_t) error {
	return libzstdStepErr{name: C.GoString(C.ZSTD_getErrorName(code))}
}

func (s *libzstdSteps) checksum(err error) bool {
	var e libzstdStepErr
	return errors.As(err, &e) && strings.Contains(e.name, "checksum")
}
