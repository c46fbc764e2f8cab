package etl

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"github.com/chronicle/chronicle/feed/journal"
)

// TestOutputDeviceFull runs the refinery daemon with its output root on a small tmpfs that
// fills up mid-run: the run stops (counted as a device_full failure), nothing half-written
// is left (no temporary file, every book readable to its committed length), and once
// space returns the daemon starts again from its checkpoint and ends with the same tree
// as a run that never ran out of space.
func TestOutputDeviceFull(t *testing.T) {
	mid := ms("2024-08-09T00:00:00Z")
	j := newJournal(t, "binance-perp", time.UnixMilli(mid-600000))
	j.connect(1, sDepth, sTrade, sTicker)
	j.snapshot(sDepth, "ETHUSDT", snap(100, mid-590000, "100.0:1,99.0:1", "100.1:1,101:1"))
	u := int64(100)
	for i := int64(0); i < 6000; i++ {
		ts := mid - 580000 + i*200
		j.msg(sDepth, depth("ETHUSDT", ts, u+1, u+2, u, "100.0:"+itoa(i%7+1), "100.1:"+itoa(i%5+1)))
		u += 2
		j.msg(sTrade, trade("ETHUSDT", ts+1, i+1, "100.1", "0.1", i%2 == 0))
	}
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

	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatalf("mount a tmpfs (the test needs root): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	// Room for about half of the output (and the live appender's first chunks).
	t.Logf("output %d bytes", size)
	filler := fillDevice(t, dir, size/2)
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

// fillDevice writes a file until the device is full, then gives back spare bytes.
func fillDevice(t *testing.T, dir string, spare int64) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<16)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	st, _ := f.Stat()
	if err := f.Truncate(max(0, st.Size()-spare)); err != nil {
		t.Fatal(err)
	}
	return p
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
