package etl

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/chronicle/chronicle/format"
	"github.com/chronicle/chronicle/format/journal"
	"github.com/chronicle/chronicle/format/meta"
	"github.com/chronicle/chronicle/internal/testkit/testenv"
)

const (
	sBTCDepth = "btcusdt@depth@0ms"
	sBTCTrade = "btcusdt@trade"
)

// liveLikeJournal journals what a live feed connected to a market records: the REST
// snapshots it asked for when it connected come first, before any message of their symbol,
// while another symbol's messages have already set the venue's clock (BTCUSDT from 22:00).
// ETHUSDT's first message is at 23:54:16.303, its snapshot is bridged at 23:54:16.561, and
// with midnightInvalid its capture crosses midnight invalid (no snapshot until 00:00:02).
func liveLikeJournal(t *testing.T, midnightInvalid bool) (*jb, map[string]int64) {
	at := map[string]int64{
		"btc":    ms("2024-08-08T22:00:00Z"),
		"first":  ms("2024-08-08T23:54:16.303Z"),
		"bridge": ms("2024-08-08T23:54:16.561Z"),
	}
	j := newJournal(t, "binance-perp", time.UnixMilli(at["btc"]-1000))
	j.connect(1, sBTCDepth, sBTCTrade, sDepth, sTrade)
	j.snapshot(sBTCDepth, "BTCUSDT", snap(500, at["btc"], "60000:1", "60001:1"))
	j.msg(sBTCDepth, depth("BTCUSDT", at["btc"], 500, 501, 499, "60000:2", ""))
	j.msg(sBTCTrade, trade("BTCUSDT", at["btc"]+1, 1, "60001", "0.1", false))
	if midnightInvalid {
		// ETHUSDT's snapshot is not bridged before midnight: its capture starts invalid and
		// stays so into the next day.
		j.msg(sTrade, trade("ETHUSDT", at["first"], 1, "100.1", "0.5", false))
		j.msg(sDepth, depth("ETHUSDT", at["first"]+2, 90, 95, 89, "100.0:1", "")) // buffered, then stale
		mid := ms("2024-08-09T00:00:00Z")
		at["after"] = mid + 1000
		at["bridge"] = mid + 2000
		j.msg(sBTCDepth, depth("BTCUSDT", mid+500, 502, 503, 501, "60000:3", ""))
		j.msg(sTrade, trade("ETHUSDT", at["after"], 2, "100.1", "0.5", false))
		j.snapshot(sDepth, "ETHUSDT", snap(100, at["bridge"], "100.0:1,99.9:2", "100.1:1"))
		j.msg(sDepth, depth("ETHUSDT", at["bridge"], 99, 101, 98, "100.0:3", ""))
		j.msg(sTrade, trade("ETHUSDT", at["bridge"]+5, 3, "100.1", "0.5", false))
		return j, at
	}
	// The snapshot first (the clock reads BTCUSDT's 22:00), then the updates.
	j.snapshot(sDepth, "ETHUSDT", snap(100, at["first"]-1000, "100.0:1,99.9:2", "100.1:1"))
	j.msg(sDepth, depth("ETHUSDT", at["first"], 90, 95, 89, "100.0:1", ""))  // stale (u < L): dropped, no record
	j.msg(sTrade, trade("ETHUSDT", at["first"]+8, 1, "100.1", "0.5", false)) // the first record, before the bridge
	j.msg(sDepth, depth("ETHUSDT", at["bridge"], 99, 101, 98, "100.0:3", ""))
	j.msg(sDepth, depth("ETHUSDT", at["bridge"]+100, 102, 103, 101, "100.0:4", ""))
	j.msg(sTrade, trade("ETHUSDT", at["bridge"]+200, 2, "100.1", "0.5", false))
	return j, at
}

func interval(from, to int64, reason string, open bool) meta.Invalid {
	return meta.Invalid{Interval: meta.Interval{From: meta.Time(from * 1e6), To: meta.Time(to * 1e6)}, Reason: reason, Open: open}
}

// TestCaptureStartIntervals: the day before a symbol's first message is not_captured and
// its book has no snapshot from then on, whatever came first in the journal (a REST
// snapshot while another symbol set the clock) and even when that message leaves no record
// (a stale update); a capture still invalid at midnight makes the next day no_snapshot
// from its start, with nothing not captured.
func TestCaptureStartIntervals(t *testing.T) {
	day := ms("2024-08-08T00:00:00Z")
	mid := ms("2024-08-09T00:00:00Z")

	j, at := liveLikeJournal(t, false)
	j.close()
	root := t.TempDir()
	refine(t, j, root, nil, nil)
	got := readMeta(t, ethDir(root, "2024-08-08")).Completeness.Invalid
	want := []meta.Invalid{interval(day, at["first"], "not_captured", false), interval(at["first"], at["bridge"], "no_snapshot", false)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ETHUSDT, snapshot first:\n got %+v\nwant %+v", got, want)
	}
	btc := readMeta(t, filepath.Join(root, "v1", "binance-perp", "btc-usdt", "2024-08-08")).Completeness
	if want := []meta.Invalid{interval(day, at["btc"], "not_captured", false)}; !reflect.DeepEqual(btc.Invalid, want) || btc.Complete {
		t.Errorf("BTCUSDT (bridged at its first update):\n got %+v\nwant %+v", btc, want)
	}

	j, at = liveLikeJournal(t, true)
	j.close()
	root = t.TempDir()
	refine(t, j, root, func(c *Config) { c.Grace = time.Minute }, nil)
	got = readMeta(t, ethDir(root, "2024-08-08")).Completeness.Invalid
	want = []meta.Invalid{interval(day, at["first"], "not_captured", false), interval(at["first"], mid, "no_snapshot", false)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ETHUSDT 2024-08-08, invalid at midnight:\n got %+v\nwant %+v", got, want)
	}
	got = readMeta(t, ethDir(root, "2024-08-09")).Completeness.Invalid
	want = []meta.Invalid{interval(mid, at["bridge"], "no_snapshot", false)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ETHUSDT 2024-08-09, captured (invalid) from its start:\n got %+v\nwant %+v", got, want)
	}
}

// TestLiveEqualsBackfillIntervals: the daemon tailing a journal and a backfill of the same
// journal write the same invalid intervals (and the same meta.json but its ingest time).
func TestLiveEqualsBackfillIntervals(t *testing.T) {
	for _, midnight := range []bool{false, true} {
		j, _ := liveLikeJournal(t, midnight)
		j.close()
		ref := t.TempDir()
		refine(t, j, ref, nil, nil)

		hot, root := t.TempDir(), t.TempDir()
		if err := os.MkdirAll(filepath.Join(hot, "feed"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(j.dir, filepath.Join(hot, "feed", "binance-perp")); err != nil {
			t.Fatal(err)
		}
		cfg := Defaults()
		cfg.Venues = []string{"binance-perp"}
		cfg.IdleSpin = 0
		log := slog.New(slog.DiscardHandler)
		m := NewMetrics(nil)
		tw, err := NewTableWatcher(cfg.DimSymbol, log, m)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- RunDaemon(ctx, DaemonOptions{Config: cfg, HotRoot: hot, Root: root, Log: log, Metrics: m, Table: tw})
		}()
		segs, err := journal.List(j.dir)
		if err != nil || len(segs) == 0 {
			t.Fatal(segs, err)
		}
		last := segs[len(segs)-1]
		h, err := format.ReadHeaderFile(filepath.Join(j.dir, last.Name))
		if err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, "the daemon to reach the journal's end", 30*time.Second, func() bool {
			cp, ok, _ := journal.ReadCheckpoint(j.dir)
			return ok && cp.Segment == last.Name && cp.Offset == int64(h.Committed)
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		metas, _ := filepath.Glob(filepath.Join(ref, "v1", "*", "*", "*", meta.FileName))
		if len(metas) < 2 {
			t.Fatalf("backfill wrote %v", metas)
		}
		for _, p := range metas {
			rel, _ := filepath.Rel(ref, p)
			b := readMeta(t, filepath.Dir(p))
			l := readMeta(t, filepath.Join(root, filepath.Dir(rel)))
			if !reflect.DeepEqual(l.Completeness, b.Completeness) {
				t.Errorf("%s (midnight invalid %v): live\n %+v\nbackfill\n %+v", rel, midnight, l.Completeness, b.Completeness)
			}
			l.IngestTime, b.IngestTime = 0, 0
			if !reflect.DeepEqual(l, b) {
				t.Errorf("%s (midnight invalid %v): live and backfill meta.json differ:\n %+v\n %+v", rel, midnight, l, b)
			}
		}
	}
}
