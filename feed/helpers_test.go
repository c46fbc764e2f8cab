package feed

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/chronicle/chronicle/internal/testkit/testenv"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	_ "github.com/chronicle/chronicle/venue/all" // the venues the mains link
)

var captures = testenv.CapturesDir()

// rec is a journal record with its segment.
type rec struct {
	format.JournalRecord
	seg string
}

// readJournal reads every committed record of every segment in dir, in order, failing
// the test on any decode error.
func readJournal(t testing.TB, dir string) []rec {
	t.Helper()
	recs, err := readJournalErr(dir)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func readJournalErr(dir string) ([]rec, error) {
	segs, err := journal.List(dir)
	if err != nil {
		return nil, err
	}
	var out []rec
	for _, s := range segs {
		f, err := os.Open(filepath.Join(dir, s.Name))
		if err != nil {
			return nil, err
		}
		st, _ := f.Stat()
		it, err := format.NewJournalIter(f, st.Size(), s.Name)
		if err != nil {
			f.Close()
			return nil, err
		}
		for it.Next() {
			r := *it.Record()
			r.Payload = bytes.Clone(r.Payload)
			out = append(out, rec{r, s.Name})
		}
		err = it.Err()
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func sealed(t testing.TB, path string) bool {
	t.Helper()
	h, err := format.ReadHeaderFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return h.Sealed
}

func testConfig(dir string) Config {
	c := Defaults()
	c.JournalDir = dir
	c.ChunkSize = 1 << 20
	c.MaxSegmentSize = 1 << 30
	c.MetricsAddr = ""
	return c
}

// value reads a counter or gauge.
func value(t testing.TB, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	case d.Histogram != nil:
		return float64(d.Histogram.GetSampleCount())
	}
	return 0
}

func valueNoT(m prometheus.Metric) float64 {
	var d dto.Metric
	if m.Write(&d) != nil {
		return 0
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	return 0
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newMetricsRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

func (f *Feed) journaledCount() int64 {
	var n float64
	for _, c := range f.m.messages {
		n += valueNoT(c)
	}
	return int64(n)
}
