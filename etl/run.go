package etl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/chronicle/chronicle/etl/symbols"
	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/fileutil/vfs"
	"github.com/chronicle/chronicle/venue"
)

// Options configure one venue's refinery run.
type Options struct {
	Config Config
	// Root is the output tier root: partitions go to Root/v1/..., the checkpoint to
	// Root/.chronicle-etl/{venue}.state.
	Root string
	// JournalDir is the venue's journal ({hot}/feed/{venue}); Segments, when set, lists
	// segment files to read instead (backfill).
	JournalDir string
	Segments   []string
	// Follow tails the journal until ctx ends (run); otherwise the run stops at the end of
	// what is committed (backfill).
	Follow bool
	// SealAll seals every partition when a backfill ends (the journal is complete).
	SealAll bool
	// PublishCheckpoint writes the journal's etl.checkpoint after each checkpoint, which
	// lets the feed's retention delete what was refined (run; not backfill).
	PublishCheckpoint bool
	// Table returns the dim_symbol table in force; it is asked between frames.
	Table   func() *symbols.Table
	Log     *slog.Logger
	Metrics *Metrics
	// Listener, if set, hears the run's progress (Listener).
	Listener Listener
	// Host is the capture host recorded in every meta.json (source.host); nil records none.
	Host *meta.Host
	// FS is what the checkpoint, the journal's etl.checkpoint, meta.json, index/ and the
	// partitions' directories are written through; nil is the real filesystem (tests
	// inject faults, internal/testkit/faults). The books' records are format's (pwrite).
	FS vfs.FS

	hooks testHooks
}

// Listener hears what a run does, from the goroutine that runs it, never per record: a
// progress bar, a daemon waiting for its venues to take over their checkpoints, a test
// waiting for a live run to catch up. Embed NopListener to hear only some.
type Listener interface {
	// Total is told, once before the first frame, the journal bytes there are to refine.
	Total(bytes int64)
	// Progress is told how many journal bytes were refined since its last call (every
	// thousand frames or so, and when the input ends or pauses).
	Progress(delta int64)
	// Resumed is told once that the run has taken over its checkpoint (partitions reopened
	// where it left them), found no journal to resume yet, or failed.
	Resumed()
	// Idle is told each time a following run (Options.Follow) has refined everything the
	// journal has committed and waits for more.
	Idle()
}

// NopListener hears nothing; embed it in a Listener that hears only some events.
type NopListener struct{}

func (NopListener) Total(int64)    {}
func (NopListener) Progress(int64) {}
func (NopListener) Resumed()       {}
func (NopListener) Idle()          {}

// testHooks are what the package's tests and benchmarks watch or steer a run through; they
// fire per frame, where a Listener never does.
type testHooks struct {
	afterCommit func(recvNs int64)       // a frame's records were published
	onFrame     func()                   // a frame was refined
	sealHook    func(stage string) error // "checkpointed", then "sealed"; an error stops the run
}

// Stats summarise a run.
type Stats struct {
	Venue    string
	Frames   int64
	Bytes    int64
	Sealed   int
	Open     int
	Diverged int64
}

// Refine runs one venue's refinery: it restores the checkpoint in the output root (if
// any), refines the journal from there and checkpoints as it goes. It returns when the
// input ends (backfill) or ctx ends (run), after a final checkpoint; partitions stay open
// unless their grace passed, or SealAll.
func Refine(ctx context.Context, opt Options) (stats Stats, err error) {
	if opt.Listener == nil {
		opt.Listener = NopListener{}
	}
	resumed := sync.OnceFunc(opt.Listener.Resumed)
	defer resumed()
	cfg := opt.Config
	if err := cfg.Validate(); err != nil {
		return stats, err
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opt.Metrics == nil {
		opt.Metrics = NewMetrics(nil)
	}
	if opt.Table == nil {
		t, err := symbols.Load(cfg.DimSymbol)
		if err != nil {
			return stats, err
		}
		opt.Table = func() *symbols.Table { return t }
	}
	if opt.Segments == nil && opt.JournalDir == "" {
		return stats, fmt.Errorf("%w: no journal directory or segments", ErrConfig)
	}
	src := &source{dir: opt.JournalDir, files: opt.Segments, follow: opt.Follow}
	defer src.close()
	// Wait for the journal's first segment (a daemon may start before the feed).
	for {
		ok, err := src.first()
		if err != nil {
			return stats, err
		}
		if ok {
			break
		}
		if !opt.Follow {
			return stats, nil
		}
		resumed() // nothing to take over until the feed starts the journal
		select {
		case <-ctx.Done():
			return stats, nil
		case <-time.After(time.Second):
		}
	}
	v, err := venue.Lookup(src.venue)
	if err != nil {
		return stats, fmt.Errorf("%w: %s: %v", ErrJournal, src.path, err)
	}
	stats.Venue = v.Name()
	log = log.With("venue", v.Name())
	r := newRefinery(cfg, v, opt.Root, opt.Table(), log, opt.Metrics.forVenue(v.Name()))
	r.afterCommit, r.live, r.host = opt.hooks.afterCommit, opt.Follow, opt.Host
	if opt.FS != nil {
		r.fs = opt.FS
	}
	r.fopt = format.Options{ChunkSize: cfg.ChunkSize, MaxSize: 32 << 30}
	if runtime.GOMAXPROCS(0) > 1 {
		// A second core writes the output while this one refines (every writer is closed
		// before Refine returns, and so before this defer).
		r.fopt.Writeback = format.NewWriteback()
		defer r.fopt.Writeback.Close()
	}
	// After an error every output file is released as it stands, before the writeback's
	// goroutine ends (the defers run in reverse).
	defer func() {
		if err != nil {
			r.closeAll()
		}
	}()
	statePath := StatePath(opt.Root, v.Name())
	src.setConsumer(r.hasher)
	if err := removeTemps(filepath.Dir(statePath)); err != nil {
		return stats, err
	}
	st, ok, err := ReadState(statePath)
	if err != nil {
		return stats, err
	}
	if ok {
		if st.Venue != v.Name() {
			return stats, fmt.Errorf("%w: %s is for venue %s", ErrState, statePath, st.Venue)
		}
		if err := src.resume(st.Segment, st.SegmentCreated, st.Offset); err != nil {
			return stats, err
		}
		if st.TableHash != r.table.Load().Hash() {
			log.Warn("dim_symbol changed since the checkpoint; records refined again from it may resolve differently")
		}
		if err := r.restore(st); err != nil {
			return stats, err
		}
		log.Info("resumed", "segment", st.Segment, "offset", st.Offset, "partitions", len(st.Parts))
	}
	if runtime.GOMAXPROCS(0) > 1 && !opt.Follow {
		r.ahead = startAhead(r.aheadDecoder(), opt.JournalDir, opt.Segments, src.seg.Name, src.created, src.offset())
	}
	defer func() { r.ahead.close(); r.ahead = nil }()
	run := &runner{r: r, src: src, opt: opt, statePath: statePath, log: log, stats: &stats, ahead: runtime.GOMAXPROCS(0) > 1}
	r.beforeSeal = run.checkpoint
	r.flushInput = src.flush
	r.sealHook = opt.hooks.sealHook
	resumed()
	err = run.loop(ctx)
	stats.Diverged = r.diverged
	stats.Open = len(r.parts)
	return stats, err
}

type runner struct {
	r         *Refinery
	src       *source
	opt       Options
	statePath string
	log       *slog.Logger
	stats     *Stats
	lastCkpt  time.Time
	lastMeta  time.Time
	dirty     bool
	ahead     bool // a second core may decode ahead on a backlog (live)
}

// maxBatch bounds the frames a live refinery refines before it publishes their records,
// when the journal holds a backlog: catching up, it commits once per batch instead of once
// per frame; caught up, each frame is a batch of one.
const maxBatch = 4096

func (u *runner) loop(ctx context.Context) (err error) {
	// The journal is mapped (format.Tailer): a segment cut below its committed length under
	// the reader faults. That is an error of the journal, not a crash of the refinery.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			f, ok := p.(interface{ Addr() uintptr })
			if !ok {
				panic(p)
			}
			err = fmt.Errorf("%w: %s: memory fault at %#x reading the journal (a segment cut below its committed length?)", ErrJournal, u.src.path, f.Addr())
		}
	}()
	r, src := u.r, u.src
	u.opt.Listener.Total(src.remaining())
	u.lastCkpt, u.lastMeta = time.Now(), time.Now()
	var idleSince time.Time
	var n, batch int
	var unreported int64 // journal bytes refined since the metrics and progress were told
	report := func() {
		r.publishMetrics()
		r.m.journalBytes.Add(float64(unreported))
		u.opt.Listener.Progress(unreported)
		unreported = 0
	}
	defer report()
	for ctx.Err() == nil {
		seg := src.seg.Name
		rec, status, err := src.next()
		if err != nil {
			return err
		}
		if src.seg.Name != seg {
			r.segmentDone(seg)
		}
		switch status {
		case statusFrame:
			end := src.offset()
			r.segSeq = src.seg.Seq
			if err := r.frame(&rec, src.seg.Name); err != nil {
				return err
			}
			if u.opt.hooks.onFrame != nil {
				u.opt.hooks.onFrame()
			}
			d := end - rec.Offset
			u.stats.Frames++
			u.stats.Bytes += d
			unreported += d
			u.dirty = true
			if r.live {
				if u.ahead && r.ahead.done() && src.backlog() >= aheadBacklog {
					// A backlog: decode it ahead on the other core.
					r.ahead.close()
					r.ahead = startAhead(r.aheadDecoder(), src.dir, src.files, src.seg.Name, src.created, src.offset())
				}
				// Publish at the end of what is committed, or after a batch of frames.
				if batch++; batch >= maxBatch || !src.more() {
					if err := r.commitTouched(); err != nil {
						return err
					}
					batch = 0
				}
			}
			if n++; n&1023 != 0 {
				continue
			}
			report()
			r.m.lagSeconds.Set(time.Since(time.Unix(0, rec.RecvTs)).Seconds())
		case statusLost:
			r.log.Error("journal segments missing: every book is invalid until its next snapshot", "next", src.seg.Name)
			if err := r.journalLost(); err != nil {
				return err
			}
			continue
		case statusEnd:
			report()
			return u.finish()
		case statusIdle:
			if err := r.commitTouched(); err != nil { // a live batch cut by a segment's end
				return err
			}
			batch = 0
			report()
			u.opt.Listener.Idle()
			r.m.lagBytes.Set(float64(src.t.Committed() - src.offset()))
			r.m.lagSeconds.Set(0)
			if err := u.housekeep(); err != nil {
				return err
			}
			idleSince = time.Now()
			until := u.lastCkpt.Add(u.opt.Config.CheckpointInterval) // the pending checkpoint
			if !u.dirty {
				// Nothing to make durable: wake only for housekeeping (a past deadline
				// here made the idle loop spin).
				until = idleSince.Add(u.opt.Config.CheckpointInterval)
			}
			src.wait(ctx, idleSince, u.opt.Config.IdleSpin, u.opt.Config.IdlePoll, until)
			continue
		}
		if err := u.housekeep(); err != nil {
			return err
		}
	}
	// Stopped (SIGTERM): make everything durable, seal nothing early. A segment read to its
	// sealed end is marked complete before the checkpoint, so the meta.json written now and
	// the one a restart writes from the checkpoint say the same.
	u.markDone()
	if err := u.checkpoint(); err != nil {
		return err
	}
	return u.closeOpen()
}

// housekeep checkpoints and refreshes meta.json when their intervals have passed.
func (u *runner) housekeep() error {
	cfg := u.opt.Config
	if u.dirty && time.Since(u.lastCkpt) >= cfg.CheckpointInterval {
		if err := u.checkpoint(); err != nil {
			return err
		}
	}
	if time.Since(u.lastMeta) >= cfg.MetaInterval {
		u.lastMeta = time.Now()
		if err := u.writeOpenMeta(false); err != nil {
			return err
		}
	} else if err := u.writeOpenMeta(true); err != nil {
		return err
	}
	if t := u.opt.Table(); t != nil && t != u.r.table.Load() {
		u.r.SetTable(t)
	}
	return nil
}

// checkpoint makes the output durable, then the state that describes it, then tells the
// feed how far it may delete.
func (u *runner) checkpoint() error {
	t0 := time.Now()
	r := u.r
	if err := r.commitTouched(); err != nil {
		return err
	}
	for _, k := range sortedParts(r.parts) {
		if err := r.parts[k].w.Sync(); err != nil {
			return err
		}
	}
	u.src.flush()
	st, err := r.save(u.src)
	if err != nil {
		return err
	}
	st.UpdatedNs = time.Now().UnixNano()
	if err := writeState(r.fs, u.statePath, st); err != nil {
		return err
	}
	if u.opt.PublishCheckpoint && u.src.files == nil {
		if err := journal.WriteCheckpointFS(r.fs, u.src.dir, journal.Checkpoint{Segment: st.Segment, Offset: st.Offset, UpdatedNs: st.UpdatedNs}); err != nil {
			return err
		}
	}
	u.lastCkpt, u.dirty = time.Now(), false
	r.m.checkpoints.Inc()
	r.m.checkpointSecs.Observe(time.Since(t0).Seconds())
	return nil
}

func sortedParts(m map[partKey]*partition) []partKey {
	keys := make([]partKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]].path() < m[keys[j]].path() })
	return keys
}

// writeOpenMeta refreshes the meta.json of growing partitions (sealed: false); onlyNew
// writes only those of partitions opened since the last refresh.
func (u *runner) writeOpenMeta(onlyNew bool) error {
	r := u.r
	if onlyNew {
		due := false
		for _, p := range r.parts {
			due = due || (!p.hasMeta && p.key.Kind != kindLate)
		}
		if !due {
			return nil
		}
	}
	if err := r.commitTouched(); err != nil { // meta.json describes published records
		return err
	}
	u.src.flush()
	for _, k := range sortedParts(r.parts) {
		p := r.parts[k]
		if p.key.Kind == kindLate {
			continue
		}
		if _, ok := p.w.(*verifier); ok || (onlyNew && p.hasMeta) {
			continue
		}
		if err := r.writeMeta(p, r.metaFor(p, false)); err != nil {
			return err
		}
		p.hasMeta = true
	}
	return nil
}

// finish ends a backfill: everything checkpointed, every open partition has a meta.json,
// and with SealAll every partition is sealed.
func (u *runner) finish() error {
	r := u.r
	u.markDone()
	if u.opt.SealAll {
		// The journal is complete: nothing will date messages still waiting for an
		// exchange time but their receive time. (Otherwise they wait in the checkpoint.)
		if err := r.flushUndated(nil); err != nil {
			return err
		}
	}
	if err := r.flushAllHolds(); err != nil {
		return err
	}
	if u.opt.SealAll {
		var all []*partition
		for _, k := range sortedParts(r.parts) {
			if p := r.parts[k]; p.key.Kind != kindLate {
				all = append(all, p)
			}
		}
		if err := r.seal(all...); err != nil {
			return err
		}
		u.stats.Sealed += len(all)
	}
	if err := u.checkpoint(); err != nil {
		return err
	}
	return u.closeOpen()
}

// markDone marks the current segment complete when it is sealed and read to its end.
func (u *runner) markDone() {
	u.src.flush()
	if t := u.src.t; t.Sealed() && t.Offset() >= t.Committed() {
		u.r.segmentDone(u.src.seg.Name)
	}
}

// closeOpen writes the open partitions' meta.json and releases every file.
func (u *runner) closeOpen() error {
	u.markDone()
	errs := []error{u.writeOpenMeta(false)}
	for _, k := range sortedParts(u.r.parts) {
		p := u.r.parts[k]
		u.r.noteDiverged(p)
		errs = append(errs, p.w.Close())
	}
	u.r.parts = map[partKey]*partition{}
	return errors.Join(errs...)
}

// closeAll releases every file without writing anything (after an error).
func (r *Refinery) closeAll() {
	for _, p := range r.parts {
		p.w.Close()
	}
	r.parts = map[partKey]*partition{}
}

func (r *Refinery) flushAllHolds() error {
	for _, raw := range sortedKeys(r.holders) {
		if err := r.flushHold(r.holders[raw]); err != nil {
			return err
		}
	}
	return r.commitTouched()
}

// hasher returns what adds a segment's frames to its running hash, as the source reads them
// (format.Tailer.SetConsumer: a megabyte at a time).
func (r *Refinery) hasher(seg string) func(off int64, b []byte) {
	return func(off int64, b []byte) {
		h := r.segs[seg]
		if h == nil {
			h = &segHash{d: xxhash.New()}
			r.segs[seg] = h
		}
		h.d.Write(b)
		h.end = off + int64(len(b))
	}
}

// segmentDone marks a segment read to its end.
func (r *Refinery) segmentDone(seg string) {
	if h := r.segs[seg]; h != nil {
		h.complete = true
	}
}

// journalLost invalidates every book: segments between the last read and the next are gone.
func (r *Refinery) journalLost() error {
	for _, raw := range sortedKeys(r.syms) {
		if err := r.invalidate(r.syms[raw], format.InvalidJournalLost, 0, 0, 0, 0, true); err != nil {
			return err
		}
	}
	return r.endFrame()
}
