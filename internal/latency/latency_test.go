package latency

import (
	"math/rand"
	"sort"
	"testing"
	"time"
)

func TestBucketBounds(t *testing.T) {
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 123456789, 1 << 40, 1<<63 + 5} {
		i := bucket(v)
		lb := lowerBound(i)
		if lb > v {
			t.Fatalf("v=%d bucket %d lower bound %d above value", v, i, lb)
		}
		if i+1 < nBucket && lowerBound(i+1) <= v {
			t.Fatalf("v=%d bucket %d: next bucket's bound %d not above value", v, i, lowerBound(i+1))
		}
	}
}

func TestQuantilesMatchSorted(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	var h Histogram
	vals := make([]int64, 100000)
	for i := range vals {
		vals[i] = int64(rng.ExpFloat64() * 200)
		h.Record(vals[i])
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{.5, .9, .99, .999} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := int64(h.Quantile(q))
		if got > exact || float64(exact-got) > float64(exact)/32+1 {
			t.Errorf("q=%v: histogram %d, exact %d", q, got, exact)
		}
	}
	if h.Max() != time.Duration(vals[len(vals)-1]) {
		t.Errorf("max %v want %d", h.Max(), vals[len(vals)-1])
	}
}
