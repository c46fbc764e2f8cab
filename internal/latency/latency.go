// Package latency records durations in a fixed-size log-linear histogram (no allocation
// per sample) and reports quantiles, for benchmarks and metrics of hot paths.
package latency

import (
	"fmt"
	"math"
	"math/bits"
	"time"
)

// Values below 64 ns get exact buckets; above, each power of two is split in 32 buckets,
// so a quantile is exact to within 1/32 (~3%).
const (
	linear  = 64
	perStep = 32
	nBucket = 64*perStep + linear
)

// Histogram counts nanosecond samples. The zero value is ready to use. Not safe for
// concurrent Record.
type Histogram struct {
	counts [nBucket]uint64
	n      uint64
	max    uint64
	sum    uint64
}

func bucket(v uint64) int {
	if v < linear {
		return int(v)
	}
	e := bits.Len64(v) - 6 // v>>e lies in [32,63]
	return e*perStep + int(v>>e)
}

func lowerBound(i int) uint64 {
	if i < linear {
		return uint64(i)
	}
	e := i/perStep - 1
	return uint64(i%perStep+perStep) << e
}

// Record adds one sample of ns nanoseconds.
func (h *Histogram) Record(ns int64) {
	if ns < 0 {
		ns = 0
	}
	v := uint64(ns)
	h.counts[bucket(v)]++
	h.n++
	h.sum += v
	if v > h.max {
		h.max = v
	}
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest sample.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the average sample.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}

// Quantile returns the lower bound of the bucket holding quantile q (0..1).
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lb := lowerBound(i)
			if lb > h.max {
				lb = h.max
			}
			return time.Duration(lb)
		}
	}
	return time.Duration(h.max)
}

// Merge adds o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Summary is the usual quantile line.
func (h *Histogram) Summary() string {
	return fmt.Sprintf("n=%d p50=%v p99=%v p99.9=%v p99.99=%v max=%v",
		h.n, h.Quantile(.5), h.Quantile(.99), h.Quantile(.999), h.Quantile(.9999), h.Max())
}
