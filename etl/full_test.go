package etl

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

// TestOutputDeviceFull runs the refinery daemon with its output root on a small tmpfs that
// fills up mid-run: the run stops (counted as a device_full failure), nothing half-written
// is left (no temporary file, every book readable to its committed length), and once
// space returns the daemon starts again from its checkpoint and ends with the same tree
// as a run that never ran out of space.
func TestOutputDeviceFull(t *testing.T) {
	mid := ms("2024-08-09T00:00:00Z")
	j := ethBusy(t, mid-600000, mid-580000, 6000, 200, nil)
	j.close()
	hot := filepath.Join(filepath.Dir(j.dir), "hot")
	jd := journal.Dir(hot, "binance-perp")
	os.MkdirAll(filepath.Dir(jd), 0o755)
	if err := os.Rename(j.dir, jd); err != nil {
		t.Fatal(err)
	}
	segs, _ := journal.List(jd)
	st, _ := os.Stat(filepath.Join(jd, segs[len(segs)-1].Name))
	end := journal.Checkpoint{Segment: segs[len(segs)-1].Name, Offset: st.Size()}

	cfg := Defaults()
	cfg.Venues, cfg.Grace, cfg.SnapshotInterval, cfg.IdleSpin = []string{"binance-perp"}, time.Second, 10*time.Second, 0
	// daemon refines the journal into root until it has checkpointed its end.
	daemon := func(root string, m *Metrics, during func()) {
		t.Helper()
		os.Remove(filepath.Join(jd, journal.CheckpointFile))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		tw, err := NewTableWatcher("", slog.New(slog.DiscardHandler), m)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			done <- RunDaemon(ctx, DaemonOptions{Config: cfg, HotRoot: hot, Root: root, Log: slog.New(slog.DiscardHandler), Metrics: m, Table: tw})
		}()
		if during != nil {
			during()
		}
		deadline := time.Now().Add(time.Minute)
		for {
			cp, ok, _ := journal.ReadCheckpoint(jd)
			if ok && cp.Segment == end.Segment && cp.Offset == end.Offset || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if cp, _, _ := journal.ReadCheckpoint(jd); cp.Segment != end.Segment || cp.Offset != end.Offset {
			t.Fatalf("the daemon stopped at %+v, not at the journal's end %+v", cp, end)
		}
	}
	ref := t.TempDir()
	daemon(ref, NewMetrics(nil), nil)
	size := treeSize(t, ref)

	dir := testenv.Tmpfs(t, "16m")
	// Room for about half of the output (and the live appender's first chunks).
	t.Logf("output %d bytes", size)
	filler := testenv.FillDevice(t, dir, size/2)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	root := filepath.Join(dir, "warm")
	daemon(root, m, func() {
		deadline := time.Now().Add(30 * time.Second)
		for counter(t, m.failures.WithLabelValues("binance-perp", "device_full")) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the refinery never ran out of space")
			}
			time.Sleep(5 * time.Millisecond)
		}
		// Full: nothing half-written is visible.
		noTemps(t, root)
		os.Remove(filler)
	})
	noTemps(t, root)
	sameTree(t, ref, root)
}

// treeSize sums the sizes of the files below root.
func treeSize(t *testing.T, root string) int64 {
	var n int64
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// noTemps fails on a temporary file anywhere below root.
func noTemps(t *testing.T, root string) {
	t.Helper()
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.Contains(fi.Name(), ".tmp-") {
			t.Fatalf("temporary file left: %s", p)
		}
		return nil
	})
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.Counter.GetValue()
}
