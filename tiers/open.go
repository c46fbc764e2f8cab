package tiers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chronicle/chronicle/format/qzst"
	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/diskcache"
	"github.com/chronicle/chronicle/tiers/objstore"
)

// OpenOptions are what Open needs: the [tiers] roots, the [remote] store's settings and
// the reader's Config.
type OpenOptions struct {
	Roots  layout.Roots
	Remote objstore.Config
	Config Config
	// StoreOnly opens the object store (and checks the roots) but builds no caches and no
	// Resolver: for the tier manager, which moves files and reads no book through them.
	StoreOnly bool
	// SkipRootCheck leaves the roots unchecked: for a one-shot reader run by hand
	// (chronicle-q) that serves nothing to others.
	SkipRootCheck bool
	// Registerer, when set, gets the object store's metrics (chronicle-fs leaves it nil:
	// the mount's collector reports them with its own).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Tiers is every tier opened for a daemon: the object store, the frame cache, the disk
// cache of remote reads and the Resolver over them. Close releases them all.
type Tiers struct {
	Roots    layout.Roots
	Store    objstore.Store // nil without a remote tier
	Cache    *qzst.Cache    // nil with StoreOnly
	Disk     *diskcache.Cache
	Resolver *Resolver // nil with StoreOnly
	closers  []func() error
}

// Open checks the local roots (files in them are served and moved as ours, so roots other
// users could fill are refused unless roots.AllowSharedRoots), opens the object store, the
// caches and the Resolver. On error nothing stays open.
func Open(ctx context.Context, o OpenOptions) (_ *Tiers, err error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !o.SkipRootCheck {
		if err := layout.CheckRoots(o.Roots.AllowSharedRoots, log, o.Roots.LocalRoots()...); err != nil {
			return nil, err
		}
	}
	t := &Tiers{Roots: o.Roots}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	if o.Roots.Remote != "" {
		rc := o.Remote
		rc.Logger = log
		st, err := objstore.Open(ctx, o.Roots.Remote, rc)
		if err != nil {
			return nil, fmt.Errorf("open remote tier: %w", err)
		}
		t.Store = st
		t.closers = append(t.closers, st.Close)
		if o.Registerer != nil {
			o.Registerer.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "chronicle_objstore_get_resumes_total",
				Help: "Ranged GETs re-issued for the rest of a body that failed mid-stream (early EOF, reset, stall).",
			}, func() float64 { return float64(objstore.StatsOf(st).GetResumes) }))
		}
	}
	if o.StoreOnly {
		return t, nil
	}
	c := o.Config
	if t.Cache, err = qzst.NewCache(qzst.CacheOptions{MaxBytes: int64(c.CacheBytes)}); err != nil {
		return nil, err
	}
	t.closers = append(t.closers, func() error { t.Cache.Close(); return nil })
	if t.Store != nil && c.DiskCacheBytes > 0 {
		dir, err := c.DiskCachePath()
		if err != nil {
			return nil, err
		}
		if t.Disk, err = diskcache.Open(dir, int64(c.DiskCacheBytes)); err != nil {
			return nil, err
		}
		log.Info("disk cache", "dir", dir, "bytes", t.Disk.Size(), "limit", int64(c.DiskCacheBytes))
	}
	if t.Resolver, err = New(o.Roots, Options{Store: t.Store, Cache: t.Cache, Readahead: c.ReadaheadFrames, Direct: c.DirectReads,
		RemoteTimeout: c.RemoteTimeout, DiskCache: t.Disk, BucketTTL: c.BucketTTL, Logger: log}); err != nil {
		return nil, err
	}
	t.closers = append(t.closers, t.Resolver.Close)
	return t, nil
}

// Close releases what Open opened, the last first.
func (t *Tiers) Close() error {
	var errs []error
	for i := len(t.closers) - 1; i >= 0; i-- {
		errs = append(errs, t.closers[i]())
	}
	t.closers = nil
	return errors.Join(errs...)
}

// LogStats sums up what the cold and remote reads did (at exit).
func (t *Tiers) LogStats(log *slog.Logger) {
	if t.Cache == nil || t.Resolver == nil {
		return
	}
	cs, rs := t.Cache.Stats(), t.Resolver.Stats()
	log.Info("stopped", "frames_decoded", cs.FramesDecoded, "frames_direct", cs.DirectFrames,
		"frames_partial", cs.PartialFrames, "frames_resumed", cs.PartialResumes,
		"source_reads", cs.SourceReads, "bytes_fetched", cs.BytesFetched,
		"remote_requests", rs.RemoteRequests.Load(), "remote_bytes", rs.RemoteBytes.Load(),
		"fetch_window_runs", cs.WindowRuns, "fetch_window_bytes", cs.WindowBytes,
		"inflight_peak_bytes", cs.InflightPeak, "inflight_byte_seconds", cs.InflightByteSeconds,
		"fetch_stalls", cs.FetchStalls, "fetch_stall_seconds", cs.FetchStallTime.Seconds())
}
