// Package merge is chronicle-etl merge: the A/B merge of two capture hosts' journals of the
// same venue and streams into the canonical partitions one host with both hosts'
// connections would have refined. Where one host's book was invalid (a disconnect, a gap)
// and the other's was valid, the other's messages are used, joined by the venue's own
// sequence ids (Binance U/u/pu) so the join is exact; trades and tickers are
// de-duplicated by their ids. The result is deterministic: the same journals make the same
// bytes whichever host is named first, and a merge killed at any moment and run again
// makes them too. docs/chronicle-etl.md ("merge") describes it.
//
// Design: the merge works on journals, not partitions, and refines its merged journal
// with the refinery itself (etl.Refine, its public API). A partition is a refinery's
// reading of one host's journal (invalid stretches flagged, snapshot runs placed by that
// host's messages); re-deriving a canonical partition from two of them would mean a
// second refinery. Merging the messages and refining them once gives, by construction,
// the partition an uninterrupted capture of those messages gets.
package merge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/chronicle/chronicle/etl"
	"github.com/chronicle/chronicle/etl/symbols"
	"github.com/chronicle/chronicle/internal/fileutil"
	"github.com/chronicle/chronicle/venue"
)

// WorkDir is where, below the output root, a merge keeps its merged journal and the
// partitions it has not published yet (removed at the start and the end of every merge).
const WorkDir = ".chronicle-merge"

// ErrExists: a partition the merge made is already in the output root with other bytes
// (a merge of other inputs, or a refinery's own output): it is never replaced.
var ErrExists = errors.New("partition exists with other content")

// Options configure a merge.
type Options struct {
	// Inputs are the two hosts' journals of one venue.
	Inputs [2]Input
	// Root is the output root: the merged partitions go to Root/v1/....
	Root string
	// Config is the refinery's configuration (snapshot interval, grace, late policy...);
	// the zero Config is etl.Defaults().
	Config etl.Config
	// Table returns the dim_symbol table (nil: the embedded default).
	Table func() *symbols.Table
	Log   *slog.Logger
	// Phase, when set, is told each phase ("survey", "merge", "refine") and the bytes it
	// will read; Progress the bytes read since the last call.
	Phase    func(name string, total int64)
	Progress func(delta int64)
}

// Result says what a merge did.
type Result struct {
	Venue     string
	Hosts     [2]string // sorted: Hosts[0] is the base
	Journal   int64     // bytes of the merged journal
	Published []string  // partition directories written (relative to Root)
	Existing  []string  // ... already there, identical
	Stats     stats
	Refine    etl.Stats
}

// Merge merges two hosts' journals of one venue into Root.
func Merge(ctx context.Context, opt Options) (Result, error) {
	var res Result
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var hosts [2]*hostJournal
	for i, in := range opt.Inputs {
		j, err := openInput(in)
		if err != nil {
			return res, err
		}
		hosts[i] = j
	}
	switch {
	case hosts[0].venue != hosts[1].venue:
		return res, fmt.Errorf("%w: %s is venue %s, %s venue %s", ErrInput, hosts[0].dir, hosts[0].venue, hosts[1].dir, hosts[1].venue)
	case hosts[0].id == hosts[1].id:
		return res, fmt.Errorf("%w: both journals are host %q's (%s, %s): give them as ID=DIR", ErrInput, hosts[0].id, hosts[0].dir, hosts[1].dir)
	}
	if hosts[1].id < hosts[0].id {
		hosts[0], hosts[1] = hosts[1], hosts[0]
	}
	res.Venue, res.Hosts = hosts[0].venue, [2]string{hosts[0].id, hosts[1].id}
	v, err := venue.Lookup(res.Venue)
	if err != nil {
		return res, fmt.Errorf("%w: %v", ErrInput, err)
	}
	// The merge joins depth chains by sequence ids and resyncs a book at a REST snapshot.
	// Venues subscribed by request (OKX, Kraken) send their snapshots on the websocket,
	// chain books by the book's checksum where they send no ids, and journal reference
	// data that gives the partitions their scales: merged as Binance's, their partitions
	// would lose scales, trades and tickers. Refused until the merge knows them.
	if _, ok := v.(venue.Subscriber); ok {
		return res, fmt.Errorf("%w: venue %s sends its book snapshots on the websocket: the A/B merge joins only venues with REST snapshots and sequence ids so far",
			ErrInput, res.Venue)
	}
	if opt.Table == nil {
		t, err := symbols.Default()
		if err != nil {
			return res, err
		}
		opt.Table = func() *symbols.Table { return t }
	}
	work := filepath.Join(opt.Root, WorkDir, res.Venue)
	// Whatever a killed merge left is made again from the journals, the same bytes.
	if err := os.RemoveAll(work); err != nil {
		return res, err
	}
	jdir, stage := filepath.Join(work, "journal"), filepath.Join(work, "root")
	for _, d := range []string{jdir, stage} {
		if err := fileutil.MkdirAll(d, 0o755); err != nil {
			return res, err
		}
	}
	phase := func(name string, total int64) {
		if opt.Phase != nil {
			opt.Phase(name, total)
		}
	}
	var inBytes int64
	for _, j := range hosts {
		for _, sg := range j.segs {
			if fi, err := os.Stat(sg.path); err == nil {
				inBytes += fi.Size()
			}
		}
	}

	// The hosts' segments are hashed for meta.json meanwhile.
	var segInfo [2][]metaSegment
	var segErr [2]error
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for i, j := range hosts {
			segInfo[i], segErr[i] = j.segmentInfo()
		}
	}()
	defer func() { <-hashed }()

	rule := newJoinRule(v)
	phase("survey", inBytes)
	sv, err := surveyHosts(ctx, v, rule, hosts, opt.Progress)
	if err != nil {
		return res, err
	}
	syms, bySym, err := sv.symbols()
	if err != nil {
		return res, err
	}
	if sv.minRecv == 0 {
		os.RemoveAll(work)
		os.Remove(filepath.Join(opt.Root, WorkDir))
		return res, nil // two journals without a frame
	}
	w, err := newJournalWriter(jdir, res.Venue, syms, bySym)
	if err != nil {
		return res, err
	}
	if err := w.begin(sv.minRecv); err != nil {
		return res, err
	}
	cfg := opt.Config
	if cfg.Output == "" {
		cfg = etl.Defaults()
	}
	cfg.DimReload = 0
	// The refinery follows the merged journal as it is written, on the other core: a
	// backfill stopped at any frame resumes from its checkpoint to the same bytes, so it
	// runs to the end of what is written, again and again, and seals at the end.
	rctx, stopRefine := context.WithCancel(ctx)
	defer stopRefine()
	written := make(chan struct{})
	refined := make(chan error, 1)
	ropt := etl.Options{Config: cfg, Root: stage, JournalDir: jdir, Segments: []string{w.path}, Table: opt.Table, Log: log}
	go func() { refined <- refineAlong(rctx, ropt, w, written, &res.Refine) }()

	il := newInterleaver(v, rule, sv, hosts, syms, bySym, w)
	phase("merge", inBytes)
	for h, j := range hosts {
		if err == nil {
			il.q[h].lag, err = il.firstLag(j)
		}
	}
	if err == nil {
		err = il.run(ctx, opt.Progress)
	}
	il.close()
	if err == nil {
		_, err = w.finish()
	} else {
		w.abort()
	}
	if err != nil {
		stopRefine()
		<-refined
		return res, err
	}
	il.st.Emitted = w.frames
	res.Stats = il.st
	log.Info("merged journal written", "venue", res.Venue, "base", res.Hosts[0], "other", res.Hosts[1], "frames", w.frames,
		"common", il.st.Common, "only_base", il.st.Only[0], "only_other", il.st.Only[1], "stale", il.st.Stale,
		"suppressed_losses", il.st.Suppressed, "losses", il.st.Invalidated)
	if fi, err := os.Stat(w.path); err == nil {
		res.Journal = fi.Size()
	}
	phase("refine", 0)
	close(written)
	if err := <-refined; err != nil {
		return res, fmt.Errorf("refine the merged journal: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	parts, err := partitions(stage)
	if err != nil {
		return res, err
	}
	<-hashed
	if err := errors.Join(segErr[0], segErr[1]); err != nil {
		return res, err
	}
	an := &annotator{v: v, sv: sv, il: il, hosts: res.Hosts, segs: segInfo}
	for _, rel := range parts {
		if err := an.annotate(filepath.Join(stage, rel)); err != nil {
			return res, err
		}
	}
	for _, rel := range parts {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		published, err := publish(filepath.Join(stage, rel), filepath.Join(opt.Root, rel))
		if err != nil {
			return res, err
		}
		if published {
			res.Published = append(res.Published, rel)
		} else {
			res.Existing = append(res.Existing, rel)
		}
	}
	slices.Sort(res.Published)
	if err := os.RemoveAll(work); err != nil {
		return res, err
	}
	os.Remove(filepath.Join(opt.Root, WorkDir)) // when no other venue's merge uses it
	return res, nil
}

// refineAlong refines the merged journal while it is written: a backfill to the end of
// what is committed, again whenever another refineStep was written, then, once written is
// closed (the journal is sealed), a last one that seals every partition.
func refineAlong(ctx context.Context, opt etl.Options, w *journalWriter, written <-chan struct{}, stats *etl.Stats) error {
	const refineStep = 8 << 20
	var done int64
	for {
		select {
		case <-written:
			opt.SealAll = true
			st, err := etl.Refine(ctx, opt)
			*stats = st
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if c := w.committed(); c-done >= refineStep {
			if _, err := etl.Refine(ctx, opt); err != nil {
				return err
			}
			done = c
		}
	}
}
