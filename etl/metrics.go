package etl

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the refinery's Prometheus series (chronicle_etl_*), labelled by venue.
type Metrics struct {
	reg              prometheus.Registerer
	events           *prometheus.CounterVec // venue, kind: depth, trade, bookTicker, other
	records          *prometheus.CounterVec
	malformed        *prometheus.CounterVec
	skipped          *prometheus.CounterVec // venue, reason
	duplicates       *prometheus.CounterVec
	bufferDropped    *prometheus.CounterVec
	staleSnapshots   *prometheus.CounterVec
	badSnapshots     *prometheus.CounterVec
	ignoredSnapshots *prometheus.CounterVec
	snapshots        *prometheus.CounterVec
	resyncs          *prometheus.CounterVec
	gaps             *prometheus.CounterVec // venue, reason
	crossed          *prometheus.CounterVec
	tickerChecks     *prometheus.CounterVec
	tickerMismatches *prometheus.CounterVec
	checksumChecks   *prometheus.CounterVec
	checksumMismatch *prometheus.CounterVec
	late             *prometheus.CounterVec // venue, policy
	unmapped         *prometheus.CounterVec
	partitionsOpen   *prometheus.GaugeVec
	sealed           *prometheus.CounterVec
	diverged         *prometheus.CounterVec
	lagSeconds       *prometheus.GaugeVec
	lagBytes         *prometheus.GaugeVec
	journalBytes     *prometheus.CounterVec
	checkpoints      *prometheus.CounterVec
	checkpointSecs   *prometheus.HistogramVec
	tableReloads     *prometheus.CounterVec // result
	failures         *prometheus.CounterVec // venue, reason: device_full, other
}

// NewMetrics registers the series on reg (nil: a throwaway registry).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	c := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "chronicle", Subsystem: "etl", Name: name, Help: help}, append([]string{"venue"}, labels...))
		reg.MustRegister(v)
		return v
	}
	g := func(name, help string) *prometheus.GaugeVec {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "chronicle", Subsystem: "etl", Name: name, Help: help}, []string{"venue"})
		reg.MustRegister(v)
		return v
	}
	m := &Metrics{reg: reg,
		events:           c("events_total", "Exchange messages refined, by kind.", "kind"),
		records:          c("records_total", "Canonical records written."),
		malformed:        c("malformed_total", "Journal messages that could not be decoded (kept in the journal, not refined)."),
		skipped:          c("skipped_total", "Journal records passed over, by reason.", "reason"),
		duplicates:       c("duplicates_total", "Events already refined (ids at or below the last), dropped."),
		bufferDropped:    c("buffer_dropped_total", "Depth updates dropped from a full resync buffer."),
		staleSnapshots:   c("stale_snapshots_total", "REST snapshots older than the buffered chain."),
		badSnapshots:     c("bad_snapshots_total", "REST snapshots that could not be decoded or placed."),
		ignoredSnapshots: c("ignored_snapshots_total", "REST snapshots that arrived while the book was valid."),
		snapshots:        c("snapshot_runs_total", "Snapshot runs written (partition open, resync, periodic)."),
		resyncs:          c("resyncs_total", "Books made valid by a snapshot."),
		gaps:             c("gaps_total", "Invalidations of a book and trade-id gaps, by reason.", "reason"),
		crossed:          c("crossed_total", "Depth updates after which the book was crossed."),
		tickerChecks:     c("ticker_checks_total", "Tickers compared with the rebuilt book."),
		tickerMismatches: c("ticker_mismatches_total", "Tickers that disagreed with the rebuilt book."),
		checksumChecks:   c("checksum_checks_total", "Depth messages whose exchange checksum was compared with the rebuilt book's."),
		checksumMismatch: c("checksum_mismatches_total", "Depth messages whose exchange checksum disagreed with the rebuilt book's."),
		late:             c("late_total", "Records for a sealed partition, by late policy.", "policy"),
		unmapped:         c("unmapped_total", "Partitions opened in the unmapped stream (no dim_symbol row)."),
		partitionsOpen:   g("partitions_open", "Partitions being written."),
		sealed:           c("partitions_sealed_total", "Partitions sealed."),
		diverged:         c("rebuild_diverged_total", "Regenerated records that differed from the file an earlier run left."),
		lagSeconds:       g("lag_seconds", "Wall time minus the receive time of the last journal record refined."),
		lagBytes:         g("lag_bytes", "Journal bytes committed but not yet refined, in the current segment."),
		journalBytes:     c("journal_bytes_total", "Journal bytes refined."),
		checkpoints:      c("checkpoints_total", "Checkpoints written."),
		tableReloads:     c("dim_symbol_reloads_total", "dim_symbol reloads, by result.", "result"),
		failures:         c("failures_total", "Refinery runs stopped by an error and started again from the checkpoint, by reason (device_full, other).", "reason"),
	}
	m.checkpointSecs = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "chronicle", Subsystem: "etl", Name: "checkpoint_seconds",
		Help: "Time to make output and state durable.", Buckets: prometheus.ExponentialBuckets(1e-4, 4, 10)}, []string{"venue"})
	reg.MustRegister(m.checkpointSecs)
	return m
}

// venueMetrics are one venue's children, resolved once.
type venueMetrics struct {
	events                                         *prometheus.CounterVec
	depth, trade, ticker, other                    prometheus.Counter // events by kind, resolved once
	skipped, gaps, late                            *prometheus.CounterVec
	records, malformed, duplicates, bufferDropped  prometheus.Counter
	staleSnapshots, badSnapshots, ignoredSnapshots prometheus.Counter
	snapshots, resyncs, crossed, tickerChecks      prometheus.Counter
	tickerMismatches, unmapped, sealed, diverged   prometheus.Counter
	checksumChecks, checksumMismatches             prometheus.Counter
	journalBytes, checkpoints                      prometheus.Counter
	partitionsOpen, lagSeconds, lagBytes           prometheus.Gauge
	checkpointSecs                                 prometheus.Observer
}

func (m *Metrics) forVenue(v string) *venueMetrics {
	l := prometheus.Labels{"venue": v}
	ev := m.events.MustCurryWith(l)
	return &venueMetrics{
		depth: ev.WithLabelValues("depth"), trade: ev.WithLabelValues("trade"), ticker: ev.WithLabelValues("bookTicker"), other: ev.WithLabelValues("other"),
		events: ev, skipped: m.skipped.MustCurryWith(l), gaps: m.gaps.MustCurryWith(l), late: m.late.MustCurryWith(l),
		records: m.records.With(l), malformed: m.malformed.With(l), duplicates: m.duplicates.With(l), bufferDropped: m.bufferDropped.With(l),
		staleSnapshots: m.staleSnapshots.With(l), badSnapshots: m.badSnapshots.With(l), ignoredSnapshots: m.ignoredSnapshots.With(l),
		snapshots: m.snapshots.With(l), resyncs: m.resyncs.With(l), crossed: m.crossed.With(l), tickerChecks: m.tickerChecks.With(l),
		tickerMismatches: m.tickerMismatches.With(l), unmapped: m.unmapped.With(l), sealed: m.sealed.With(l), diverged: m.diverged.With(l),
		journalBytes: m.journalBytes.With(l), checkpoints: m.checkpoints.With(l),
		checksumChecks: m.checksumChecks.With(l), checksumMismatches: m.checksumMismatch.With(l),
		partitionsOpen: m.partitionsOpen.With(l), lagSeconds: m.lagSeconds.With(l), lagBytes: m.lagBytes.With(l),
		checkpointSecs: m.checkpointSecs.With(l),
	}
}
