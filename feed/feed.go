// Package feed is chronicle-feed's engine: it captures a venue's market-data websockets
// and REST depth snapshots into the Zone 1 raw journal, as received, with receive times
// and connection events, and replays capture files through the same path.
//
// One Feed runs one goroutine per planned connection slot (reconnecting with backoff and
// jitter, and replacing each connection before the venue's age limit with an overlap so
// nothing is lost), a snapshot fetcher within the REST weight budget, and a maintenance
// loop that pre-creates, rolls and deletes journal segments. See docs/chronicle-feed.md.
package feed

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/venue"
)

// LookupVenue returns the registered venue with the given id. The feed links no venue of
// its own: the main links the registry (venue/all), so a new venue touches no package here.
func LookupVenue(name string) (venue.Venue, error) {
	v, err := venue.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnknownVenue, err)
	}
	return v, nil
}

// Feed is a configured capture.
type Feed struct {
	cfg     Config
	v       venue.Venue
	sub     venue.Subscriber // venues subscribed by request; nil for Binance
	refSums map[string][32]byte
	log     *slog.Logger
	reg     prometheus.Registerer
	m       *Metrics
	plan    []venue.Connection
	session int64

	j    *Journal
	rec  *Recorder
	snap *snapshotter

	afterCommit func(recvNs, commitNs int64) // test hook, set before Run
	wall        func() int64                 // test hook: the wall clock (nil: time.Now)
}

// New validates cfg and plans the connections. reg may be nil.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Feed, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxMessageBytes > format.MaxJournalPayload {
		return nil, fmt.Errorf("%w: max_message_bytes %d above the journal's %d", ErrConfig, cfg.MaxMessageBytes, format.MaxJournalPayload)
	}
	v, err := LookupVenue(cfg.Venue)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withVenue(v)
	plan, err := v.Plan(cfg.WSURL, venue.Subscription{Symbols: cfg.Symbols, Streams: cfg.Streams, DepthSpeed: cfg.DepthSpeed,
		MaxStreamsPerConn: min(cfg.MaxStreamsPerConn, journal.MaxStreamsPerSlot), Routes: cfg.WSRoutes, BookDepth: cfg.BookDepth})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if len(plan) > journal.MaxSlots {
		return nil, fmt.Errorf("%w: %d connections needed, at most %d", ErrConfig, len(plan), journal.MaxSlots)
	}
	f := &Feed{cfg: cfg, v: v, log: log.With("venue", v.Name()), reg: reg, m: newMetrics(reg, v.Name()), plan: plan,
		session: time.Now().UnixNano(), refSums: map[string][32]byte{}}
	f.sub, _ = v.(venue.Subscriber)
	return f, nil
}

// Plan returns the planned connections.
func (f *Feed) Plan() []venue.Connection { return f.plan }

// Run captures until ctx ends, then closes every connection, journals the disconnects
// and seals the journal.
func (f *Feed) Run(ctx context.Context) error {
	start := time.Now().UnixNano()
	if f.wall != nil {
		start = f.wall()
	}
	j, err := OpenJournal(JournalOptions{Dir: f.cfg.Dir(), Venue: f.v.Name(), Period: f.cfg.RollPeriod,
		ChunkSize: f.cfg.ChunkSize, MaxSize: f.cfg.MaxSegmentSize}, start, f.log, f.m)
	if err != nil {
		return err
	}
	registerJournalGauges(f.reg, f.v.Name(), j)
	slots := make([]*slotState, len(f.plan))
	for i, p := range f.plan {
		slots[i] = newSlot(i, p)
	}
	f.j = j
	f.rec = newRecorder(f.v, j, f.m, f.log, f.session, slots)
	f.rec.host = f.cfg.Host
	f.rec.afterCommit = f.afterCommit
	f.rec.clock.wall = f.wall
	f.rec.clock.Floor(j.WallFloor())
	f.snap = newSnapshotter(f.v, &f.cfg, f.m, f.log)
	f.snap.rec = f.rec
	f.rec.snap = f.snap
	if f.sub != nil {
		f.rec.resubscribe = f.resubscribe
	}
	f.log.Info("feed starting", "journal", f.cfg.Dir(), "segment", j.Segment().Name, "connections", len(slots), "symbols", len(f.cfg.Symbols))

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); f.snap.run(runCtx) }()
	go func() { defer wg.Done(); f.maintain(runCtx) }()
	// The instruments' scales before the first book message, as far as the venue answers.
	f.fetchReference(runCtx, true)
	go func() { defer wg.Done(); f.referenceLoop(runCtx) }()
	for _, sl := range slots {
		wg.Add(1)
		go func() { defer wg.Done(); f.runSlot(runCtx, sl) }()
	}
	<-ctx.Done()
	cancel()
	wg.Wait()
	if err := j.Close(); err != nil {
		return fmt.Errorf("close journal: %w", err)
	}
	f.log.Info("feed stopped", "segment", j.Segment().Name)
	return nil
}

// maintain pre-creates and rolls segments on the wall clock and applies retention.
func (f *Feed) maintain(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var lastRetain, lastWarn time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		ns := f.rec.clock.Now()
		if err := f.j.Precreate(ns, f.cfg.PrecreateLead); err != nil && now.Sub(lastWarn) > 10*time.Second {
			// A full device: the roll creates the segment itself once there is room.
			lastWarn = now
			f.log.Warn("pre-create segment", "err", err)
		}
		f.j.RollIfDue(ns)
		if now.Sub(lastRetain) >= f.cfg.RetentionEvery {
			lastRetain = now
			if _, err := f.j.Retain(now, f.cfg.RetentionMinAge); err != nil {
				f.m.retentionErrs.Inc()
				f.log.Warn("retention", "err", err)
			}
		}
	}
}

// backoff returns the pause before reconnect attempt n (0: none, then exponential with
// jitter in [d/2, d]).
func (f *Feed) backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := f.cfg.ReconnectMin << min(n-1, 20)
	if d > f.cfg.ReconnectMax || d <= 0 {
		d = f.cfg.ReconnectMax
	}
	return d/2 + rand.N(d/2+1)
}

func (f *Feed) rolloverAfter() time.Duration {
	d := f.cfg.ConnMaxAge
	if f.cfg.RolloverJitter > 0 {
		d -= rand.N(f.cfg.RolloverJitter)
	}
	return d
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// runSlot keeps one slot connected until ctx ends.
func (f *Feed) runSlot(ctx context.Context, sl *slotState) {
	log := f.log.With("slot", sl.idx)
	var gen uint64
	attempt := 0
	reason := journal.SnapshotStart
	for {
		if !sleepCtx(ctx, f.backoff(attempt)) {
			return
		}
		c, err := f.dial(ctx, sl, gen)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			attempt++
			f.m.reconnects.WithLabelValues("dial_error").Inc()
			log.Warn("connect failed", "attempt", attempt, "err", err)
			continue
		}
		gen++
		f.start(c, nil)
		log.Info("connected", "gen", c.gen, "streams", len(sl.streams))
		for i := range sl.streams {
			if sl.streams[i].info.Kind == venue.KindDepth && f.sub == nil {
				f.snap.request(sl.streams[i].info.Symbol, reason, 0)
			}
		}
		reason = journal.SnapshotReconnect
		last := f.serve(ctx, sl, c, &gen, log)
		if ctx.Err() != nil {
			return
		}
		f.m.reconnects.WithLabelValues("error").Inc()
		if time.Since(last.opened) > time.Minute {
			attempt = 0
		} else {
			attempt++
		}
	}
}

func (f *Feed) start(c *wsConn, replaces *uint64) {
	f.rec.attach(c, replaces, f.rec.clock.Now())
	f.m.connections.Inc()
	if f.sub != nil {
		ka := f.sub.KeepAlive()
		c.keepAlive = &ka
	}
	go c.run(f.rec, f.cfg.MaxMessageBytes, f.cfg.PingInterval, f.cfg.PongTimeout)
	if f.sub != nil {
		if err := f.subscribe(c); err != nil {
			f.log.Warn("subscribe failed", "slot", c.slot.idx, "gen", c.gen, "err", err)
			c.closeNow("subscribe: " + err.Error())
		}
	}
}

// end waits for c's reader and journals its disconnect.
func (f *Feed) end(c *wsConn, kind string) {
	<-c.done
	f.m.connections.Dec()
	f.rec.detach(c, kind, c.endReason(), f.rec.clock.Now())
}

func doneOf(c *wsConn) <-chan struct{} {
	if c == nil {
		return nil
	}
	return c.done
}

// serve runs a slot's connection, replacing it before its age limit with an overlapping
// one, until it fails (returned) or ctx ends.
func (f *Feed) serve(ctx context.Context, sl *slotState, active *wsConn, gen *uint64, log *slog.Logger) *wsConn {
	roll := time.NewTimer(f.rolloverAfter())
	defer roll.Stop()
	var incoming *wsConn
	var overlap <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			active.close("shutdown")
			if incoming != nil {
				incoming.close("shutdown")
				f.end(incoming, journal.DisconnectShutdown)
			}
			f.end(active, journal.DisconnectShutdown)
			return active
		case <-active.done:
			if incoming == nil {
				f.end(active, journal.DisconnectError)
				log.Warn("connection lost", "gen", active.gen, "reason", active.endReason(), "messages", active.msgs.Load())
				return active
			}
			// The old connection died during the overlap: the new one takes over now.
			f.rec.promote(sl, f.rec.clock.Now(), true)
			f.end(active, journal.DisconnectError)
			f.m.reconnects.WithLabelValues("error").Inc()
			log.Warn("connection lost during rollover", "gen", active.gen, "reason", active.endReason())
			active, incoming, overlap = incoming, nil, nil
			roll.Reset(f.rolloverAfter())
		case <-roll.C:
			nc, err := f.dial(ctx, sl, *gen)
			if err != nil {
				log.Warn("rollover connect failed", "err", err)
				roll.Reset(min(f.cfg.ConnMaxAge/10, 30*time.Second))
				continue
			}
			*gen++
			old := active.gen
			incoming = nc
			f.start(nc, &old)
			overlap = time.After(f.cfg.OverlapTimeout)
			log.Info("rollover started", "old_gen", old, "new_gen", nc.gen)
		case <-doneOf(incoming):
			f.end(incoming, journal.DisconnectError)
			log.Warn("rollover connection lost", "gen", incoming.gen, "reason", incoming.endReason())
			incoming, overlap = nil, nil
			roll.Reset(min(f.cfg.ConnMaxAge/10, 30*time.Second))
		case <-sl.handover:
			if incoming == nil || !f.rec.promote(sl, f.rec.clock.Now(), false) {
				continue // a stream got involved since the signal: wait for it
			}
			active, incoming, overlap = f.retire(active, incoming, log, "aligned"), nil, nil
			roll.Reset(f.rolloverAfter())
		case <-overlap:
			f.rec.promote(sl, f.rec.clock.Now(), true)
			active, incoming, overlap = f.retire(active, incoming, log, "overlap timeout"), nil, nil
			roll.Reset(f.rolloverAfter())
		}
	}
}

// retire closes the old connection of a rollover after its replacement was promoted.
func (f *Feed) retire(old, incoming *wsConn, log *slog.Logger, why string) *wsConn {
	old.close("rollover")
	f.end(old, journal.DisconnectRollover)
	f.m.reconnects.WithLabelValues("rollover").Inc()
	log.Info("rollover done", "old_gen", old.gen, "new_gen", incoming.gen, "why", why, "old_messages", old.msgs.Load())
	return incoming
}
