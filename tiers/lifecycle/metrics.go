package lifecycle

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the manager's Prometheus series (chronicle_tier_*).
type Metrics struct {
	Moves          *prometheus.CounterVec // policy, result
	MoveBytes      *prometheus.CounterVec // policy
	MoveSeconds    *prometheus.HistogramVec
	UploadFailures prometheus.Counter
	VerifyFailures prometheus.Counter
	DeriveFailures prometheus.Counter
	Recoveries     *prometheus.CounterVec // action
	Partitions     *prometheus.GaugeVec   // tier
	Pending        *prometheus.GaugeVec   // policy
	Backoff        prometheus.Gauge
	InFlight       prometheus.Gauge
	LastScan       prometheus.Gauge
	ScanSeconds    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chronicle_tier_moves_total", Help: "Partition moves by policy and result (ok, failed).",
		}, []string{"policy", "result"}),
		MoveBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chronicle_tier_move_bytes_total", Help: "Source book bytes of completed moves.",
		}, []string{"policy"}),
		MoveSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chronicle_tier_move_duration_seconds", Help: "Duration of completed moves.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}, []string{"policy"}),
		UploadFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chronicle_tier_upload_failures_total", Help: "Failed or mismatched uploads; the local copy stayed.",
		}),
		VerifyFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chronicle_tier_verify_failures_total", Help: "Copies that did not match their source and were discarded.",
		}),
		DeriveFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chronicle_tier_derive_failures_total", Help: "derived/book.parquet files that could not be written or verified.",
		}),
		Recoveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chronicle_tier_recoveries_total", Help: "Recovery actions: finished, rolled_back, leftover_removed, temp_removed, intent_rolled_back, conflict.",
		}, []string{"action"}),
		Partitions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chronicle_tier_partitions", Help: "Partitions served by each tier at the last scan.",
		}, []string{"tier"}),
		Pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chronicle_tier_pending_moves", Help: "Moves planned at the last scan.",
		}, []string{"policy"}),
		Backoff: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chronicle_tier_backoff_partitions", Help: "Partitions waiting to retry a failed move.",
		}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chronicle_tier_moves_in_flight", Help: "Moves running now.",
		}),
		LastScan: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chronicle_tier_last_scan_timestamp_seconds", Help: "Wall-clock time of the last completed scan.",
		}),
		ScanSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chronicle_tier_scan_duration_seconds", Help: "Duration of a scan (recovery and planning).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Moves, m.MoveBytes, m.MoveSeconds, m.UploadFailures, m.VerifyFailures,
			m.DeriveFailures, m.Recoveries, m.Partitions, m.Pending, m.Backoff, m.InFlight, m.LastScan, m.ScanSeconds)
	}
	return m
}
