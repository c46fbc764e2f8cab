package feed

import (
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/chronicle/chronicle/venue"
)

// Metrics are the feed's Prometheus series. Hot-path children are resolved once so that
// counting a message costs an atomic add and no map lookup.
type Metrics struct {
	messages       [6]prometheus.Counter // by venue.Kind
	bytes          prometheus.Counter
	appendLatency  prometheus.Histogram
	recvToCommit   prometheus.Histogram
	overlapDropped prometheus.Counter
	rejected       *prometheus.CounterVec // reason: oversized
	malformed      *prometheus.CounterVec // reason: syntax, not_envelope, unknown_stream, binary...
	appendErrors   *prometheus.CounterVec // reason: device_full, segment_full, too_large, closed, other
	reconnects     *prometheus.CounterVec // reason: error, rollover, dial_error
	gaps           *prometheus.CounterVec // reason: journal.Gap* reasons
	snapshots      *prometheus.CounterVec // result: ok, stale, rate_limited, http_error, error
	restWeight     prometheus.Gauge
	connections    prometheus.Gauge
	segments       *prometheus.CounterVec // event: rolled, sealed, deleted, recovered
	retentionErrs  prometheus.Counter
	// Venues subscribed by request (OKX, Kraken).
	checksums          *prometheus.CounterVec // result: ok, mismatch
	resubscribes       *prometheus.CounterVec // reason: checksum, sequence
	subscriptionErrors prometheus.Counter
	references         *prometheus.CounterVec // result: journaled, unchanged, error
}

// latency buckets from 50 ns to 100 ms, in seconds.
var latencyBuckets = []float64{50e-9, 100e-9, 200e-9, 500e-9, 1e-6, 2e-6, 5e-6, 10e-6, 20e-6, 50e-6, 100e-6, 1e-3, 10e-3, 100e-3}

func newMetrics(reg prometheus.Registerer, venueName string) *Metrics {
	cl := prometheus.Labels{"venue": venueName}
	f := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "chronicle", Subsystem: "feed", Name: name, Help: help, ConstLabels: cl}
	}
	m := &Metrics{
		bytes: prometheus.NewCounter(prometheus.CounterOpts(f("bytes_total", "Payload bytes of websocket messages journaled."))),
		appendLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "chronicle", Subsystem: "feed", Name: "append_latency_seconds",
			Help: "Time to append and commit one journal record.", ConstLabels: cl, Buckets: latencyBuckets}),
		recvToCommit: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "chronicle", Subsystem: "feed", Name: "receive_to_commit_seconds",
			Help: "From a whole message read off the socket to its record committed.", ConstLabels: cl, Buckets: latencyBuckets}),
		overlapDropped: prometheus.NewCounter(prometheus.CounterOpts(f("overlap_duplicates_total", "Messages dropped because the other connection of a rollover already journaled them."))),
		rejected:       prometheus.NewCounterVec(prometheus.CounterOpts(f("rejected_messages_total", "Messages not journaled, by reason.")), []string{"reason"}),
		malformed:      prometheus.NewCounterVec(prometheus.CounterOpts(f("malformed_messages_total", "Messages journaled that the venue parser could not route, by reason.")), []string{"reason"}),
		appendErrors:   prometheus.NewCounterVec(prometheus.CounterOpts(f("append_errors_total", "Journal appends that failed, by reason.")), []string{"reason"}),
		reconnects:     prometheus.NewCounterVec(prometheus.CounterOpts(f("reconnects_total", "Connections replaced, by reason.")), []string{"reason"}),
		gaps:           prometheus.NewCounterVec(prometheus.CounterOpts(f("gaps_total", "Gap records journaled, by reason.")), []string{"reason"}),
		snapshots:      prometheus.NewCounterVec(prometheus.CounterOpts(f("snapshots_total", "REST depth snapshot attempts, by result.")), []string{"result"}),
		restWeight:     prometheus.NewGauge(prometheus.GaugeOpts(f("rest_weight_used", "REST request weight used in the current minute (as the venue reports it)."))),
		connections:    prometheus.NewGauge(prometheus.GaugeOpts(f("connections", "Open websocket connections."))),
		segments:       prometheus.NewCounterVec(prometheus.CounterOpts(f("segments_total", "Journal segment events.")), []string{"event"}),
		retentionErrs:  prometheus.NewCounter(prometheus.CounterOpts(f("retention_errors_total", "Retention passes that failed."))),
		checksums: prometheus.NewCounterVec(prometheus.CounterOpts(f("checksums_total",
			"Depth messages whose exchange checksum the feed's own book checked, by result.")), []string{"result"}),
		resubscribes: prometheus.NewCounterVec(prometheus.CounterOpts(f("resubscribes_total",
			"Streams resubscribed for a new websocket snapshot, by reason.")), []string{"reason"}),
		subscriptionErrors: prometheus.NewCounter(prometheus.CounterOpts(f("subscription_errors_total",
			"Subscribe and unsubscribe requests the venue refused."))),
		references: prometheus.NewCounterVec(prometheus.CounterOpts(f("reference_fetches_total",
			"Fetches of the venue's reference data (instrument listings), by result.")), []string{"result"}),
	}
	msgs := prometheus.NewCounterVec(prometheus.CounterOpts(f("messages_total", "Websocket messages journaled, by stream kind.")), []string{"kind"})
	for _, k := range venue.Kinds {
		m.messages[k] = msgs.WithLabelValues(k.String())
	}
	cols := []prometheus.Collector{msgs, m.bytes, m.appendLatency, m.recvToCommit, m.overlapDropped, m.rejected, m.malformed,
		m.appendErrors, m.reconnects, m.gaps, m.snapshots, m.restWeight, m.connections, m.segments, m.retentionErrs,
		m.checksums, m.resubscribes, m.subscriptionErrors, m.references}
	if reg != nil {
		for _, c := range cols {
			reg.MustRegister(c)
		}
	}
	return m
}

// registerJournalGauges exports the journal's fill, read at scrape time.
func registerJournalGauges(reg prometheus.Registerer, venueName string, j *Journal) {
	if reg == nil {
		return
	}
	cl := prometheus.Labels{"venue": venueName}
	f := func(name, help string) prometheus.GaugeOpts {
		return prometheus.GaugeOpts{Namespace: "chronicle", Subsystem: "feed", Name: name, Help: help, ConstLabels: cl}
	}
	statfs := func() (unix.Statfs_t, bool) {
		var st unix.Statfs_t
		return st, unix.Statfs(j.opt.Dir, &st) == nil && st.Blocks > 0
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(f("journal_segment_bytes", "Committed bytes of the current journal segment."),
			func() float64 { return float64(j.curBytes.Load()) }),
		prometheus.NewGaugeFunc(f("journal_segment_fill_ratio", "Current segment's committed bytes over its maximum size."),
			func() float64 { return float64(j.curBytes.Load()) / float64(j.opt.MaxSize) }),
		prometheus.NewGaugeFunc(f("journal_device_fill_ratio", "Used fraction of the file system holding the journal."),
			func() float64 {
				st, ok := statfs()
				if !ok {
					return 0
				}
				return 1 - float64(st.Bavail)/float64(st.Blocks)
			}),
		prometheus.NewGaugeFunc(f("journal_device_free_bytes", "Free bytes on the file system holding the journal."),
			func() float64 {
				st, ok := statfs()
				if !ok {
					return 0
				}
				return float64(st.Bavail) * float64(st.Bsize)
			}),
	)
}
