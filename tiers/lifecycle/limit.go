package lifecycle

import (
	"context"
	"io"
	"sync"
	"time"
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
