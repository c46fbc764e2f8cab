package feed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/venue"
)

// weightLimiter keeps REST request weight under a per-minute budget. Windows are aligned
// to the minute like the venue's; the venue's own count (from its response header) is
// trusted when higher, since other processes may share the IP. A 429/418 pauses all
// requests for the time the venue asks.
type weightLimiter struct {
	mu          sync.Mutex
	budget      int
	span        time.Duration // the budget's window (a minute on Binance)
	window      int64
	used        int
	pausedUntil time.Time
	now         func() time.Time
}

// ErrSnapshot: a REST depth snapshot could not be fetched or read.
var ErrSnapshot = errors.New("snapshot request failed")

func newWeightLimiter(budget int, span time.Duration) *weightLimiter {
	if span <= 0 {
		span = time.Minute
	}
	return &weightLimiter{budget: budget, span: span, now: time.Now}
}

// wait blocks until w weight can be spent, then spends it.
func (l *weightLimiter) wait(ctx context.Context, w int) error {
	for {
		l.mu.Lock()
		now := l.now()
		var sleep time.Duration
		if now.Before(l.pausedUntil) {
			sleep = l.pausedUntil.Sub(now)
		} else {
			if win := now.UnixNano() / int64(l.span); win != l.window {
				l.window, l.used = win, 0
			}
			if l.used+w <= l.budget || (l.used == 0 && w > l.budget) {
				l.used += w
				l.mu.Unlock()
				return nil
			}
			sleep = time.Unix(0, (l.window+1)*int64(l.span)).Sub(now)
		}
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(sleep):
		}
	}
}

// observe takes the venue's count of weight used in the current window.
func (l *weightLimiter) observe(used int) {
	l.mu.Lock()
	if l.now().UnixNano()/int64(l.span) == l.window && used > l.used {
		l.used = used
	}
	l.mu.Unlock()
}

func (l *weightLimiter) pause(d time.Duration) {
	l.mu.Lock()
	if until := l.now().Add(d); until.After(l.pausedUntil) {
		l.pausedUntil = until
	}
	l.mu.Unlock()
}

func (l *weightLimiter) usedNow() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.used
}

type snapJob struct {
	symbol    string
	reason    string
	notBefore time.Time
	attempt   int
}

// snapshotter fetches REST depth snapshots one at a time, within the weight budget, and
// hands them to the recorder. Requests for a symbol already queued are merged.
type snapshotter struct {
	v      venue.Venue
	rec    *Recorder
	cfg    *Config
	m      *Metrics
	log    *slog.Logger
	client *http.Client
	lim    *weightLimiter

	mu     sync.Mutex
	queue  []snapJob
	queued map[string]bool
	wake   chan struct{}
}

func newSnapshotter(v venue.Venue, cfg *Config, m *Metrics, log *slog.Logger) *snapshotter {
	return &snapshotter{v: v, cfg: cfg, m: m, log: log,
		client: &http.Client{Timeout: cfg.RESTTimeout},
		lim:    newWeightLimiter(cfg.RESTWeightPerMin, cfg.RESTWeightWindow),
		queued: map[string]bool{}, wake: make(chan struct{}, 1)}
}

func (s *snapshotter) request(symbol, reason string, delay time.Duration) {
	s.enqueue(snapJob{symbol: symbol, reason: reason, notBefore: time.Now().Add(delay)})
}

func (s *snapshotter) enqueue(j snapJob) {
	s.mu.Lock()
	if s.queued[j.symbol] {
		s.mu.Unlock()
		return
	}
	s.queued[j.symbol] = true
	s.queue = append(s.queue, j)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// next pops the first job that is due, or says how long until one is.
func (s *snapshotter) next() (snapJob, time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return snapJob{}, time.Hour, false
	}
	now := time.Now()
	best := -1
	var wait time.Duration = time.Hour
	for i, j := range s.queue {
		if !j.notBefore.After(now) {
			best = i
			break
		}
		wait = min(wait, j.notBefore.Sub(now))
	}
	if best < 0 {
		return snapJob{}, wait, false
	}
	j := s.queue[best]
	s.queue = append(s.queue[:best], s.queue[best+1:]...)
	delete(s.queued, j.symbol)
	return j, 0, true
}

func (s *snapshotter) run(ctx context.Context) {
	for {
		job, wait, ok := s.next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			case <-time.After(wait):
			}
			continue
		}
		s.fetch(ctx, job)
		if ctx.Err() != nil {
			return
		}
	}
}

func (s *snapshotter) retry(job snapJob, after time.Duration) {
	if after <= 0 {
		base := time.Duration(500<<min(job.attempt, 10)) * time.Millisecond
		after = min(base, s.cfg.SnapshotRetryMax)
		after = after/2 + rand.N(after/2+1)
	}
	s.enqueue(snapJob{symbol: job.symbol, reason: journal.SnapshotRetry, notBefore: time.Now().Add(after), attempt: job.attempt + 1})
}

func (s *snapshotter) fetch(ctx context.Context, job snapJob) {
	req, err := s.v.SnapshotRequest(s.cfg.RESTURL, job.symbol, s.cfg.SnapshotLimit)
	if err != nil {
		s.log.Error("snapshot request", "symbol", job.symbol, "err", err)
		return
	}
	if err := s.lim.wait(ctx, req.Weight); err != nil {
		return
	}
	ch, ok := s.rec.snapshotRequest(journal.SnapshotRequest{Symbol: job.symbol, URL: req.URL, Limit: s.cfg.SnapshotLimit, Weight: req.Weight, Reason: job.reason}, s.rec.clock.Now())
	if !ok {
		return // the symbol has no depth stream
	}
	body, status, err := s.get(ctx, req.URL)
	recvNs := s.rec.clock.Now()
	s.m.restWeight.Set(float64(s.lim.usedNow()))
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return
		}
		s.m.snapshots.WithLabelValues("error").Inc()
		s.log.Warn("snapshot failed", "symbol", job.symbol, "err", err)
		s.retry(job, 0)
	case status.code == http.StatusTooManyRequests || status.code == http.StatusTeapot:
		// 429: over the limit; 418: the IP is banned for continuing after 429s.
		s.m.snapshots.WithLabelValues("rate_limited").Inc()
		d := status.retryAfter
		if d <= 0 {
			d = time.Minute
		}
		s.lim.pause(d)
		s.log.Warn("snapshot rate limited", "symbol", job.symbol, "status", status.code, "retry_after", d)
		s.retry(job, d)
	case status.code != http.StatusOK:
		s.m.snapshots.WithLabelValues("http_error").Inc()
		s.log.Warn("snapshot http error", "symbol", job.symbol, "status", status.code, "body", truncate(body, 200))
		s.retry(job, 0)
	default:
		snap, perr := s.v.ParseSnapshot(body)
		s.rec.snapshotResponse(job.symbol, ch, recvNs, body, snap, perr == nil)
		if perr != nil {
			s.m.snapshots.WithLabelValues("error").Inc()
			s.log.Warn("snapshot body unreadable", "symbol", job.symbol, "err", perr)
			s.retry(job, 0)
			return
		}
		s.m.snapshots.WithLabelValues("ok").Inc()
	}
}

type httpStatus struct {
	code       int
	retryAfter time.Duration
}

const maxSnapshotBody = 64 << 20

func (s *snapshotter) get(ctx context.Context, url string) ([]byte, httpStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, httpStatus{}, fmt.Errorf("%w: %v", ErrSnapshot, err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, httpStatus{}, fmt.Errorf("%w: %v", ErrSnapshot, err)
	}
	defer resp.Body.Close()
	st := httpStatus{code: resp.StatusCode}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil {
			st.retryAfter = time.Duration(secs) * time.Second
		}
	}
	if h := s.v.Limits().UsedWeightHeader; h != "" {
		if used, err := strconv.Atoi(resp.Header.Get(h)); err == nil {
			s.lim.observe(used)
		}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSnapshotBody+1))
	if err != nil {
		return nil, st, fmt.Errorf("%w: read body: %v", ErrSnapshot, err)
	}
	if len(body) > maxSnapshotBody {
		return nil, st, fmt.Errorf("%w: body above %d bytes", ErrSnapshot, maxSnapshotBody)
	}
	return body, st, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
