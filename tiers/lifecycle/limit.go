package lifecycle

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/chronicle/chronicle/tiers/lifecycle/vfs"
	"golang.org/x/sys/unix"
)

// limiter is a token bucket over bytes shared by every move. A read larger than the
// bucket runs into debt and the next readers wait it off, so any read size works.
type limiter struct {
	rate   float64 // bytes per second
	burst  float64
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newLimiter(bytesPerSec int64) *limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	r := float64(bytesPerSec)
	return &limiter{rate: r, burst: max(r/10, 1<<20), tokens: max(r/10, 1<<20), last: time.Now()}
}

// wait takes n bytes from the bucket, sleeping while it is in debt.
func (l *limiter) wait(ctx context.Context, n int) error {
	if l == nil || n <= 0 {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	l.tokens -= float64(n)
	debt := -l.tokens
	l.mu.Unlock()
	if debt <= 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(debt / l.rate * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sourceReader meters and rate-limits reads of a move's source file and reports how far
// the first pass has got (for progress bars).
type sourceReader struct {
	ctx      context.Context
	r        io.ReaderAt
	lim      *limiter
	progress func(int64)
	mu       sync.Mutex
	high     int64 // furthest byte read so far
}

func (s *sourceReader) ReadAt(p []byte, off int64) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	if err := s.lim.wait(s.ctx, len(p)); err != nil {
		return 0, err
	}
	n, err := s.r.ReadAt(p, off)
	if n > 0 {
		s.advance(off + int64(n))
	}
	return n, err
}

// advance reports progress up to end.
func (s *sourceReader) advance(end int64) {
	if s.progress == nil {
		return
	}
	s.mu.Lock()
	var delta int64
	if end > s.high {
		delta, s.high = end-s.high, end
	}
	s.mu.Unlock()
	if delta > 0 {
		s.progress(delta)
	}
}

// done reports the bytes the progress bar has not seen yet, so a finished move counts fully.
func (s *sourceReader) done(total int64) {
	s.mu.Lock()
	rest := total - s.high
	s.high = max(s.high, total)
	s.mu.Unlock()
	if s.progress != nil && rest > 0 {
		s.progress(rest)
	}
}

// mappedSource is a sourceReader whose file is also mapped, so the transcoder compresses
// and verifies straight from the page cache instead of copying each block out twice
// (qzst.BlockSource). Blocks are metered like reads.
type mappedSource struct {
	*sourceReader
	mem []byte
}

// mapSource maps f when it is a real file (the fault-injecting test filesystem's files are
// not, and stay on ReadAt). The caller unmaps with close.
func mapSource(sr *sourceReader, f vfs.File, size int64) (*mappedSource, error) {
	of, ok := f.(*os.File)
	if !ok || size <= 0 || int64(int(size)) != size {
		return nil, nil
	}
	mem, err := unix.Mmap(int(of.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", of.Name(), err)
	}
	_ = unix.Madvise(mem, unix.MADV_SEQUENTIAL) // a hint: more readahead, early reclaim
	return &mappedSource{sourceReader: sr, mem: mem}, nil
}

func (s *mappedSource) Block(off int64, n int) ([]byte, error) {
	if off < 0 || n < 0 || off+int64(n) > int64(len(s.mem)) {
		return nil, fmt.Errorf("block of %d bytes at %d is beyond the %d mapped: %w", n, off, len(s.mem), io.ErrUnexpectedEOF)
	}
	if err := s.ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.lim.wait(s.ctx, n); err != nil {
		return nil, err
	}
	b := s.mem[off : off+int64(n)]
	// Map the block's pages in one call rather than one fault per 4 KiB page, and learn
	// of an I/O error here rather than as SIGBUS (Linux 5.14+; older kernels say EINVAL
	// and the pages fault in one by one).
	if err := unix.Madvise(b, unix.MADV_POPULATE_READ); err != nil && err != unix.EINVAL {
		return nil, fmt.Errorf("read %d bytes at %d: %w", n, off, err)
	}
	s.advance(off + int64(n))
	return b, nil
}

func (s *mappedSource) close() error { return unix.Munmap(s.mem) }
