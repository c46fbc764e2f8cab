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
	Collisions     prometheus.Counter
	Kept           prometheus.Gauge
}

// The series are chronicle_tier_<name>; these build them.
func tierOpts(name, help string) prometheus.Opts {
	return prometheus.Opts{Namespace: "chronicle", Subsystem: "tier", Name: name, Help: help}
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts(tierOpts(name, help)))
}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts(tierOpts(name, help)), labels)
}

func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts(tierOpts(name, help)))
}

func gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts(tierOpts(name, help)), labels)
}

// seconds describes a histogram of durations: 10 buckets growing 4x from start.
func seconds(name, help string, start float64) prometheus.HistogramOpts {
	return prometheus.HistogramOpts{Namespace: "chronicle", Subsystem: "tier", Name: name, Help: help,
		Buckets: prometheus.ExponentialBuckets(start, 4, 10)}
}

func newMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Moves:          counterVec("moves_total", "Partition moves by policy and result (ok, failed).", "policy", "result"),
		MoveBytes:      counterVec("move_bytes_total", "Source book bytes of completed moves.", "policy"),
		MoveSeconds:    prometheus.NewHistogramVec(seconds("move_duration_seconds", "Duration of completed moves.", 0.01), []string{"policy"}),
		UploadFailures: counter("upload_failures_total", "Failed or mismatched uploads; the local copy stayed."),
		VerifyFailures: counter("verify_failures_total", "Copies that did not match their source and were discarded."),
		DeriveFailures: counter("derive_failures_total", "derived/book.parquet files that could not be written or verified."),
		Recoveries:     counterVec("recoveries_total", "Recovery actions: finished, rolled_back, leftover_removed, temp_removed, intent_rolled_back, conflict.", "action"),
		Partitions:     gaugeVec("partitions", "Partitions served by each tier at the last scan.", "tier"),
		Pending:        gaugeVec("pending_moves", "Moves planned at the last scan.", "policy"),
		Backoff:        gauge("backoff_partitions", "Partitions waiting to retry a failed move."),
		InFlight:       gauge("moves_in_flight", "Moves running now."),
		LastScan:       gauge("last_scan_timestamp_seconds", "Wall-clock time of the last completed scan."),
		ScanSeconds:    prometheus.NewHistogram(seconds("scan_duration_seconds", "Duration of a scan (recovery and planning).", 0.001)),
		Collisions:     counter("collisions_total", "Uploads that found the partition's key in the bucket held by another host: kept local, uploaded under hosts/{id}."),
		Kept:           gauge("collisions", "Partitions kept local at the last scan because another host holds their key in the bucket."),
	}
	if reg != nil {
		reg.MustRegister(m.Moves, m.MoveBytes, m.MoveSeconds, m.UploadFailures, m.VerifyFailures,
			m.DeriveFailures, m.Recoveries, m.Partitions, m.Pending, m.Backoff, m.InFlight, m.LastScan, m.ScanSeconds,
			m.Collisions, m.Kept)
	}
	return m
}
