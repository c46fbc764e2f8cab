package fs

import (
	"sync/atomic"
	"time"

	"github.com/chronicle/chronicle/layout"
	"github.com/chronicle/chronicle/tiers/objstore"
	"github.com/prometheus/client_golang/prometheus"
)

const numTiers = int(layout.Remote) + 1

// stats are the daemon's own counters. Reads served by kernel passthrough never reach the
// daemon, so they are not counted here: opens_total{mode="passthrough"} counts those files.
type stats struct {
	reads, bytes, errors [numTiers]atomic.Uint64
	opensServed, opensPT [numTiers]atomic.Uint64
	fallbackReads        atomic.Uint64
	npySplice, npyMapped atomic.Uint64 // book.npy replies spliced from, or written from a mapping of, the tier file
	forgotten            atomic.Uint64 // partitions the kernel was asked to forget (FS.forget)
	viewStats
	latency *prometheus.HistogramVec
	lat     [numTiers]prometheus.Observer
}

func newStats() *stats {
	s := &stats{latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chronicle_fs_read_seconds",
		Help:    "Time to serve one FUSE read request, by the tier of the open file.",
		Buckets: prometheus.ExponentialBucketsRange(5e-6, 30, 20),
	}, []string{"tier"})}
	for t := range numTiers {
		s.lat[t] = s.latency.WithLabelValues(layout.Tier(t).String())
	}
	return s
}

func (s *stats) read(t layout.Tier, n int, d time.Duration, pt bool) {
	s.reads[t].Add(1)
	s.bytes[t].Add(uint64(n))
	s.lat[t].Observe(d.Seconds())
	if pt {
		// The handle asked for passthrough but the kernel sends reads: the mount fell back.
		s.fallbackReads.Add(1)
	}
}

func (s *stats) readError(t layout.Tier) { s.errors[t].Add(1) }

func (s *stats) open(t layout.Tier, pt bool) {
	if pt {
		s.opensPT[t].Add(1)
	} else {
		s.opensServed[t].Add(1)
	}
}

// Stats is a snapshot of the daemon's counters, indexed by layout.Tier.
type Stats struct {
	Reads, ReadBytes, ReadErrors  [numTiers]uint64
	OpensServed, OpensPassthrough [numTiers]uint64
	PassthroughFallbackReads      uint64
	// NPYSpliced and NPYMapped count the replies to reads of hot and warm book.npy that
	// the kernel took from the tier file's pages: spliced (replies that fit a pipe), or
	// written from a mapping (larger ones). The others are copied through the daemon.
	NPYSpliced, NPYMapped uint64
}

// Stats returns the current counters.
func (f *FS) Stats() Stats {
	var out Stats
	for t := range numTiers {
		out.Reads[t] = f.st.reads[t].Load()
		out.ReadBytes[t] = f.st.bytes[t].Load()
		out.ReadErrors[t] = f.st.errors[t].Load()
		out.OpensServed[t] = f.st.opensServed[t].Load()
		out.OpensPassthrough[t] = f.st.opensPT[t].Load()
	}
	out.PassthroughFallbackReads = f.st.fallbackReads.Load()
	out.NPYSpliced, out.NPYMapped = f.st.npySplice.Load(), f.st.npyMapped.Load()
	return out
}

// Collector returns the Prometheus collector of everything the mount counts: its reads, the
// shared frame cache (qzst.Cache stats) and the resolver (tiers.Stats).
func (f *FS) Collector() prometheus.Collector { return &collector{fs: f} }

type collector struct{ fs *FS }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("chronicle_fs_"+name, help, labels, nil)
}

var (
	dReads         = desc("reads_total", "FUSE read requests served by the daemon, by tier.", "tier")
	dReadBytes     = desc("read_bytes_total", "Bytes returned by FUSE reads served by the daemon, by tier.", "tier")
	dReadErrors    = desc("read_errors_total", "FUSE reads answered with EIO, by tier.", "tier")
	dOpens         = desc("opens_total", "Files opened, by tier and mode (passthrough: the kernel reads the backing file itself; served: the daemon answers reads).", "tier", "mode")
	dFallback      = desc("passthrough_fallback_reads_total", "Reads of files opened for passthrough that reached the daemon because the kernel refused passthrough.")
	dNPYReplies    = desc("npy_zero_copy_replies_total", "Replies to reads of hot and warm book.npy taken by the kernel from the tier file's pages, not copied through the daemon: spliced (replies that fit a pipe: pipe-max-size) or written from a mapping.", "how")
	dHits          = desc("frame_cache_hits_total", "Cold/remote frame lookups found decoded in the cache.")
	dMisses        = desc("frame_cache_misses_total", "Cold/remote frame lookups decoded on demand.")
	dDirect        = desc("direct_frames_total", "Whole cold/remote frames decoded straight into a FUSE reply, bypassing the frame cache (direct_reads).")
	dWaits         = desc("frame_cache_waits_total", "Cold/remote frame lookups that waited for a decode already in flight (single-flight).")
	dHitRatio      = desc("frame_cache_hit_ratio", "(hits + waits) / (hits + waits + misses) of the frame cache since start.")
	dDecoded       = desc("frames_decoded_total", "zstd frames decoded, readahead included.")
	dReadahead     = desc("readahead_frames_total", "Frames scheduled ahead of sequential readers.")
	dDecodeErrors  = desc("frame_decode_errors_total", "Frames that failed their size or checksum check.")
	dEvictions     = desc("frame_cache_evictions_total", "Frames evicted from the cache.")
	dCacheBytes    = desc("frame_cache_bytes", "Decoded bytes held by the frame cache.")
	dCacheFrames   = desc("frame_cache_frames", "Frames held by the frame cache.")
	dCacheLimit    = desc("frame_cache_limit_bytes", "Configured frame cache budget.")
	dPartial       = desc("frames_partial_total", "Frames a random read decoded only up to the bytes it needed (kept in the cache in part).")
	dResumes       = desc("frames_resumed_total", "Reads that continued decoding a frame kept in part.")
	dStalls        = desc("fetch_stalls_total", "Direct reads that waited for compressed frames fetched ahead whose source read had not finished.")
	dStallSecs     = desc("fetch_stall_seconds_total", "Time Direct reads waited for compressed frames fetched ahead.")
	dInflight      = desc("source_inflight_bytes", "Compressed bytes asked of .zst sources (ranged GETs for remote books) and not yet received.")
	dInflightPeak  = desc("source_inflight_peak_bytes", "The most compressed bytes in flight at once since start.")
	dInflightBS    = desc("source_inflight_byte_seconds_total", "Integral of the bytes in flight over time: its rate is the mean bytes in flight.")
	dWindowRuns    = desc("fetch_window_runs", "The largest window of compressed runs a sequential reader kept fetched ahead (it grows to cover the source's bandwidth-delay product).")
	dWindowBytes   = desc("fetch_window_bytes", "The largest window of compressed runs fetched ahead, in bytes.")
	dSourceReads   = desc("zst_source_reads_total", "Reads of .zst sources, local or remote (coalesced runs count once).")
	dFetched       = desc("zst_bytes_fetched_total", "Compressed bytes read from .zst sources.")
	dRemoteReqs    = desc("remote_requests_total", "Ranged GETs sent to the object store.")
	dRemoteBytes   = desc("remote_bytes_total", "Bytes received from the object store.")
	dRemoteErrors  = desc("remote_errors_total", "Failed object store reads (after the store's own retries).")
	dResOpens      = desc("resolver_opens_total", "Logical files opened by the resolver (lookups and stats included), by tier.", "tier")
	dRetries       = desc("resolver_retries_total", "Re-resolutions of partitions that moved during an open.")
	dParts         = desc("known_partitions", "Partition directories the kernel currently knows (checked for tier moves).")
	dForgotten     = desc("partitions_forgotten_total", "Least recently used partition directories the kernel was asked to forget (max_known_partitions).")
	dBucketLists   = desc("bucket_listings_total", "Directory listings requested from the bucket (research hosts: partitions found by listing).")
	dBucketStubs   = desc("bucket_stubs_total", "Partition stubs fetched from the bucket.")
	dDiskHits      = desc("disk_cache_hits_total", "Remote frames and files found in the disk cache.")
	dDiskMisses    = desc("disk_cache_misses_total", "Remote frames and files not in the disk cache (fetched).")
	dDiskEvicted   = desc("disk_cache_evictions_total", "Entries evicted from the disk cache.")
	dDiskCorrupt   = desc("disk_cache_corrupt_total", "Disk cache entries that failed their checksum and were dropped.")
	dDiskBytes     = desc("disk_cache_bytes", "Bytes held by the disk cache.")
	dViewLoads     = desc("view_partitions_loaded_total", "Partitions whose views/ were opened (index loaded, or the book scanned when index/events.idx is absent).")
	dViewRenders   = desc("view_segments_rendered_total", "Segments of view rows rendered from book.q.")
	dViewErrors    = desc("view_render_errors_total", "Segments that failed to render (a damaged book or index, a failed read): EIO.")
	dViewHits      = desc("view_segment_hits_total", "View reads served by a segment already rendered (or being rendered).")
	dViewSeconds   = desc("view_render_seconds_total", "Time spent rendering view segments.")
	dViewRendered  = desc("view_rendered_bytes_total", "Bytes of view rows rendered.")
	dViewCacheSize = desc("view_cache_bytes", "Rendered view rows held in memory.")
	dViewCacheMax  = desc("view_cache_limit_bytes", "Configured views_cache_bytes.")
	// The object store's own counter keeps the store's name: chronicle-tier exports it too.
	dGetResumes = prometheus.NewDesc("chronicle_objstore_get_resumes_total",
		"Ranged GETs re-issued for the rest of a body that failed mid-stream (early EOF, reset, stall).", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dReads, dReadBytes, dReadErrors, dOpens, dFallback, dNPYReplies, dHits, dMisses, dWaits, dDirect,
		dHitRatio, dDecoded, dReadahead, dDecodeErrors, dEvictions, dCacheBytes, dCacheFrames, dCacheLimit,
		dPartial, dResumes, dStalls, dStallSecs, dInflight, dInflightPeak, dInflightBS, dWindowRuns, dWindowBytes,
		dSourceReads, dFetched, dRemoteReqs, dRemoteBytes, dRemoteErrors, dResOpens, dRetries, dParts, dForgotten,
		dBucketLists, dBucketStubs, dDiskHits, dDiskMisses, dDiskEvicted, dDiskCorrupt, dDiskBytes, dGetResumes,
		dViewLoads, dViewRenders, dViewErrors, dViewHits, dViewSeconds, dViewRendered, dViewCacheSize, dViewCacheMax} {
		ch <- d
	}
	c.fs.st.latency.Describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	f := c.fs
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	st := f.Stats()
	rs := f.res.Stats()
	for t := range numTiers {
		name := layout.Tier(t).String()
		counter(dReads, st.Reads[t], name)
		counter(dReadBytes, st.ReadBytes[t], name)
		counter(dReadErrors, st.ReadErrors[t], name)
		counter(dOpens, st.OpensServed[t], name, "served")
		counter(dOpens, st.OpensPassthrough[t], name, "passthrough")
		counter(dResOpens, uint64(rs.Opens[t].Load()), name)
	}
	counter(dFallback, st.PassthroughFallbackReads)
	counter(dNPYReplies, st.NPYSpliced, "splice")
	counter(dNPYReplies, st.NPYMapped, "mapping")
	cs := f.res.Cache().Stats()
	counter(dHits, cs.CacheHits)
	counter(dMisses, cs.CacheMisses)
	counter(dWaits, cs.CacheWaits)
	counter(dDirect, cs.DirectFrames)
	ratio := 0.0
	if tot := cs.CacheHits + cs.CacheWaits + cs.CacheMisses; tot > 0 {
		ratio = float64(cs.CacheHits+cs.CacheWaits) / float64(tot)
	}
	gauge(dHitRatio, ratio)
	counter(dDecoded, cs.FramesDecoded)
	counter(dReadahead, cs.ReadaheadFrames)
	counter(dDecodeErrors, cs.DecodeErrors)
	counter(dEvictions, cs.Evictions)
	gauge(dCacheBytes, float64(cs.CachedBytes))
	gauge(dCacheFrames, float64(cs.CachedFrames))
	gauge(dCacheLimit, float64(f.cfg.CacheBytes))
	counter(dPartial, cs.PartialFrames)
	counter(dResumes, cs.PartialResumes)
	counter(dStalls, cs.FetchStalls)
	ch <- prometheus.MustNewConstMetric(dStallSecs, prometheus.CounterValue, cs.FetchStallTime.Seconds())
	gauge(dInflight, float64(cs.InflightBytes))
	gauge(dInflightPeak, float64(cs.InflightPeak))
	ch <- prometheus.MustNewConstMetric(dInflightBS, prometheus.CounterValue, cs.InflightByteSeconds)
	gauge(dWindowRuns, float64(cs.WindowRuns))
	gauge(dWindowBytes, float64(cs.WindowBytes))
	counter(dSourceReads, cs.SourceReads)
	counter(dFetched, cs.BytesFetched)
	counter(dRemoteReqs, uint64(rs.RemoteRequests.Load()))
	counter(dRemoteBytes, uint64(rs.RemoteBytes.Load()))
	counter(dRemoteErrors, uint64(rs.RemoteErrors.Load()))
	counter(dGetResumes, uint64(objstore.StatsOf(f.res.Store()).GetResumes))
	counter(dRetries, uint64(rs.Retries.Load()))
	gauge(dParts, float64(len(f.partList())))
	counter(dForgotten, f.st.forgotten.Load())
	counter(dBucketLists, uint64(rs.BucketLists.Load()))
	counter(dBucketStubs, uint64(rs.BucketStubs.Load()))
	if dc := f.res.DiskCache(); dc != nil {
		counter(dDiskHits, uint64(dc.Hits.Load()))
		counter(dDiskMisses, uint64(dc.Misses.Load()))
		counter(dDiskEvicted, uint64(dc.Evictions.Load()))
		counter(dDiskCorrupt, uint64(dc.Corrupt.Load()))
		gauge(dDiskBytes, float64(dc.Size()))
	}
	counter(dViewLoads, f.st.viewLoads.Load())
	counter(dViewRenders, f.st.viewRenders.Load())
	counter(dViewErrors, f.st.viewRenderErrors.Load())
	counter(dViewHits, f.st.viewHits.Load())
	ch <- prometheus.MustNewConstMetric(dViewSeconds, prometheus.CounterValue, float64(f.st.viewRenderNanos.Load())/1e9)
	counter(dViewRendered, f.st.viewRenderBytes.Load())
	gauge(dViewCacheSize, float64(f.segs.Bytes()))
	gauge(dViewCacheMax, float64(f.cfg.ViewsCacheBytes))
	f.st.latency.Collect(ch)
}
