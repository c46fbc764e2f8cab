package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/chronicle/chronicle/internal/fileutil/vfs"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers"
	"github.com/chronicle/chronicle/tiers/objstore"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Manager.
type Options struct {
	Config Config
	Roots  layout.Roots
	// Store is the remote tier; nil disables the remote policy.
	Store objstore.Store
	// FS is the filesystem moves go through (nil = vfs.OS); tests inject faults here.
	FS vfs.FS
	// Now is the clock partition ages are measured with (nil = time.Now).
	Now func() time.Time
	// Registerer receives the chronicle_tier_* metrics (nil = none).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Host is this host's id ([host] id): it signs the claims and stubs of its uploads
	// and names its own slot, hosts/{id}, when another host holds a partition's key.
	// Required: the main resolves it ([host] id or the machine's name, config.ResolveHost),
	// so that the tier manager reads no configuration of its own.
	Host string
}

// Manager moves partitions between tiers. One Manager (one process) owns the tier roots:
// recovery treats every temporary file of its own naming as a leftover.
type Manager struct {
	cfg   Config
	roots layout.Roots
	host  string
	store objstore.Store
	fs    vfs.FS
	now   func() time.Time
	log   *slog.Logger
	met   *Metrics
	mv    *mover

	mu       sync.Mutex
	fails    map[failKey]*failure
	stubSeen map[string]stubSeen     // stub path -> version seen (needsPublish)
	settling map[layout.Key]settling // hot books waiting to settle (planHot)
	// Catalogs (catalog.go): symbols whose versions in the bucket changed since the last
	// sync, and whether a sync has covered the whole cold tree yet.
	touched        map[symbolKey]bool
	catalogsSynced bool
}

type failKey struct {
	key    layout.Key
	policy Policy
}

type failure struct {
	count int
	next  time.Time
	err   error
}

// New checks the configuration and returns a Manager.
func New(opts Options) (*Manager, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.Roots.Remote != "" && opts.Store == nil {
		return nil, fmt.Errorf("remote tier %q: %w", opts.Roots.Remote, tiers.ErrNoRemote)
	}
	seen := map[string]layout.Tier{}
	for t := layout.Hot; t <= layout.Cold; t++ {
		r := opts.Roots.Local(t)
		if r == "" {
			continue
		}
		r = filepath.Clean(r)
		if prev, dup := seen[r]; dup {
			return nil, fmt.Errorf("[tiers] %s and %s are the same folder %s: %w", prev, t, r, ErrInvalidConfig)
		}
		seen[r] = t
	}
	if !layout.ValidName(opts.Host) {
		return nil, fmt.Errorf("host id %q: want 1-64 of a-z 0-9 '-' '_' '.', not starting with '.': %w", opts.Host, ErrInvalidConfig)
	}
	m := &Manager{cfg: opts.Config, roots: opts.Roots, host: opts.Host, store: opts.Store, fs: opts.FS, now: opts.Now,
		log: opts.Logger, fails: map[failKey]*failure{}, stubSeen: map[string]stubSeen{}}
	if m.fs == nil {
		m.fs = vfs.OS{}
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.met = newMetrics(opts.Registerer)
	m.mv = &mover{fs: m.fs, lim: newLimiter(int64(m.cfg.Bandwidth)), log: m.log}
	return m, nil
}

// Result sums up executed moves.
type Result struct {
	Moved  int
	Failed int
	Bytes  int64
	Errors []error
}

// Scan recovers interrupted moves and plans the next ones.
func (m *Manager) Scan(ctx context.Context) (*Plan, error) {
	start := time.Now()
	if _, err := m.Recover(ctx); err != nil {
		return nil, err
	}
	v, err := scan(m.fs, m.roots, false)
	if err != nil {
		return nil, err
	}
	p := m.plan(v, m.now())
	m.observe(v, p)
	m.met.ScanSeconds.Observe(time.Since(start).Seconds())
	m.met.LastScan.SetToCurrentTime()
	return p, nil
}

// PlanOnly plans without changing anything (apply --dry-run, status): partitions that
// recovery would fix are reported as problems.
func (m *Manager) PlanOnly(ctx context.Context) (*Plan, error) {
	v, err := scan(m.fs, m.roots, false)
	if err != nil {
		return nil, err
	}
	return m.plan(v, m.now()), nil
}

func (m *Manager) observe(v *view, p *Plan) {
	var counts [4]int
	for _, k := range v.keys {
		if cs := v.parts[k].copies(); len(cs) > 0 {
			counts[cs[0].tier]++
		}
	}
	for t := layout.Hot; t <= layout.Remote; t++ {
		m.met.Partitions.WithLabelValues(t.String()).Set(float64(counts[t]))
	}
	var pend [numPolicies]int
	for _, mv := range p.Moves {
		pend[mv.Policy]++
	}
	for pol := Policy(0); pol < numPolicies; pol++ {
		m.met.Pending.WithLabelValues(pol.label()).Set(float64(pend[pol]))
	}
	m.met.Kept.Set(float64(len(p.Kept)))
	m.mu.Lock()
	m.met.Backoff.Set(float64(len(m.fails)))
	m.mu.Unlock()
}

// Execute runs the plan's moves, Concurrency at a time. When ctx ends, no new move
// starts; a move in flight finishes if it is past its commit point and rolls back
// otherwise. progress (may be nil) receives source bytes as they are processed.
func (m *Manager) Execute(ctx context.Context, p *Plan, progress func(int64)) Result {
	var res Result
	var mu sync.Mutex
	work := make(chan Move)
	var wg sync.WaitGroup
	var prog func(int64)
	if progress != nil {
		prog = func(n int64) { mu.Lock(); progress(n); mu.Unlock() }
	}
	for range m.cfg.Concurrency {
		wg.Go(func() {
			for mv := range work {
				err := m.Move(ctx, mv, prog)
				mu.Lock()
				if err != nil {
					res.Failed++
					res.Errors = append(res.Errors, err)
				} else {
					res.Moved++
					res.Bytes += mv.Bytes
				}
				mu.Unlock()
			}
		})
	}
feed:
	for _, mv := range p.Moves {
		select {
		case work <- mv:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return res
}

// Apply recovers, plans and executes until nothing is left to move (a partition may take
// several steps in one call, hot -> warm -> cold -> remote), or a round moves nothing.
func (m *Manager) Apply(ctx context.Context, progress func(int64)) (Result, error) {
	var total Result
	for round := 0; round < 4; round++ {
		p, err := m.Scan(ctx)
		if err != nil {
			return total, err
		}
		if len(p.Moves) == 0 {
			break
		}
		res := m.Execute(ctx, p, progress)
		total.Moved += res.Moved
		total.Failed += res.Failed
		total.Bytes += res.Bytes
		total.Errors = append(total.Errors, res.Errors...)
		if res.Moved == 0 || ctx.Err() != nil {
			break
		}
	}
	if ctx.Err() == nil {
		m.SyncCatalogs(ctx) // logged and counted; the moves stand either way
	}
	return total, nil
}

// Run scans every ScanInterval until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		p, err := m.Scan(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			m.log.Error("scan failed", "err", err)
		} else {
			if len(p.Moves) > 0 {
				m.log.Info("scan planned moves", "moves", len(p.Moves), "bytes", p.Bytes, "waiting", len(p.Waiting))
			}
			res := m.Execute(ctx, p, nil)
			if res.Moved+res.Failed > 0 {
				m.log.Info("scan done", "moved", res.Moved, "failed", res.Failed, "bytes", res.Bytes)
			}
			if ctx.Err() == nil {
				m.SyncCatalogs(ctx)
			}
		}
		t.Reset(m.cfg.ScanInterval)
	}
}

// Move performs one planned move.
func (m *Manager) Move(ctx context.Context, mv Move, progress func(int64)) error {
	m.met.InFlight.Inc()
	defer m.met.InFlight.Dec()
	start := time.Now()
	log := m.log.With("partition", mv.Key.String(), "policy", mv.Policy.String())
	log.Info("move start", "bytes", mv.Bytes, "reason", mv.Reason)
	var err error
	switch mv.Policy {
	case HotToWarm:
		err = m.moveLocal(ctx, mv, progress)
	case WarmToCold:
		err = m.compress(ctx, mv, progress)
	case ColdToRemote:
		err = m.upload(ctx, mv, progress)
	case Publish:
		err = m.publish(ctx, mv)
	default:
		err = fmt.Errorf("unknown policy %d", mv.Policy)
	}
	if err != nil {
		m.met.Moves.WithLabelValues(mv.Policy.label(), "failed").Inc()
		if errors.Is(err, ErrVerify) {
			m.met.VerifyFailures.Inc()
		}
		if mv.Policy == ColdToRemote {
			m.met.UploadFailures.Inc()
		}
		if ctx.Err() == nil {
			until := m.fail(mv, err)
			log.Error("move failed", "err", err, "retry_after", until.Format(time.RFC3339))
		} else {
			log.Warn("move interrupted", "err", err)
		}
		return fmt.Errorf("%s %s: %w", mv.Policy, mv.Key, err)
	}
	m.succeed(mv)
	m.met.Moves.WithLabelValues(mv.Policy.label(), "ok").Inc()
	m.met.MoveBytes.WithLabelValues(mv.Policy.label()).Add(float64(mv.Bytes))
	m.met.MoveSeconds.WithLabelValues(mv.Policy.label()).Observe(time.Since(start).Seconds())
	log.Info("move done", "bytes", mv.Bytes, "seconds", time.Since(start).Seconds())
	return nil
}

// fail records a failure and returns when the move may be retried: RetryMin doubled per
// consecutive failure, at most RetryMax.
func (m *Manager) fail(mv Move, err error) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := failKey{mv.Key, mv.Policy}
	f := m.fails[k]
	if f == nil {
		f = &failure{}
		m.fails[k] = f
	}
	f.count++
	d := m.cfg.RetryMin
	for i := 1; i < f.count && d < m.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, m.cfg.RetryMax)
	f.next, f.err = m.now().Add(d), err
	return f.next
}

func (m *Manager) succeed(mv Move) {
	m.mu.Lock()
	delete(m.fails, failKey{mv.Key, mv.Policy})
	m.mu.Unlock()
}

// backoffUntil returns when a failed move may run again (zero if now).
func (m *Manager) backoffUntil(k layout.Key, p Policy) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.fails[failKey{k, p}]
	if f == nil || !m.now().Before(f.next) {
		return time.Time{}, nil
	}
	return f.next, f.err
}

// Host is the id the manager signs its uploads with.
func (m *Manager) Host() string { return m.host }

// Metrics returns the manager's Prometheus series.
func (m *Manager) Metrics() *Metrics { return m.met }
